/**
 * SPA packets whose HMAC fails, for fail2ban (issue #19, item 7): the capture
 * process reports them (bounded), the message is validated, and the daemon
 * logs one line per source a minute (fake clock).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BAD_SPA_LOG_INTERVAL_MS, BadSpaLog } from '../../src/daemon/bad-spa';
import { SPA_BAD_REPORTS_PER_SECOND, SpaGate } from '../../src/capture/spa-gate';
import { checkFromCapture } from '../../src/capture/validate';
import type { WireDoor, WireEvent, WireSpaDoor } from '../../src/capture/protocol';
import { IPPROTO_UDP, type Packet } from '../../src/decode/types';
import { makeSpaKeys } from '../../src/spa/keys';
import { encodeSpa, spaPlaintext, b64 } from '../support/spa-encode';

function rig(max?: number) {
  let now = 1_000_000;
  const lines: string[] = [];
  const log = new BadSpaLog({ info: (_ctx, msg) => lines.push(msg) }, () => now, max);
  return { log, lines, advance: (ms: number) => (now += ms) };
}

test('one line per source and minute; the next line says how many more came', () => {
  const r = rig();
  for (let i = 0; i < 5; i++) r.log.report('203.0.113.7', 'spaSSH');
  assert.deepEqual(r.lines, ['203.0.113.7: spaSSH: bad SPA packet (HMAC did not verify)']);
  r.log.report('2001:db8::7', 'spaSSH', '2001:db8::7 (evil.example)');
  assert.equal(r.lines.length, 2, 'another source has its own minute');
  assert.equal(r.lines[1], '2001:db8::7 (evil.example): spaSSH: bad SPA packet (HMAC did not verify)');
  r.advance(BAD_SPA_LOG_INTERVAL_MS - 1);
  r.log.report('203.0.113.7', 'spaSSH');
  assert.equal(r.lines.length, 2);
  r.advance(1);
  r.log.report('203.0.113.7', 'spaSSH');
  assert.deepEqual(r.lines.slice(2), [
    '203.0.113.7: spaSSH: bad SPA packet (HMAC did not verify); 5 more from this source since the last such line',
  ]);
  assert.deepEqual(r.log.stats, { lines: 3, folded: 5, forgotten: 0 });
});

test('the sources remembered are bounded: the oldest is forgotten first', () => {
  const r = rig(2);
  r.log.report('10.0.0.1', 'd');
  r.log.report('10.0.0.2', 'd');
  r.log.report('10.0.0.3', 'd'); // forgets 10.0.0.1
  assert.equal(r.log.size, 2);
  r.log.report('10.0.0.2', 'd'); // still remembered: folded
  r.log.report('10.0.0.1', 'd'); // forgotten: a line again (forgets 10.0.0.3, the oldest line)
  assert.deepEqual(
    r.lines.map((l) => l.split(':')[0]),
    ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1'],
  );
  assert.deepEqual(r.log.stats, { lines: 4, folded: 1, forgotten: 2 });
});

// --- the capture process's report -------------------------------------------------------------

const HMAC_KEY = Buffer.alloc(32, 7);
const SPA_DOOR: WireSpaDoor = {
  name: 'spaSSH',
  port: 62201,
  hmacKeyBase64: HMAC_KEY.toString('base64'),
  hmacType: 'sha256',
};

/** A UDP datagram 203.0.113.7 → `dst`:62201 carrying `payload`. */
function datagram(payload: string, dst = [10, 0, 0, 1]): Packet {
  const body = Buffer.from(payload, 'latin1');
  const buf = Buffer.alloc(8 + 8 + body.length);
  buf.set([203, 0, 113, 7, ...dst]);
  buf.writeUInt16BE(40000, 8);
  buf.writeUInt16BE(62201, 10);
  buf.writeUInt16BE(8 + body.length, 12);
  body.copy(buf, 16);
  return {
    family: 4,
    proto: IPPROTO_UDP,
    sport: 40000,
    dport: 62201,
    flags: 0,
    buf,
    srcOff: 0,
    dstOff: 4,
    l4Off: 8,
    l4End: buf.length,
  };
}

const plaintext = spaPlaintext(['1234567890123456', b64('root'), '1796317498', '3.0.0', '1', b64('10.0.0.2,tcp/22')]);
const salt = Buffer.alloc(8, 1);
const wrongHmac = encodeSpa(plaintext, makeSpaKeys(Buffer.from('k'), Buffer.alloc(32, 9), 'sha256'), salt);
const rightHmac = encodeSpa(plaintext, makeSpaKeys(Buffer.from('k'), HMAC_KEY, 'sha256'), salt);

test("the gate reports a bad HMAC to this host (spa-bad, by the port's first door), bounded per second; a good one is forwarded", () => {
  const events: WireEvent[] = [];
  const gate = new SpaGate(
    [SPA_DOOR],
    (e) => events.push(e),
    (a) => a === '10.0.0.1',
  );
  gate.handle(datagram(wrongHmac));
  assert.deepEqual(events, [{ type: 'spa-bad', door: 'spaSSH', src: '203.0.113.7', family: 4 }]);
  gate.handle(datagram(wrongHmac, [10, 0, 0, 9])); // not addressed to this host: counted, not reported
  assert.equal(events.length, 1);
  for (let i = 0; i < SPA_BAD_REPORTS_PER_SECOND + 5; i++) gate.handle(datagram(wrongHmac));
  assert.equal(events.length, SPA_BAD_REPORTS_PER_SECOND, 'at most SPA_BAD_REPORTS_PER_SECOND a second');
  gate.refill();
  gate.handle(datagram(wrongHmac));
  assert.equal(events.length, SPA_BAD_REPORTS_PER_SECOND + 1);
  assert.equal(gate.stats.unauthenticated, SPA_BAD_REPORTS_PER_SECOND + 8);
  gate.handle(datagram(rightHmac));
  assert.equal(events.at(-1)!.type, 'spa');
  gate.handle(datagram('not base64 at all!!'));
  assert.equal(events.length, SPA_BAD_REPORTS_PER_SECOND + 2, 'malformed packets are not reported');
});

test('spa-bad messages are validated like every capture message', () => {
  const knock: WireDoor = {
    name: 'openSSH',
    sequence: [{ proto: 6, port: 1000 }],
    seqTimeoutMs: 1000,
    tcpFlags: { set: 2, clear: 0 },
    action: 'open',
  };
  const doors = new Map<string, WireDoor | WireSpaDoor>([
    ['spaSSH', SPA_DOOR],
    ['openSSH', knock],
  ]);
  const check = (e: Record<string, unknown>, ipv4Only = false) =>
    checkFromCapture({ t: 'event', e }, doors, ipv4Only, ['eth0']);
  const good = { type: 'spa-bad', door: 'spaSSH', src: '203.0.113.7', family: 4 };
  assert.deepEqual(check(good), { ok: true, msg: { t: 'event', e: good } });
  assert.equal(check({ ...good, src: '2001:db8::7', family: 6 }).ok, true);
  for (const [bad, why] of [
    [{ ...good, extra: 1 }, /unexpected field/],
    [{ ...good, src: '203.000.113.7' }, /canonical/],
    [{ ...good, src: '2001:db8::7' }, /canonical IPv4/],
    [{ ...good, door: 'openSSH' }, /unknown event type|spa-bad/],
    [{ ...good, door: 'nosuch' }, /unknown door/],
  ] as const) {
    const r = check(bad);
    assert.equal(r.ok, false, JSON.stringify(bad));
    if (!r.ok) assert.match(r.why, why);
  }
  assert.equal(check({ ...good, src: '2001:db8::7', family: 6 }, true).ok, false, '-4: no IPv6 source');
});
