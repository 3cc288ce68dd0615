/**
 * Unit tests for src/spa (fwknop SPA decoder, access check, replay cache) with
 * packets made by the real fwknop 2.6.10 client (test/fixtures/spa/packets.json,
 * made by test/support/make-spa-fixtures.ts). The clock is injected relative
 * to each packet's timestamp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SpaDoor, SpaHmacType } from '../../src/model';
import { checkSpaAccess } from '../../src/spa/access';
import { parseCidr } from '../../src/spa/cidr';
import { decodeSpaPacket } from '../../src/spa/decode';
import { handleSpaPacket } from '../../src/spa/handle';
import { makeSpaKeys } from '../../src/spa/keys';
import { ReplayCache, spaReplayDigest } from '../../src/spa/replay';
import type { SpaCidr } from '../../src/model';
import type { SpaFixtureFile, SpaFixture } from '../support/make-spa-fixtures';

const FIXTURES: SpaFixtureFile = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'spa', 'packets.json'), 'utf8'),
) as SpaFixtureFile;
const K = FIXTURES.keys;

function fixture(name: string): SpaFixture {
  const f = FIXTURES.fixtures.find((x) => x.name === name);
  if (f === undefined) throw new Error(`test bug: no fixture ${name}`);
  return f;
}
const bytes = (f: SpaFixture | string): Buffer => Buffer.from(typeof f === 'string' ? f : f.packet, 'latin1');
const atMs = (f: SpaFixture, offsetS = 0): number => (f.timestamp + offsetS) * 1000;

function cidrs(...list: string[]): SpaCidr[] {
  return list.map((s) => {
    const r = parseCidr(s);
    if ('error' in r) throw new Error(r.error);
    return r.cidr;
  });
}

function door(
  o: Partial<Omit<SpaDoor, 'keys'>> & { hmacType?: SpaHmacType; enc?: Buffer; hmac?: Buffer } = {},
): SpaDoor {
  return {
    name: o.name ?? 'spaSSH',
    port: o.port ?? 62201,
    keys: makeSpaKeys(
      o.enc ?? Buffer.from(K.K1, 'base64'),
      o.hmac ?? Buffer.from(K.H1, 'base64'),
      o.hmacType ?? 'sha256',
    ),
    sources: o.sources ?? [],
    openPorts: o.openPorts ?? [{ proto: 'tcp', port: 22 }],
    maxTimeout: o.maxTimeout ?? 300,
    defaultTimeout: o.defaultTimeout ?? 30,
    requireSourceAddress: o.requireSourceAddress ?? false,
  };
}

/** The door that matches a fixture's keys. */
function doorFor(f: SpaFixture, o: Parameters<typeof door>[0] = {}): SpaDoor {
  return door({
    hmacType: f.hmacType as SpaHmacType,
    ...(f.encKey === 'PASS' ? { enc: Buffer.from(K.PASS, 'latin1') } : {}),
    ...o,
  });
}

const SRC = '198.51.100.7';

function verdict(
  f: SpaFixture | string,
  d: SpaDoor | SpaDoor[],
  opts: { src?: string; nowMs?: number; cache?: ReplayCache } = {},
) {
  const ts = typeof f === 'string' ? 0 : f.timestamp;
  return handleSpaPacket(
    bytes(f),
    opts.src ?? SRC,
    Array.isArray(d) ? d : [d],
    opts.cache ?? new ReplayCache(),
    opts.nowMs ?? ts * 1000,
  );
}

// ---------------------------------------------------------------------------
// What the real client sent, decoded
// ---------------------------------------------------------------------------

const ACCEPTED = FIXTURES.fixtures.filter((f) => !['wrong-hmac-key', 'wrong-rijndael-key', 'long'].includes(f.name));

for (const f of ACCEPTED) {
  test(`decoder: real client packet "${f.name}" (${f.note}) decodes to the fields the client encoded`, () => {
    const r = decodeSpaPacket(bytes(f), doorFor(f).keys);
    assert.ok(r.ok, r.ok ? '' : `${r.code}: ${r.reason}`);
    const m = r.message;
    const c = f.client;
    assert.equal(m.random, c['Random Value']);
    assert.equal(m.username, c.Username);
    assert.equal(m.timestamp, Number(c.Timestamp));
    assert.equal(m.version, c['FKO Version']);
    assert.equal(m.type, Number(c['Message Type'].split(' ')[0]));
    const msgText =
      m.kind === 'command' ? undefined : `${m.allowIp},${m.access.map((a) => `${a.proto}/${a.port}`).join(',')}`;
    if (msgText !== undefined) assert.equal(msgText, c['Message String']);
    else assert.ok(c['Message String'].startsWith(`${m.allowIp},`));
    assert.equal(m.nat ?? '<NULL>', c['Nat Access']);
    assert.equal(String(m.clientTimeout ?? 0), c['Client Timeout']);
    assert.equal(m.digestType.toUpperCase(), /\((\w+)\)/.exec(c['Digest Type'])?.[1]);
  });
}

// ---------------------------------------------------------------------------
// Verdicts: what fwknopd would open, and nothing for what it refuses
// ---------------------------------------------------------------------------

test('grant: -A tcp/22 -a IP opens tcp/22 for the embedded IP (not the packet source), cmd_timeout seconds', () => {
  const v = verdict(fixture('access-a'), door());
  assert.ok(v.ok);
  assert.deepEqual(v.grant, {
    door: 'spaSSH',
    address: '10.99.0.2',
    family: 4,
    ports: [{ proto: 'tcp', port: 22 }],
    timeout: 30,
  });
});

test('grant: -s (allow IP 0.0.0.0) opens for the packet source, IPv4 and IPv6', () => {
  const f = fixture('access-s');
  const v4 = verdict(f, door());
  assert.ok(v4.ok);
  assert.equal(v4.grant.address, SRC);
  const v6 = verdict(f, door(), { src: '2001:db8::7' });
  assert.ok(v6.ok);
  assert.equal(v6.grant.address, '2001:db8::7');
  assert.equal(v6.grant.family, 6);
});

test('refused: -s with spa_require_source_address', () => {
  const v = verdict(fixture('access-s'), door({ requireSourceAddress: true }));
  assert.equal(v.ok, false);
  assert.equal(!v.ok && v.code, 'require-source');
});

test('grant: multi-port -A tcp/22,udp/53 opens both when both are in spa_open_ports; nothing when one is not', () => {
  const f = fixture('multi');
  const both = verdict(
    f,
    door({
      openPorts: [
        { proto: 'udp', port: 53 },
        { proto: 'tcp', port: 22 },
      ],
    }),
  );
  assert.ok(both.ok);
  assert.deepEqual(both.grant.ports, [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
  ]);
  const one = verdict(f, door());
  assert.equal(one.ok, false);
  assert.equal(!one.ok && one.code, 'port');
  assert.match(!one.ok ? one.reason : '', /udp\/53 is not in spa_open_ports/);
});

test('grant: -f 60 gives 60 s; -f 9999 is capped at spa_max_timeout', () => {
  const a = verdict(fixture('timeout-60'), door());
  assert.ok(a.ok);
  assert.equal(a.grant.timeout, 60);
  const b = verdict(fixture('timeout-9999'), door({ maxTimeout: 300 }));
  assert.ok(b.ok);
  assert.equal(b.grant.timeout, 300);
});

test('grant: a --key-rijndael passphrase is the key bytes as written (its base64 in the door)', () => {
  assert.ok(verdict(fixture('passphrase'), doorFor(fixture('passphrase'))).ok);
  const v = verdict(fixture('passphrase'), door());
  assert.equal(!v.ok && v.code, 'decrypt');
});

for (const h of ['md5', 'sha1', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
  test(`HMAC type ${h}: accepted by a door of that type, refused (HMAC mismatch) by a sha256 door`, () => {
    const f = fixture(`hmac-${h}`);
    assert.ok(verdict(f, door({ hmacType: h })).ok);
    const v = verdict(f, door({ hmacType: 'sha256' }));
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.code, 'hmac');
  });
}

test('HMAC type mismatch with equal tag lengths (sha256 packet, sha3_256 door) is refused', () => {
  const v = verdict(fixture('access-a'), door({ hmacType: 'sha3_256' }));
  assert.equal(!v.ok && v.code, 'hmac');
});

test('refused: wrong HMAC key (HMAC mismatch, nothing decrypted), wrong Rijndael key (decrypt)', () => {
  const a = verdict(fixture('wrong-hmac-key'), door());
  assert.equal(!a.ok && a.code, 'hmac');
  const b = verdict(fixture('wrong-rijndael-key'), door());
  assert.equal(!b.ok && b.code, 'decrypt');
});

test('timestamps: ±120 s accepted, 121 s stale or future refused (injected clock)', () => {
  const f = fixture('access-a');
  for (const [off, expect] of [
    [0, 'ok'],
    [120, 'ok'],
    [-120, 'ok'],
    [121, 'stale'],
    [-121, 'future'],
    [86400, 'stale'],
    [-86400, 'future'],
  ] as const) {
    const v = verdict(f, door(), { nowMs: atMs(f, off) });
    assert.equal(v.ok ? 'ok' : v.code, expect, `clock offset ${off} s`);
  }
});

test('refused: a port not in spa_open_ports', () => {
  const v = verdict(fixture('port-80'), door());
  assert.equal(!v.ok && v.code, 'port');
});

test('refused: source outside spa_source; accepted inside it (v4 and v6 blocks)', () => {
  const d = door({ sources: cidrs('203.0.113.0/24', '2001:db8:1::/48') });
  const f = fixture('access-a');
  assert.equal(verdict(f, d, { src: SRC }).ok, false);
  const out = verdict(f, d, { src: SRC });
  assert.equal(!out.ok && out.code, 'source');
  assert.ok(verdict(f, d, { src: '203.0.113.200' }).ok);
  assert.ok(verdict(f, d, { src: '2001:db8:1:ffff::1' }).ok);
  assert.equal(verdict(f, d, { src: '2001:db8:2::1' }).ok, false);
});

for (const [name, code] of [
  ['nat', 'nat'],
  ['nat-timeout', 'nat'],
  ['nat-local', 'nat'],
  ['command', 'command'],
] as const) {
  test(`refused: ${name} message (${fixture(name).note}), but remembered in the replay cache`, () => {
    const cache = new ReplayCache();
    const f = fixture(name);
    const v = verdict(f, door(), { cache });
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.code, code);
    assert.equal(cache.size, 1);
  });
}

test('refused: 400+ characters (fwknopd takes it for GnuPG)', () => {
  const v = verdict(fixture('long'), door({ openPorts: [{ proto: 'tcp', port: 22 }] }));
  assert.equal(!v.ok && v.code, 'too-long');
});

test('refused: tampered packets (every position of a real packet, one character changed)', () => {
  const f = fixture('multi');
  const d = door({
    openPorts: [
      { proto: 'tcp', port: 22 },
      { proto: 'udp', port: 53 },
    ],
  });
  for (let i = 0; i < f.packet.length; i++) {
    const c = f.packet[i];
    const swap = c === 'A' ? 'B' : 'A';
    const v = verdict(f.packet.slice(0, i) + swap + f.packet.slice(i + 1), d, { nowMs: atMs(f) });
    assert.equal(v.ok, false, `position ${i}`);
    // The first ten characters carry the salt... all are covered by the HMAC.
    assert.equal(
      !v.ok && v.code,
      i === 0 && swap + f.packet.slice(1, 10) === 'U2FsdGVkX1' ? 'prefix' : 'hmac',
      `position ${i}`,
    );
  }
});

test('refused: prefixed, truncated and extended packets', () => {
  const f = fixture('access-a');
  const p = f.packet;
  const cases: [string, string][] = [
    ['U2FsdGVkX1' + p, 'prefix'],
    [p.slice(0, -1), 'hmac'],
    [p.slice(1), 'hmac'],
    [p.slice(0, 139), 'length'],
    [p.slice(0, 150), 'hmac'],
    [p + 'A', 'hmac'],
    ['A' + p, 'hmac'],
    [p + p, 'too-long'],
    ['', 'length'],
  ];
  for (const [pkt, code] of cases) {
    const v = verdict(pkt, door(), { nowMs: atMs(f) });
    assert.equal(v.ok ? 'ok' : v.code, code, `${pkt.length} chars`);
  }
});

// ---------------------------------------------------------------------------
// Replays
// ---------------------------------------------------------------------------

test('replay: the same packet a second time is refused, also after a restart (state file round trip)', () => {
  const f = fixture('access-a');
  const cache = new ReplayCache();
  assert.ok(verdict(f, door(), { cache }).ok);
  const again = verdict(f, door(), { cache, nowMs: atMs(f, 1) });
  assert.equal(!again.ok && again.code, 'replay');
  const json = JSON.parse(JSON.stringify(cache.toJSON())) as unknown;
  const { cache: loaded, dropped } = ReplayCache.fromJSON(json, atMs(f, 5));
  assert.deepEqual(dropped, []);
  const afterRestart = verdict(f, door(), { cache: loaded, nowMs: atMs(f, 5) });
  assert.equal(!afterRestart.ok && afterRestart.code, 'replay');
});

test('replay: an authentic but stale packet is remembered (as fwknopd), so it stays refused as a replay', () => {
  const f = fixture('access-a');
  const cache = new ReplayCache();
  const v = verdict(f, door(), { cache, nowMs: atMs(f, 500) });
  assert.equal(!v.ok && v.code, 'stale');
  assert.equal(cache.size, 1);
});

test('replay: disguised variants of an accepted packet (reference pitfalls P1, P2, P6) open nothing', () => {
  const f = fixture('access-a');
  const p = f.packet;
  const cache = new ReplayCache();
  assert.ok(verdict(f, door(), { cache }).ok);
  const tagLast = p[p.length - 1];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const idx = alphabet.indexOf(tagLast);
  // The sha256 tag's last character carries 4 data bits and 2 unused ones: the same MAC bytes in 3 other spellings.
  const tagVariants = [1, 2, 3].map((k) => p.slice(0, -1) + alphabet[(idx & ~3) | ((idx + k) & 3)]);
  for (const t of tagVariants)
    assert.deepEqual(
      Buffer.from(t.slice(-43) + '=', 'base64'),
      Buffer.from(p.slice(-43) + '=', 'base64'),
      'test bug: not the same MAC bytes',
    );
  const variants: [string, string, string][] = [
    ['prefix re-added', 'U2FsdGVkX1' + p, 'prefix'],
    ['trailing newline (as --save-packet writes it)', p + '\n', 'charset'],
    ['trailing space', p + ' ', 'charset'],
    ['leading space', ' ' + p, 'charset'],
    ['"=" padding on the tag', p + '=', 'charset'],
    ['CRLF', p + '\r\n', 'charset'],
    [
      'HTTP alphabet (- and _)',
      p.replace(/\+/g, '-').replace(/\//g, '_'),
      p.includes('+') || p.includes('/') ? 'charset' : 'replay',
    ],
    ...tagVariants.map((t, k): [string, string, string] => [`tag spelled differently (${k + 1})`, t, 'hmac']),
    ['case of one letter swapped', p.replace(/[a-z]/, (c) => c.toUpperCase()), 'hmac'],
  ];
  for (const [what, pkt, code] of variants) {
    const v = verdict(pkt, door(), { cache, nowMs: atMs(f, 1) });
    assert.equal(v.ok ? 'ok' : v.code, code, what);
  }
  assert.equal(cache.size, 1, 'no variant was remembered as a new packet');
});

test('replay digest is fwknopd\'s: base64(SHA-256(payload)) without "="', () => {
  const d = spaReplayDigest(bytes(fixture('access-a')));
  assert.match(d, /^[A-Za-z0-9+/]{43}$/);
  assert.notEqual(d, spaReplayDigest(bytes(fixture('access-s'))));
});

test('replay cache: bounded, entries kept for the whole window, full cache fails closed', () => {
  const c = new ReplayCache({ maxEntries: 3, windowMs: 1000 });
  const dg = (i: number) => spaReplayDigest(Buffer.from(String(i)));
  assert.equal(c.insert(dg(1), 0), 'inserted');
  assert.equal(c.insert(dg(2), 10), 'inserted');
  assert.equal(c.insert(dg(3), 20), 'inserted');
  assert.equal(c.insert(dg(3), 30), 'duplicate');
  assert.equal(c.insert(dg(4), 1000), 'full', 'the oldest is still inside the window');
  assert.equal(c.has(dg(1), 1000), true);
  assert.equal(c.size, 3);
  assert.equal(c.insert(dg(4), 1001), 'inserted', 'the oldest is past the window: evicted');
  assert.equal(c.has(dg(1), 1001), false);
  assert.equal(c.size, 3);
  for (let i = 5; i < 10_000; i++) c.insert(dg(i), 2000 + i * 1000);
  assert.ok(c.size <= 3);
});

test('handleSpaPacket: a full replay cache refuses authentic packets (fails closed)', () => {
  const cache = new ReplayCache({ maxEntries: 1 });
  const a = fixture('access-a');
  assert.ok(verdict(a, door(), { cache }).ok);
  const v = verdict(fixture('timeout-60'), door(), { cache, nowMs: atMs(a, 2) });
  assert.equal(!v.ok && v.code, 'replay-full');
});

test('replay cache state file: bad entries are dropped with a reason, the others kept; expired skipped', () => {
  const now = 1_000_000_000;
  const c = new ReplayCache();
  const good = [1, 2, 3].map((i) => spaReplayDigest(Buffer.from(`good${i}`)));
  good.forEach((g, i) => c.insert(g, now - 1000 * (3 - i)));
  const json = c.toJSON();
  const entries: unknown[] = [...json.entries];
  entries.push(
    ['not a digest', now],
    'garbage',
    [good[0], now],
    [spaReplayDigest(Buffer.from('neg')), -5],
    [spaReplayDigest(Buffer.from('old')), now - 10 * 60_000],
    [spaReplayDigest(Buffer.from('future')), now + 3_600_000],
  );
  const { cache, dropped, expired } = ReplayCache.fromJSON({ version: 1, entries }, now);
  assert.deepEqual(
    dropped.map((d) => d.index),
    [3, 4, 5, 6],
  );
  assert.ok(dropped.every((d) => d.reason.length > 0));
  assert.equal(expired, 1);
  assert.equal(cache.size, 4);
  for (const g of good) assert.ok(cache.has(g, now));
  assert.ok(cache.has(spaReplayDigest(Buffer.from('future')), now), 'a future-stamped entry is kept');
  const bad = ReplayCache.fromJSON('nonsense', now);
  assert.equal(bad.cache.size, 0);
  assert.equal(bad.dropped.length, 1);
});

// ---------------------------------------------------------------------------
// Several doors, access check alone
// ---------------------------------------------------------------------------

test('several doors on one port: the one whose keys authenticate the packet decides', () => {
  const other = door({ name: 'other', enc: Buffer.from(K.K2, 'base64'), hmac: Buffer.from(K.H2, 'base64') });
  const v = verdict(fixture('access-a'), [other, door({ name: 'mine' })]);
  assert.ok(v.ok);
  assert.equal(v.door, 'mine');
  const none = verdict(fixture('wrong-rijndael-key'), [other, door({ name: 'mine' })]);
  assert.equal(!none.ok && none.code, 'decrypt', 'the most advanced failure is reported');
});

test('checkSpaAccess alone: source, age and port checks with reasons naming no key', () => {
  const f = fixture('access-a');
  const r = decodeSpaPacket(bytes(f), door().keys);
  assert.ok(r.ok);
  const d = door({ sources: cidrs('10.0.0.0/8') });
  const a = checkSpaAccess(r.message, '10.1.2.3', d, atMs(f));
  assert.ok(a.ok);
  const b = checkSpaAccess(r.message, '11.1.2.3', d, atMs(f));
  assert.equal(!b.ok && b.code, 'source');
  for (const res of [b, checkSpaAccess(r.message, '10.1.2.3', d, atMs(f, 999))]) {
    assert.ok(!res.ok);
    for (const key of [K.K1, K.H1]) assert.ok(!res.reason.includes(key));
  }
});

test("SpaReplay (the daemon's replay cache on disk): once settled() resolves, the accepted packet's digest is in the file, and a new run refuses the packet", async () => {
  const { SpaReplay } = await import('../../src/daemon/spa-replay');
  const pino = (await import('pino')).default;
  const { mkdtemp, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'knockd-spa-replay-'));
  try {
    const f = fixture('access-a');
    const file = join(dir, 'spa-replay.json');
    const now = (): number => atMs(f);
    const a = new SpaReplay(file, pino({ level: 'silent' }), now);
    await a.load();
    const v = a.judge(bytes(f), SRC, door());
    assert.ok(v.ok);
    // what the daemon waits for before it asks firewalld for the rule
    await a.settled();
    const digest = spaReplayDigest(bytes(f));
    assert.ok((await readFile(file, 'utf8')).includes(digest), 'the digest is on disk');
    const b = new SpaReplay(file, pino({ level: 'silent' }), now);
    await b.load();
    const again = b.judge(bytes(f), SRC, door());
    assert.equal(!again.ok && again.code, 'replay');
  } finally {
    await rm(dir, { recursive: true });
  }
});
