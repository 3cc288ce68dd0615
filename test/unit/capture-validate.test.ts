/**
 * Issue 12: messages from the capture process are untrusted. Every field of
 * every message is checked (checkFromCapture); a bad message is refused with
 * a reason naming the field, and the supervisor logs it and carries on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkFromCapture } from '../../src/capture/validate';
import { findUser } from '../../src/capture/user';
import { blocksEverySignal, parseStatus, unprivilegedProblem } from '../../src/capture/privileges';
import type { WireDoor } from '../../src/capture/protocol';

const door = (name: string, n: number, extra: Partial<WireDoor> = {}): WireDoor => ({
  name,
  sequence: Array.from({ length: n }, (_, i) => ({ proto: 6 as const, port: 1000 + i })),
  seqTimeoutMs: 15_000,
  tcpFlags: { set: 2, clear: 0 },
  action: 'open',
  ...extra,
});
const DOORS = new Map<string, WireDoor>([
  ['openSSH', door('openSSH', 3)],
  ['closeSSH', door('closeSSH', 3, { action: 'close' })],
  ['v6only', door('v6only', 2, { target: 'fd00::1' })],
]);
const IFACES = ['eth0', 'eth1'];
const check = (m: unknown, ipv4Only = false) => checkFromCapture(m, DOORS, ipv4Only, IFACES);
const ok = (m: unknown): void => {
  const r = check(m);
  assert.ok(r.ok, `refused: ${r.ok ? '' : r.why}`);
  assert.deepEqual(r.msg, m);
};
const refused = (m: unknown, why: RegExp, ipv4Only = false): void => {
  const r = check(m, ipv4Only);
  assert.equal(r.ok, false, `accepted: ${JSON.stringify(m)}`);
  if (!r.ok) assert.match(r.why, why);
};

const ev = (e: Record<string, unknown>) => ({ t: 'event', e });
const OPEN = { type: 'open', door: 'openSSH', src: '10.0.0.2', family: 4 };
const STATS = {
  frames: { frames: 10, malformed: 1, ignored: 2, knocks: 7 },
  matcher: {
    candidates: 7,
    ignored: 0,
    stages: 6,
    completed: 2,
    spoiled: 1,
    timeouts: 0,
    evicted: 0,
    retransmits: 0,
    repeats: 0,
  },
  inFlight: 1,
};

test('well-formed messages of every kind pass, unchanged', () => {
  ok(ev(OPEN));
  ok(ev({ type: 'close', door: 'closeSSH', src: '2001:db8::1', family: 6 }));
  ok(ev({ type: 'stage', door: 'openSSH', src: '10.0.0.2', family: 4, stage: 1 }));
  ok(ev({ type: 'stage', door: 'openSSH', src: '10.0.0.2', family: 4, stage: 3 }));
  ok(ev({ type: 'timeout', door: 'openSSH', src: '10.0.0.2', stage: 2 }));
  ok(ev({ type: 'spoiled', door: 'openSSH', src: '10.0.0.2', stage: 1, proto: 17, port: 65535 }));
  ok(ev({ type: 'stage', door: 'v6only', src: 'fd00::2', family: 6, stage: 1 }));
  ok({ t: 'listening', iface: 'eth0', link: 'ETHERNET', filter: 'tcp dst port 1000' });
  ok({ t: 'error', iface: 'eth1', message: 'The interface went down' });
  ok({ t: 'suppressed', count: 5, timeouts: 0, evicted: 3, inFlight: 100 });
  ok({ t: 'stats', stats: STATS });
});

test('the door must be one the daemon gave the capture process, of the event kind', () => {
  refused(ev({ ...OPEN, door: 'nosuchdoor' }), /unknown door "nosuchdoor"/);
  refused(ev({ ...OPEN, door: 42 }), /door is not a string/);
  refused(ev({ ...OPEN, door: '__proto__' }), /unknown door/);
  refused(ev({ ...OPEN, door: 'closeSSH' }), /closeSSH is a close door, not open/);
  refused(ev({ ...OPEN, type: 'close' }), /openSSH is an open door, not close/);
  refused(ev({ ...OPEN, type: 'grant' }), /unknown event type/);
});

test('src must be a canonical IP literal of the stated family, knockable on that door', () => {
  for (const src of [
    '10.0.0.02',
    '010.0.0.2',
    ' 10.0.0.2',
    '10.0.0.2\n',
    '10.0.0.2; rm -rf /',
    '1.2.3',
    '256.0.0.1',
    'localhost',
    '',
    'FD00::2',
    '2001:0db8::1',
    '::ffff:10.0.0.2x',
  ]) {
    refused(ev({ ...OPEN, src }), /not a canonical IP address/);
  }
  refused(ev({ ...OPEN, src: 7 }), /not a canonical IP address/);
  refused(ev({ ...OPEN, src: '2001:db8::1' }), /is not an IPv4 address/);
  refused(ev({ ...OPEN, src: '10.0.0.2', family: 6 }), /is not an IPv6 address/);
  refused(ev({ type: 'stage', door: 'v6only', src: '10.0.0.2', family: 4, stage: 1 }), /cannot knock on door v6only/);
  refused(ev({ ...OPEN, src: '2001:db8::1', family: 6 }), /IPv6, but knockd runs with -4/, true);
});

test('family, stage, proto and port are within range', () => {
  refused(ev({ ...OPEN, family: 5 }), /family is not 4 or 6/);
  refused(ev({ ...OPEN, family: '4' }), /family is not 4 or 6/);
  for (const stage of [0, -1, 4, 1.5, '1', null, Number.NaN, Infinity]) {
    refused(
      ev({ type: 'stage', door: 'openSSH', src: '10.0.0.2', family: 4, stage }),
      /stage .* is outside 1\.\.3 for door openSSH/,
    );
  }
  refused(ev({ type: 'timeout', door: 'openSSH', src: '10.0.0.2', stage: 3 }), /outside 1\.\.2/);
  const sp = { type: 'spoiled', door: 'openSSH', src: '10.0.0.2', stage: 1, proto: 6, port: 80 };
  for (const port of [-1, 65536, 1.5, '80', null]) refused(ev({ ...sp, port }), /port is not 0\.\.65535/);
  for (const proto of [0, 1, 58, 'tcp']) refused(ev({ ...sp, proto }), /proto is not 6/);
});

test('no field more, none missing; counters are non-negative integers', () => {
  refused(ev({ ...OPEN, extra: 1 }), /unexpected field "extra"/);
  refused(ev({ type: 'open', door: 'openSSH', src: '10.0.0.2' }), /missing field family/);
  refused({ t: 'event', e: OPEN, more: true }, /unexpected field "more"/);
  refused({ t: 'event', e: null }, /event is not an object/);
  refused({ t: 'event', e: [OPEN] }, /event is not an object/);
  refused({ t: 'suppressed', count: -1, timeouts: 0, evicted: 0, inFlight: 0 }, /count is not a count/);
  refused({ t: 'suppressed', count: 1e300, timeouts: 0, evicted: 0, inFlight: 0 }, /count is not a count/);
  refused(
    { t: 'stats', stats: { ...STATS, frames: { ...STATS.frames, knocks: 'many' } } },
    /stats\.frames\.knocks is not a count/,
  );
  refused({ t: 'stats', stats: { ...STATS, matcher: { ...STATS.matcher, bogus: 1 } } }, /unexpected field "bogus"/);
  refused({ t: 'listening', iface: 'eth0', link: 'IEEE802_11_RADIO', filter: '' }, /unknown link type/);
  refused({ t: 'listening', iface: 'eth0', link: 'ETHERNET', filter: 'x'.repeat(70_000) }, /filter is longer than/);
  refused(
    { t: 'listening', iface: 'wlan9', link: 'ETHERNET', filter: '' },
    /iface "wlan9" is not one the capture process was given/,
  );
  refused({ t: 'error', iface: 'eth0', message: 'x'.repeat(600) }, /longer than 512/);
  refused({ t: 'grant', door: 'openSSH' }, /unknown message type "grant"/);
  refused(null, /message is not an object/);
  refused('open', /message is not an object/);
});

test('error text is made printable before it reaches the log', () => {
  const r = check({ t: 'error', iface: 'eth0', message: 'down\n[2026-01-01] 1.2.3.4: openSSH: OPEN SESAME\u001b[2J' });
  assert.ok(r.ok);
  assert.equal(r.ok && r.msg.t === 'error' && r.msg.message, 'down?[2026-01-01] 1.2.3.4: openSSH: OPEN SESAME?[2J');
});

test('the capture user: knockd, else nobody, never root', () => {
  const passwd =
    'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nknockd:x:990:985:knockd:/:/sbin/nologin\n';
  assert.deepEqual(findUser(passwd, 'knockd'), { name: 'knockd', uid: 990, gid: 985 });
  assert.deepEqual(findUser(passwd, 'nobody'), { name: 'nobody', uid: 65534, gid: 65534 });
  assert.equal(findUser(passwd, 'root'), undefined);
  assert.equal(findUser('knockd:x:0:5:x:/:/bin/sh\n', 'knockd'), undefined);
  assert.equal(findUser('knockd:x:12a:5:x:/:/bin/sh\n', 'knockd'), undefined);
});

test('unprivilegedProblem names what a process still holds', () => {
  const base =
    'Name:\tnode\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n';
  assert.equal(unprivilegedProblem(parseStatus(base)), undefined);
  assert.match(
    unprivilegedProblem(parseStatus(base.replace('Uid:\t65534\t65534\t65534\t65534', 'Uid:\t65534\t0\t65534\t65534')))!,
    /Uid 65534 0/,
  );
  assert.match(
    unprivilegedProblem(parseStatus(base.replace('CapBnd:\t0000000000000000', 'CapBnd:\t0000000000002000')))!,
    /CapBnd 2000/,
  );
  // What systemd 257+ hands a service (inheritable = bounding set, 0x31e0 for knockd.service), and an ambient set.
  assert.match(
    unprivilegedProblem(parseStatus(base.replace('CapInh:\t0000000000000000', 'CapInh:\t00000000000031e0')))!,
    /CapInh 31e0/,
  );
  assert.match(
    unprivilegedProblem(parseStatus(base.replace('CapAmb:\t0000000000000000', 'CapAmb:\t0000000000002000')))!,
    /CapAmb 2000/,
  );
  assert.match(unprivilegedProblem(parseStatus(base.replace('NoNewPrivs:\t1', 'NoNewPrivs:\t0')))!, /NoNewPrivs 0/);
  assert.match(unprivilegedProblem(parseStatus(base.replace('Groups:\t', 'Groups:\t4 27')))!, /Groups 4 27/);
  // Issue 18.9: no seccomp filter (0), strict mode (1) or no Seccomp line at all is a problem too.
  assert.match(unprivilegedProblem(parseStatus(base.replace('Seccomp:\t2', 'Seccomp:\t0')))!, /Seccomp 0/);
  assert.match(unprivilegedProblem(parseStatus(base.replace('Seccomp:\t2', 'Seccomp:\t1')))!, /Seccomp 1/);
  assert.match(unprivilegedProblem(parseStatus(base.replace('Seccomp:\t2\n', '')))!, /Seccomp 0/);
});

test('unprivilegedProblem of another thread: only one that blocks every signal may keep its inheritable and bounding sets', () => {
  const base =
    'Name:\tnode\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t\nSigBlk:\t0000000000000200\nCapInh:\t00000000000031e0\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n';
  // node's SIGUSR1 watchdog thread as /proc shows it: every signal blocked but SIGKILL, SIGSTOP, 32 and 33.
  const watchdog = base.replace('SigBlk:\t0000000000000200', 'SigBlk:\tfffffffe7ffbfeff');
  assert.equal(blocksEverySignal(parseStatus(watchdog)), true);
  assert.equal(blocksEverySignal(parseStatus(base)), false);
  assert.equal(unprivilegedProblem(parseStatus(watchdog), true), undefined);
  // Not the main thread, not a thread that takes signals, and nothing else is exempt.
  assert.match(unprivilegedProblem(parseStatus(watchdog))!, /CapInh 31e0, CapBnd 1ffffffffff/);
  assert.match(unprivilegedProblem(parseStatus(base), true)!, /CapInh 31e0, CapBnd 1ffffffffff/);
  assert.match(
    unprivilegedProblem(parseStatus(watchdog.replace('CapPrm:\t0000000000000000', 'CapPrm:\t0000000000002000')), true)!,
    /CapPrm 2000/,
  );
  assert.match(
    unprivilegedProblem(parseStatus(watchdog.replace('CapAmb:\t0000000000000000', 'CapAmb:\t0000000000002000')), true)!,
    /CapAmb 2000/,
  );
  assert.match(
    unprivilegedProblem(parseStatus(watchdog.replace('NoNewPrivs:\t1', 'NoNewPrivs:\t0')), true)!,
    /NoNewPrivs 0/,
  );
});

test('MessageGate: a bad message gets one clear log line and is dropped; the good ones around it all pass', async () => {
  const { MessageGate, REFUSED_LINES_PER_SECOND } = await import('../../src/capture/validate');
  const lines: string[] = [];
  let now = 1_000_000;
  const gate = new MessageGate(
    (l) => lines.push(l),
    () => now,
  );
  const out: unknown[] = [];
  const feed = (m: unknown): void => {
    const r = gate.admit(m, DOORS, false, IFACES);
    if (r) out.push(r);
  };
  feed(ev(OPEN));
  feed(ev({ ...OPEN, src: '10.0.0.2; reboot' }));
  feed(ev({ ...OPEN, src: '10.0.0.3' }));
  assert.deepEqual(out, [ev(OPEN), ev({ ...OPEN, src: '10.0.0.3' })]);
  assert.deepEqual(lines, [
    'capture process sent an invalid message, dropped: src is not a canonical IP address: "10.0.0.2; reboot"',
  ]);
  // A flood of bad messages: a few lines a second, then a count; good messages still pass.
  for (let i = 0; i < 1000; i++) feed({ t: 'bogus' });
  feed(ev({ ...OPEN, src: '10.0.0.4' }));
  assert.equal(lines.length, REFUSED_LINES_PER_SECOND);
  now += 1000;
  feed({ t: 'bogus' });
  assert.match(lines.at(-1)!, /unknown message type "bogus" \(and 996 more not logged\)$/);
  assert.equal(out.length, 3);
});
