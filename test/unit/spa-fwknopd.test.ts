/**
 * Cross-check with the real fwknopd 2.6.10 (Debian's fwknop-server): fresh
 * packets from the real fwknop client, and disguised or damaged copies of
 * them, go both through our handleSpaPacket() and through
 * `fwknopd --test --pcap-file` (test mode: decides, touches no firewall)
 * with the equivalent access.conf stanza. Every verdict must agree.
 *
 * Each case is sent from its own source address, so fwknopd's log lines
 * ("[IP] (stanza #1) --test mode enabled, skipping firewall manipulation."
 * for an accepted packet) say which packet they belong to.
 *
 * Not covered here: replays. In --test mode fwknopd does not record digests
 * (observed: digest.cache stays empty), so it accepts a repeated packet;
 * the replay cases are in spa.test.ts and the reference's own record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import type { SpaDoor } from '../../src/model';
import { parseCidr } from '../../src/spa/cidr';
import { handleSpaPacket } from '../../src/spa/handle';
import { makeSpaKeys } from '../../src/spa/keys';
import { ReplayCache } from '../../src/spa/replay';
import { runFwknop, SPA_TEST_KEYS as K } from '../support/make-spa-fixtures';
import { pcapFile, udpFrame } from '../support/pcap-file';
import { b64, encodeSpa, spaPlaintext } from '../support/spa-encode';

const SERVER = '10.0.0.1';
const net = parseCidr('198.51.100.0/24');
if ('error' in net) throw new Error(net.error);
const DOOR: SpaDoor = {
  name: 'spa',
  port: 62201,
  keys: makeSpaKeys(Buffer.from(K.K1, 'base64'), Buffer.from(K.H1, 'base64'), 'sha256'),
  sources: [net.cidr],
  openPorts: [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
  ],
  maxTimeout: 300,
  defaultTimeout: 30,
  requireSourceAddress: false,
};
const ACCESS_CONF = `SOURCE              198.51.100.0/24
KEY_BASE64          ${K.K1}
HMAC_KEY_BASE64     ${K.H1}
HMAC_DIGEST_TYPE    sha256
OPEN_PORTS          tcp/22, udp/53
FW_ACCESS_TIMEOUT   30
MAX_FW_TIMEOUT      300
`;
// A second stanza (and door) with other keys and sha1 HMAC: its tag length puts an authentic packet at 401 characters.
const ACCESS_CONF_SHA1 = `
SOURCE              198.51.100.0/24
KEY_BASE64          ${K.K2}
HMAC_KEY_BASE64     ${K.H2}
HMAC_DIGEST_TYPE    sha1
OPEN_PORTS          tcp/22, udp/53
`;
const DOOR_SHA1: SpaDoor = {
  ...DOOR,
  name: 'spa-sha1',
  keys: makeSpaKeys(Buffer.from(K.K2, 'base64'), Buffer.from(K.H2, 'base64'), 'sha1'),
};

/**
 * An authentic packet (our test encoder) whose plaintext is padded (a longer
 * username, a repeated tcp/22 in the access list) to `minLen`..`minLen`+15
 * bytes, so that its wire length is known.
 */
function sized(keys: SpaDoor['keys'], minLen: number): string {
  for (let n = 0; n < 45 * 25; n++) {
    const user = `root${'x'.repeat(n % 45)}`;
    const access = ',tcp/22'.repeat(1 + Math.floor(n / 45));
    const pt = spaPlaintext([
      '1234567890123456',
      b64(user),
      String(Math.floor(Date.now() / 1000)),
      '3.0.0',
      '1',
      b64(`10.99.0.2${access}`),
    ]);
    if (pt.length >= minLen && pt.length < minLen + 16) return encodeSpa(pt, keys, randomBytes(8));
  }
  throw new Error('test bug: no plaintext of that size');
}

const FWKNOPD_CONF = 'PCAP_FILTER udp port 62201;\nMAX_SPA_PACKET_AGE 120;\nENABLE_SPA_PACKET_AGING Y;\n';

const client = (args: string[], enc: string = K.K1, hmac: string = K.H1): string =>
  runFwknop(['-A', 'tcp/22', '-a', '10.99.0.2', ...args], enc, hmac).packet;
const replaceLast = (p: string): string => p.slice(0, -1) + (p.endsWith('A') ? 'B' : 'A');

interface Case {
  name: string;
  payload: string;
  /** Source address; default a unique one inside 198.51.100.0/24. */
  src?: string;
}

test('cross-check: our verdicts equal the real fwknopd --test verdicts on real client packets', () => {
  const base = client([]);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const li = alphabet.indexOf(base[base.length - 1]);
  const cases: Case[] = [
    { name: '-A tcp/22 -a IP', payload: base },
    { name: '-s', payload: runFwknop(['-A', 'tcp/22', '-s'], K.K1, K.H1).packet },
    { name: '-A tcp/22,udp/53', payload: runFwknop(['-A', 'tcp/22,udp/53', '-a', '10.99.0.2'], K.K1, K.H1).packet },
    { name: '-f 60', payload: client(['-f', '60']) },
    { name: '-U alice', payload: client(['-U', 'alice']) },
    { name: '-m sha3_512', payload: client(['-m', 'sha3_512']) },
    { name: '-m md5', payload: client(['-m', 'md5']) },
    { name: 'port not allowed (tcp/80)', payload: runFwknop(['-A', 'tcp/80', '-a', '10.99.0.2'], K.K1, K.H1).packet },
    {
      name: 'one of two ports not allowed',
      payload: runFwknop(['-A', 'tcp/22,tcp/80', '-a', '10.99.0.2'], K.K1, K.H1).packet,
    },
    { name: 'wrong HMAC key', payload: client([], K.K1, K.H2) },
    { name: 'wrong Rijndael key', payload: client([], K.K2, K.H1) },
    { name: 'HMAC type sha512 (door sha256)', payload: client(['--hmac-digest-type', 'sha512']) },
    { name: 'HMAC type sha3_256 (door sha256, same tag length)', payload: client(['--hmac-digest-type', 'sha3_256']) },
    { name: 'timestamp 300 s behind', payload: client(['--time-offset-minus', '300']) },
    { name: 'timestamp 300 s ahead', payload: client(['--time-offset-plus', '300']) },
    { name: 'timestamp 60 s behind', payload: client(['--time-offset-minus', '60']) },
    { name: 'NAT access (-N)', payload: client(['-N', '192.168.1.2:22']) },
    { name: 'local NAT (--nat-local)', payload: client(['--nat-local']) },
    {
      name: 'command (--server-cmd)',
      payload: runFwknop(['-a', '10.99.0.2', '--server-cmd', 'echo hi'], K.K1, K.H1).packet,
    },
    { name: 'source outside SOURCE', payload: client([]), src: '192.0.2.9' },
    {
      name: '400+ characters',
      payload: runFwknop(
        ['-A', Array.from({ length: 16 }, (_, i) => `tcp/${1000 + i}`).join(','), '-a', '10.99.0.2'],
        K.K1,
        K.H1,
      ).packet,
    },
    // The 400-character rule (GnuPG for fwknopd): 16 and 17 AES blocks, sha256 and sha1 tags.
    { name: '396 characters (sha256 door, 16 blocks)', payload: sized(DOOR.keys, 240) },
    { name: '380 characters (sha1 door, 16 blocks)', payload: sized(DOOR_SHA1.keys, 240) },
    { name: '401 characters (sha1 door, 17 blocks)', payload: sized(DOOR_SHA1.keys, 256) },
    { name: '417 characters (sha256 door, 17 blocks)', payload: sized(DOOR.keys, 256) },
    { name: 'prefix U2FsdGVkX1 re-added', payload: 'U2FsdGVkX1' + client([]) },
    { name: '"=" appended', payload: client([]) + '=' },
    { name: 'tag spelled with other unused bits', payload: base.slice(0, -1) + alphabet[(li & ~3) | ((li + 1) & 3)] },
    { name: 'last character changed', payload: replaceLast(client([])) },
    { name: 'truncated by one', payload: client([]).slice(0, -1) },
    { name: 'first character removed', payload: client([]).slice(1) },
  ];

  const dir = mkdtempSync(join(tmpdir(), 'spa-fwknopd-'));
  try {
    const srcs = cases.map((c, i) => c.src ?? `198.51.100.${10 + i}`);
    const frames = cases.map((c, i) =>
      udpFrame({
        src: srcs[i],
        dst: SERVER,
        sport: 40000 + i,
        dport: 62201,
        payload: Buffer.from(c.payload, 'latin1'),
      }),
    );
    writeFileSync(join(dir, 'spa.pcap'), pcapFile(frames));
    writeFileSync(join(dir, 'access.conf'), ACCESS_CONF + ACCESS_CONF_SHA1, { mode: 0o600 });
    writeFileSync(join(dir, 'fwknopd.conf'), FWKNOPD_CONF, { mode: 0o600 });
    const r = spawnSync(
      'fwknopd',
      [
        '-c',
        join(dir, 'fwknopd.conf'),
        '-a',
        join(dir, 'access.conf'),
        '-d',
        join(dir, 'digest.cache'),
        '-p',
        join(dir, 'fwknopd.pid'),
        '-r',
        dir,
        '-f',
        '-t',
        '--pcap-file',
        join(dir, 'spa.pcap'),
        '-C',
        String(cases.length),
      ],
      { encoding: 'utf8', timeout: 15_000 },
    );
    const log = `${r.stdout}\n${r.stderr}`;
    assert.match(log, /Starting fwknopd main event loop/, `fwknopd did not start:\n${log}`);

    const now = Date.now();
    const rows: string[] = [];
    let mismatches = 0;
    cases.forEach((c, i) => {
      const src = srcs[i];
      const theirs =
        log.includes(`[${src}] (stanza #1) --test mode enabled, skipping firewall manipulation.`) ||
        log.includes(`[${src}] (stanza #2) --test mode enabled, skipping firewall manipulation.`);
      const v = handleSpaPacket(Buffer.from(c.payload, 'latin1'), src, [DOOR, DOOR_SHA1], new ReplayCache(), now);
      const ours = v.ok;
      if (ours !== theirs) mismatches++;
      rows.push(
        `${ours === theirs ? 'same' : 'DIFF'}  ${c.payload.length} chars  fwknopd ${theirs ? 'accept' : 'refuse'}  ours ${v.ok ? 'accept' : `refuse (${v.code})`}  ${c.name}`,
      );
    });
    if (process.env.SPA_XCHECK_VERBOSE === '1') process.stdout.write(`${rows.join('\n')}\n`);
    const accepted = rows.filter((l) => l.includes('fwknopd accept')).length;
    assert.equal(mismatches, 0, `verdicts differ:\n${rows.join('\n')}\n--- fwknopd log ---\n${log}`);
    // Not degenerate: both kinds of verdict occur.
    assert.ok(accepted >= 7 && accepted < cases.length, rows.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
