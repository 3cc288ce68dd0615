/**
 * Fuzzing of the SPA decoder (src/spa) with a seeded PRNG: random bytes,
 * random base64, real-client packets (test/fixtures/spa) mutated, and
 * authenticated packets (valid encryption and HMAC, made with
 * test/support/spa-encode.ts) whose plaintext was mutated after its digest
 * was computed.
 *
 * N inputs: 100 000 by default, 1 000 000 with FUZZ_FULL=1; FUZZ_SEED=<n>
 * replays another seed (the seed is in the test name). Checked for every input:
 *  - nothing throws, every refusal has a code and a reason;
 *  - a packet that differs from every packet the client made is never
 *    accepted; a mutated plaintext (wrapped in valid encryption and HMAC)
 *    never is either (the inner digest);
 *  - whatever is accepted has sane fields;
 *  - the replay cache only grows by authenticated packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SpaDoor, SpaHmacType } from '../../src/model';
import { decodeSpaPacket } from '../../src/spa/decode';
import { handleSpaPacket } from '../../src/spa/handle';
import { makeSpaKeys } from '../../src/spa/keys';
import { ReplayCache } from '../../src/spa/replay';
import type { SpaMessage } from '../../src/spa/types';
import type { SpaFixtureFile } from '../support/make-spa-fixtures';
import { Rng } from '../support/rng';
import { b64, encodeSpa, spaPlaintext } from '../support/spa-encode';

const FULL = process.env.FUZZ_FULL === '1';
const N = FULL ? 1_000_000 : 100_000;
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5ba5eed;

const F: SpaFixtureFile = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'spa', 'packets.json'), 'utf8'),
) as SpaFixtureFile;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ENC = Buffer.from(F.keys.K1, 'base64');
const HMAC = Buffer.from(F.keys.H1, 'base64');
const TYPES: SpaHmacType[] = ['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'];
const DOORS: SpaDoor[] = TYPES.map((t) => ({
  name: `door-${t}`,
  port: 62201,
  keys: makeSpaKeys(ENC, HMAC, t),
  sources: [],
  openPorts: [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
    { proto: 'tcp', port: 80 },
  ],
  maxTimeout: 300,
  defaultTimeout: 30,
  requireSourceAddress: false,
}));
const ORIGINALS = F.fixtures.filter((f) => f.encKey === 'K1' && f.hmacKey === 'H1').map((f) => f.packet);
const ORIGINAL_SET = new Set(ORIGINALS);
const NOW_MS = (F.fixtures[0]?.timestamp ?? 0) * 1000;

function mutate(rng: Rng, s: string): string {
  let t = s;
  const ops = rng.int(1, 4);
  for (let k = 0; k < ops; k++) {
    const i = rng.int(0, Math.max(0, t.length - 1));
    switch (rng.int(0, 9)) {
      case 0: // one character replaced by another base64 character
        t = t.slice(0, i) + rng.pick([...ALPHABET]) + t.slice(i + 1);
        break;
      case 1: // one bit of one byte flipped (may leave the alphabet)
        t = t.slice(0, i) + String.fromCharCode(t.charCodeAt(i) ^ (1 << rng.int(0, 7))) + t.slice(i + 1);
        break;
      case 2:
        t = t.slice(0, i) + rng.pick([...ALPHABET, '=', '\n', ' ', '-', '_']) + t.slice(i);
        break;
      case 3:
        t = t.slice(0, i) + t.slice(i + 1);
        break;
      case 4:
        t = t.slice(0, rng.int(0, t.length));
        break;
      case 5:
        t = rng.chance(0.5) ? 'U2FsdGVkX1' + t : t + rng.pick(['=', '==', '\n', ' ', 'A', '\r\n']);
        break;
      case 6: {
        const j = rng.int(0, Math.max(0, t.length - 1));
        const a = [...t];
        [a[i], a[j]] = [a[j], a[i]];
        t = a.join('');
        break;
      }
      case 7: // the tag of another packet
        t = t.slice(0, rng.int(100, t.length)) + rng.pick(ORIGINALS).slice(-rng.int(20, 90));
        break;
      case 8: // case swapped
        t =
          t.slice(0, i) +
          (t[i] === t[i]?.toUpperCase() ? (t[i] ?? '').toLowerCase() : (t[i] ?? '').toUpperCase()) +
          t.slice(i + 1);
        break;
      default: // a slice repeated
        t = t.slice(0, i) + t.slice(i, i + rng.int(1, 40)) + t.slice(i);
    }
  }
  return t;
}

/** A plausible plaintext, perhaps with broken fields, with a correct digest. */
function plaintext(rng: Rng): string {
  const pick = <T>(good: T, bad: T[]): T => (rng.chance(0.85) ? good : rng.pick(bad));
  const type = pick(String(rng.int(0, 6)), ['7', '', '01', '-1', 'x']);
  const ip = pick(`${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(0, 255)}`, [
    '0.0.0',
    '256.1.1.1',
    '01.2.3.4',
    '::1',
    '',
    'a.b.c.d',
  ]);
  const ports = Array.from(
    { length: rng.int(1, 4) },
    () =>
      `${pick(rng.pick(['tcp', 'udp', 'icmp', 'none']), ['TCP', 'sctp', ''])}/${pick(String(rng.int(0, 65535)), ['65536', '-1', '', '022', '1e3'])}`,
  );
  const fields = [
    pick(String(rng.int(1e15, 9.99e15)), ['123', 'abcdefghijklmnop', '12345678901234567']),
    pick(b64(rng.pick(['root', 'alice', 'NO_USER'])), ['', 'cm9v=', b64('a:b'), b64('a\nb'), 'x'.repeat(70)]),
    pick(String(Math.floor(NOW_MS / 1000) + rng.int(-200, 200)), ['', '-5', '1.5', '99999999999999']),
    pick('3.0.0', ['', '3.0.0.0.0.0', '3:0']),
    type,
    pick(b64(`${ip},${ports.join(',')}`), ['', b64(ip), b64(`${ip},`), '!!']),
  ];
  const n = rng.int(0, 3);
  for (let i = 0; i < n; i++)
    fields.push(rng.pick([b64('192.168.1.2,22'), String(rng.int(0, 100000)), b64('x'), '', '1e9']));
  return spaPlaintext(fields);
}

function saneIfAccepted(m: SpaMessage, ctx: string): void {
  assert.match(m.random, /^[0-9]{16}$/, ctx);
  assert.ok(Number.isSafeInteger(m.timestamp) && m.timestamp >= 0, ctx);
  assert.match(m.allowIp, /^(?:\d{1,3}\.){3}\d{1,3}$/, ctx);
  for (const a of m.access) assert.ok(Number.isInteger(a.port) && a.port >= 0 && a.port <= 65535, ctx);
  if (m.clientTimeout !== undefined) assert.ok(Number.isInteger(m.clientTimeout) && m.clientTimeout >= 0, ctx);
}

test(`SPA fuzz (seed ${SEED}, ${N} inputs): no throw, no modified packet accepted`, () => {
  const rng = new Rng(SEED);
  const cache = new ReplayCache();
  let authenticated = 0;
  let accepted = 0;
  const counts = new Map<string, number>();
  for (let n = 0; n < N; n++) {
    const kind = rng.weighted({ bytes: 2, base64: 2, mutated: 5, authentic: 2 });
    let payload: Buffer;
    let mayAccept: boolean;
    if (kind === 'bytes') {
      payload = rng.bytes(rng.int(0, 1600));
      mayAccept = false;
    } else if (kind === 'base64') {
      payload = Buffer.from(
        Array.from({ length: rng.int(130, 420) }, () => rng.pick([...ALPHABET])).join(''),
        'latin1',
      );
      mayAccept = false;
    } else if (kind === 'mutated') {
      const text = mutate(rng, rng.pick(ORIGINALS));
      payload = Buffer.from(text, 'latin1');
      mayAccept = ORIGINAL_SET.has(text); // mutated back into an original: a replay at most
    } else {
      const good = plaintext(rng);
      const tampered = rng.chance(0.5);
      const pt = tampered ? mutate(rng, good) : good;
      const door = rng.pick(DOORS);
      payload = Buffer.from(encodeSpa(pt, door.keys, rng.bytes(8)), 'latin1');
      mayAccept = !tampered || pt === good;
      // Straight through the decoder for this door's keys.
      const r = decodeSpaPacket(payload, door.keys);
      if (r.ok) {
        assert.ok(mayAccept, `#${n}: a mutated plaintext was accepted: ${JSON.stringify(pt)}`);
        saneIfAccepted(r.message, `#${n}`);
      }
    }
    const ctx = `#${n} (${kind}, ${payload.length} bytes): ${payload.toString('hex').slice(0, 200)}`;
    const before = cache.size;
    const v = handleSpaPacket(payload, '198.51.100.9', DOORS, cache, NOW_MS + rng.int(-1000, 1000));
    counts.set(v.ok ? 'ok' : v.code, (counts.get(v.ok ? 'ok' : v.code) ?? 0) + 1);
    if (v.ok) {
      accepted++;
      assert.ok(mayAccept, `accepted a modified packet ${ctx}`);
      saneIfAccepted(v.message, ctx);
    } else {
      assert.ok(v.reason.length > 0 && typeof v.code === 'string', ctx);
    }
    if (cache.size > before) {
      authenticated++;
      assert.ok(v.ok || v.message !== undefined, `cache grew for an unauthenticated packet ${ctx}`);
    }
  }
  assert.ok(cache.size <= authenticated);
  // The generator is not degenerate: every stage was reached.
  for (const code of ['length', 'charset', 'prefix', 'hmac', 'digest', 'format', 'replay'])
    assert.ok((counts.get(code) ?? 0) > 0, `no input reached "${code}": ${JSON.stringify([...counts])}`);
  assert.ok(accepted > 0, 'no input was accepted at all');
});
