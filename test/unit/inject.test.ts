/**
 * Nothing from a packet reaches a shell except an address the decoder produced:
 *  (a) every text formatAddress can produce is an IP literal made of
 *      [0-9a-f.:] only (no shell metacharacters, no white space);
 *  (b) substituteIp refuses anything that is not a plain IP literal and pastes
 *      real addresses verbatim;
 *  (c) end to end, in process: hand-built frames → FramePipeline → Matcher →
 *      CommandRunner → /bin/sh -c 'echo %IP% > FILE': FILE holds exactly the
 *      decoded source address.
 */
import { Rng } from '../support/rng';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';

import { CommandRunner, substituteIp, type CommandDoor, type CommandInfo } from '../../src/daemon/commands';
import { FramePipeline } from '../../src/capture/pipeline';
import { formatAddress, parseAddress } from '../../src/decode/address';
import { IPPROTO_TCP, TH_SYN } from '../../src/decode/types';
import { Matcher, type DoorSpec, type MatchEvent } from '../../src/matcher/matcher';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x696e6a;
const N_ADDR = 100_000;
const ADDRESS_CHARS = /^[0-9a-f.:]+$/;

function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** Random address bytes, biased towards the shapes with special text forms (zero runs, v4-mapped, v4-compatible). */
function randomAddress(next: () => number, buf: Buffer, off: number, family: 4 | 6): void {
  const size = family === 4 ? 4 : 16;
  const byte = (): number => Math.floor(next() * 256);
  const kind = Math.floor(next() * 8);
  for (let i = 0; i < size; i++) buf[off + i] = byte();
  if (family === 6) {
    if (kind === 0)
      buf.fill(0, off, off + 16); // ::
    else if (kind === 1) {
      buf.fill(0, off, off + 10); // ::ffff:a.b.c.d
      buf[off + 10] = 0xff;
      buf[off + 11] = 0xff;
    } else if (kind === 2)
      buf.fill(0, off, off + 12); // ::a.b.c.d (or ::x)
    else if (kind <= 5) {
      for (let g = 0; g < 8; g++) if (next() < 0.5) buf.fill(0, off + 2 * g, off + 2 * g + 2); // zero groups anywhere
    }
  } else if (kind === 0) buf.fill(next() < 0.5 ? 0 : 255, off, off + 4);
}

const silentLog = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
  fatal: () => undefined,
} as unknown as Logger;

// ---------------------------------------------------------------------------
// (a) formatAddress
// ---------------------------------------------------------------------------

test(`(a) ${N_ADDR} formatted addresses are IP literals of [0-9a-f.:] only, and substitute verbatim (seed ${SEED})`, () => {
  const next = rng(SEED);
  // Addresses at varying offsets of a capture-sized buffer, as the decoder hands them over.
  const buf = Buffer.alloc(64);
  for (let k = 0; k < N_ADDR; k++) {
    const family: 4 | 6 = next() < 0.5 ? 4 : 6;
    const off = Math.floor(next() * (buf.length - 16));
    buf.fill(Math.floor(next() * 256));
    randomAddress(next, buf, off, family);
    const text = formatAddress(buf, off, family);
    const where = `${buf.subarray(off, off + (family === 4 ? 4 : 16)).toString('hex')} → ${JSON.stringify(text)}`;
    if (!ADDRESS_CHARS.test(text)) assert.fail(`formatAddress produced characters outside [0-9a-f.:]: ${where}`);
    if (isIP(text) !== family)
      assert.fail(`net.isIP(${JSON.stringify(text)}) = ${isIP(text)}, expected ${family}: ${where}`);
    const back = parseAddress(text);
    if (
      back === undefined ||
      back.family !== family ||
      !back.bytes.equals(buf.subarray(off, off + back.bytes.length))
    ) {
      assert.fail(`formatAddress/parseAddress do not round-trip: ${where}`);
    }
    if (substituteIp('x %IP% y %IP%', text) !== `x ${text} y ${text}`) assert.fail(`substituteIp changed ${where}`);
  }
});

// ---------------------------------------------------------------------------
// (b) substituteIp
// ---------------------------------------------------------------------------

const HOSTILE: readonly string[] = [
  '1.2.3.4; touch /tmp/x',
  '$(id)',
  '`id`',
  '1.2.3.4\nrm -rf /',
  '::1 && id',
  '::1||id',
  '1.2.3.4|id',
  '1.2.3.4 > /etc/passwd',
  '1.2.3.4$(id)',
  '::1`id`',
  "1.2.3.4' ; id ; '",
  '"1.2.3.4"',
  '1.2.3.4\0',
  '1.2.3.4\r',
  '1.2.3.4\t',
  ' 1.2.3.4',
  '1.2.3.4 ',
  'fe80::1%eth0',
  'fe80::1%$(id)',
  'fe80::1%eth0;id',
  '[::1]',
  '[::1]:22',
  '1.2.3.4:22',
  '1.2.3.4/24',
  '2001:db8::/32',
  '%IP%',
  '',
  'localhost',
  '-rf',
  '--help',
  '1.2.3',
  '256.1.1.1',
  '::ffff:1.2.3.4; id',
  '1.2.3.4\u2028id',
  '\uff11.2.3.4', // fullwidth digit one
  '1.2.3.4${IFS}id',
  '*',
  '~',
];

test('(b) substituteIp refuses hostile "addresses" and pastes real ones verbatim', () => {
  for (const bad of HOSTILE) {
    assert.throws(
      () => substituteIp('iptables -I INPUT -s %IP% -j ACCEPT', bad),
      Error,
      `accepted ${JSON.stringify(bad)}`,
    );
    // Even when the command has no %IP% at all: the address is checked regardless.
    assert.throws(() => substituteIp('true', bad), Error, `accepted ${JSON.stringify(bad)} for a command without %IP%`);
  }
  const good = [
    '192.0.2.1',
    '0.0.0.0',
    '255.255.255.255',
    '2001:db8::1',
    '::',
    '::1',
    '::ffff:192.0.2.1',
    '::192.0.2.1',
    'fe80::1',
    '2001:db8:0:1:1:1:1:1',
  ];
  for (const ip of good) {
    assert.equal(substituteIp('iptables -I INPUT -s %IP% -j ACCEPT', ip), `iptables -I INPUT -s ${ip} -j ACCEPT`);
    assert.equal(substituteIp('%IP%%IP%', ip), `${ip}${ip}`);
    assert.equal(substituteIp('no placeholder', ip), 'no placeholder');
    // knockd's placeholder is case-sensitive: %ip% stays as written.
    assert.equal(substituteIp('%ip% %IP%', ip), `%ip% ${ip}`);
  }
});

// ---------------------------------------------------------------------------
// (c) end to end: frame → pipeline → matcher → CommandRunner → /bin/sh
// ---------------------------------------------------------------------------

const LOCAL_V4 = '198.51.100.2';
const LOCAL_V6 = '2001:db8::2';
const KNOCK_PORT = 4242;

/** Ethernet + IPv4 or IPv6 + TCP SYN to KNOCK_PORT from the given source bytes. */
function synFrame(src: Buffer): Buffer {
  const v4 = src.length === 4;
  const l4 = Buffer.alloc(20);
  l4.writeUInt16BE(40000, 0);
  l4.writeUInt16BE(KNOCK_PORT, 2);
  l4[12] = 0x50;
  l4[13] = TH_SYN;
  let ip: Buffer;
  if (v4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(40, 2);
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    src.copy(ip, 12);
    (parseAddress(LOCAL_V4)?.bytes as Buffer).copy(ip, 16);
  } else {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(20, 4);
    ip[6] = IPPROTO_TCP;
    ip[7] = 64;
    src.copy(ip, 8);
    (parseAddress(LOCAL_V6)?.bytes as Buffer).copy(ip, 24);
  }
  const eth = Buffer.from('0200000000010200000000020800', 'hex');
  if (!v4) eth.writeUInt16BE(0x86dd, 12);
  return Buffer.concat([eth, ip, l4]);
}

test('(c) a decoded source address reaches /bin/sh verbatim, and only it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knockd-inject-'));
  try {
    // The file is named after the address too, so each knocker gets its own.
    const door: CommandDoor = { name: 'inject', startCommand: `echo %IP% > "${dir}/%IP%"`, cmdTimeout: 0 };
    const spec: DoorSpec = {
      name: 'inject',
      sequence: [{ proto: IPPROTO_TCP, port: KNOCK_PORT }],
      seqTimeoutMs: 10_000,
      tcpFlags: { set: TH_SYN, clear: 0 },
      action: 'open',
    };
    const started: CommandInfo[] = [];
    const runner = new CommandRunner(silentLog, { events: { started: (i) => started.push(i) } });
    const opened: string[] = [];
    const matcher = new Matcher([spec], (e: MatchEvent) => {
      if (e.type !== 'open') return;
      opened.push(e.src);
      runner.open(door, e.src, e.family);
    });
    matcher.setLocalAddresses([LOCAL_V4, LOCAL_V6]);
    const pipe = new FramePipeline(matcher);

    // Hand-picked sources with every text shape, plus random ones.
    const sources: Buffer[] = [
      '192.0.2.77',
      '2001:db8::1',
      '::ffff:203.0.113.5',
      '::',
      '::1',
      '0.0.0.0',
      '255.255.255.255',
      'fe80::abcd:0:0:1',
    ].map((a) => parseAddress(a)?.bytes as Buffer);
    const next = rng(SEED ^ 0xc0ffee);
    for (let k = 0; k < 12; k++) {
      const b = Buffer.alloc(k % 2 === 0 ? 4 : 16);
      randomAddress(next, b, 0, b.length === 4 ? 4 : 6);
      sources.push(b);
    }
    const expected = new Set<string>();
    for (const src of sources) {
      const frame = synFrame(src);
      pipe.onFrame('ETHERNET', frame, frame.length, 1000);
      expected.add(formatAddress(src, 0, src.length === 4 ? 4 : 6));
    }
    assert.equal(pipe.stats.knocks, sources.length);
    assert.deepEqual(new Set(opened), expected, 'every knock opened the door');

    await runner.flush();

    assert.equal(started.length, expected.size);
    for (const s of started) assert.equal(s.command, `echo ${s.src} > "${dir}/${s.src}"`);
    // Exactly one file per address, holding exactly that address.
    assert.deepEqual(new Set(readdirSync(dir)), expected);
    for (const ip of expected) assert.equal(readFileSync(join(dir, ip), 'utf8'), `${ip}\n`, `file for ${ip}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('(c) a hostile source handed to the runner directly is refused before any shell runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knockd-inject-'));
  try {
    const marker = join(dir, 'pwned');
    const door: CommandDoor = {
      name: 'inject',
      startCommand: `echo %IP% > "${dir}/out"`,
      stopCommand: `echo %IP% >> "${dir}/out"`,
      cmdTimeout: 0,
    };
    const started: CommandInfo[] = [];
    const runner = new CommandRunner(silentLog, { events: { started: (i) => started.push(i) } });
    for (const bad of [
      `1.2.3.4; touch ${marker}`,
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `1.2.3.4\ntouch ${marker}`,
      `::1 && touch ${marker}`,
    ]) {
      assert.throws(() => runner.open(door, bad, bad.includes('::') ? 6 : 4), Error, JSON.stringify(bad));
    }
    await runner.flush();
    assert.equal(started.length, 0, 'no shell was started');
    assert.equal(existsSync(marker), false);
    assert.equal(existsSync(join(dir, 'out')), false);
    assert.deepEqual(runner.pending(), [], 'no stop command was scheduled');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
