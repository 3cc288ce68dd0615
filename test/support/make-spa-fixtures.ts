/**
 * Makes the SPA fixtures (test/fixtures/spa/packets.json) with the real
 * fwknop client (Debian's fwknop-client 2.6.10): each packet is built with
 * `fwknop -T` (test mode: built, not sent) and saved with `--save-packet`.
 * Fixed test keys (below; test data, never used anywhere else); the client's
 * `-v` dump of the fields it encoded is stored next to each packet, so the
 * tests compare our decoder with the client's own view.
 *
 *   npm run build && node dist/test/support/make-spa-fixtures.js
 *
 * Packets carry the client's clock as their timestamp (stored as
 * `timestamp`); tests inject a clock relative to it. Regenerating changes
 * every packet (random salt, random value, time) but no expected verdict.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Test keys. K1/H1 are "the door's" keys; K2/H2 are other keys of the right sizes. */
export const SPA_TEST_KEYS = {
  K1: Buffer.from('spa-fixture-rijndael-key-one-32b', 'latin1').toString('base64'),
  H1: Buffer.from('spa-fixture-hmac-key-one-is-sixty-four-bytes-long-0123456789abcd', 'latin1').toString('base64'),
  K2: Buffer.from('spa-fixture-rijndael-key-two-32b', 'latin1').toString('base64'),
  H2: Buffer.from('spa-fixture-hmac-key-two-is-sixty-four-bytes-long-0123456789abcd', 'latin1').toString('base64'),
  /** A passphrase given with --key-rijndael (used byte for byte; its base64 is what a door would hold). */
  PASS: 'correct horse battery',
} as const;

export interface SpaFixture {
  name: string;
  /** What the packet is for, in a few words. */
  note: string;
  /** Client arguments, keys written as $K1, $H1, ... (see `keys`). */
  args: string[];
  /** Keys the packet was made with. */
  encKey: 'K1' | 'K2' | 'PASS';
  hmacKey: 'H1' | 'H2';
  hmacType: string;
  /** The client's `-v` dump of what it encoded. */
  client: Record<string, string>;
  /** Client clock when the packet was made (its timestamp field), Unix seconds. */
  timestamp: number;
  /** The payload, exactly as sent (without --save-packet's trailing newline). */
  packet: string;
}

export interface SpaFixtureFile {
  generator: string;
  fwknopVersion: string;
  createdAt: string;
  keys: typeof SPA_TEST_KEYS;
  fixtures: SpaFixture[];
}

const A = ['-a', '10.99.0.2'];
const SPECS: Omit<SpaFixture, 'client' | 'timestamp' | 'packet' | 'hmacType'>[] = [
  { name: 'access-a', note: '-A tcp/22 -a IP', args: ['-A', 'tcp/22', ...A], encKey: 'K1', hmacKey: 'H1' },
  {
    name: 'access-s',
    note: '-A tcp/22 -s (allow IP 0.0.0.0)',
    args: ['-A', 'tcp/22', '-s'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  { name: 'multi', note: '-A tcp/22,udp/53', args: ['-A', 'tcp/22,udp/53', ...A], encKey: 'K1', hmacKey: 'H1' },
  { name: 'timeout-60', note: '-f 60 (type 3)', args: ['-A', 'tcp/22', ...A, '-f', '60'], encKey: 'K1', hmacKey: 'H1' },
  {
    name: 'timeout-9999',
    note: '-f 9999, above spa_max_timeout',
    args: ['-A', 'tcp/22', ...A, '-f', '9999'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  { name: 'user-alice', note: '-U alice', args: ['-A', 'tcp/22', ...A, '-U', 'alice'], encKey: 'K1', hmacKey: 'H1' },
  {
    name: 'passphrase',
    note: '--key-rijndael passphrase (not base64)',
    args: ['-A', 'tcp/22', ...A],
    encKey: 'PASS',
    hmacKey: 'H1',
  },
  ...(['md5', 'sha1', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const).map((h) => ({
    name: `hmac-${h}`,
    note: `--hmac-digest-type ${h}`,
    args: ['-A', 'tcp/22', ...A, '--hmac-digest-type', h],
    encKey: 'K1' as const,
    hmacKey: 'H1' as const,
  })),
  ...(['md5', 'sha1', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const).map((m) => ({
    name: `digest-${m}`,
    note: `-m ${m} (inner digest)`,
    args: ['-A', 'tcp/22', ...A, '-m', m],
    encKey: 'K1' as const,
    hmacKey: 'H1' as const,
  })),
  {
    name: 'port-80',
    note: '-A tcp/80 (not in the default spa_open_ports)',
    args: ['-A', 'tcp/80', ...A],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  {
    name: 'wrong-hmac-key',
    note: 'door keys K1 with another HMAC key',
    args: ['-A', 'tcp/22', ...A],
    encKey: 'K1',
    hmacKey: 'H2',
  },
  {
    name: 'wrong-rijndael-key',
    note: 'right HMAC key, another Rijndael key',
    args: ['-A', 'tcp/22', ...A],
    encKey: 'K2',
    hmacKey: 'H1',
  },
  {
    name: 'nat',
    note: '-N 192.168.1.2:22 (type 2)',
    args: ['-A', 'tcp/22', ...A, '-N', '192.168.1.2:22'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  {
    name: 'nat-timeout',
    note: '-N 192.168.1.2:22 -f 60 (type 4)',
    args: ['-A', 'tcp/22', ...A, '-N', '192.168.1.2:22', '-f', '60'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  {
    name: 'nat-local',
    note: '--nat-local (type 5)',
    args: ['-A', 'tcp/22', ...A, '--nat-local'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  {
    name: 'command',
    note: "--server-cmd 'echo hi' (type 0)",
    args: [...A, '--server-cmd', 'echo hi'],
    encKey: 'K1',
    hmacKey: 'H1',
  },
  {
    name: 'long',
    note: '16-port access list: 400+ characters, GnuPG for fwknopd',
    args: [
      '-A',
      'tcp/22,udp/53,tcp/80,tcp/443,udp/1000,udp/2000,tcp/3000,tcp/4000,tcp/5000,tcp/6000,tcp/7000,tcp/8000,tcp/9000,tcp/10000,tcp/11000,tcp/12000',
      ...A,
    ],
    encKey: 'K1',
    hmacKey: 'H1',
  },
];

/** Runs the client in test mode; returns the saved packet and the field dump. */
export function runFwknop(
  args: readonly string[],
  encKey: string,
  hmacKey: string,
  opts: { encIsPassphrase?: boolean; server?: string } = {},
): { packet: string; client: Record<string, string> } {
  const home = mkdtempSync(join(tmpdir(), 'spa-fixture-'));
  try {
    const out = join(home, 'packet.txt');
    const keyArgs = opts.encIsPassphrase ? ['--key-rijndael', encKey] : ['--key-base64-rijndael', encKey];
    const full = [
      '--no-rc-file',
      '--no-save-args',
      '-T',
      '-v',
      '-D',
      opts.server ?? '127.0.0.1',
      ...keyArgs,
      '--key-base64-hmac',
      hmacKey,
      '--use-hmac',
      '-B',
      out,
      ...args,
    ];
    const r = spawnSync('fwknop', full, {
      env: { ...process.env, HOME: home, LOGNAME: 'root', USER: 'root' },
      encoding: 'utf8',
    });
    if (r.status !== 0 && !/SPA packet not actually sent/.test(r.stdout))
      throw new Error(`fwknop ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
    const packet = readFileSync(out, 'latin1').replace(/\n$/, '');
    const client: Record<string, string> = {};
    // The first "SPA Field Values" block: "   Name: value".
    const block = r.stdout.split('Generating SPA packet')[0] ?? '';
    for (const m of block.matchAll(/^\s*([A-Za-z ]+?):\s(.*)$/gm)) {
      const value = m[2].trim();
      if (!/^=+$/.test(value)) client[m[1].trim()] = value;
    }
    return { packet, client };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function main(): void {
  const repo = resolve(__dirname, '..', '..', '..');
  const file = join(repo, 'test', 'fixtures', 'spa', 'packets.json');
  const version = spawnSync('fwknop', ['--version', '--no-rc-file'], {
    encoding: 'utf8',
    env: { ...process.env, HOME: tmpdir() },
  }).stdout.trim();
  const k = SPA_TEST_KEYS;
  const fixtures: SpaFixture[] = SPECS.map((s) => {
    const enc = s.encKey === 'PASS' ? k.PASS : k[s.encKey];
    const { packet, client } = runFwknop(s.args, enc, k[s.hmacKey], { encIsPassphrase: s.encKey === 'PASS' });
    const hmacType = s.args[s.args.indexOf('--hmac-digest-type') + 1] ?? 'sha256';
    return {
      ...s,
      hmacType: s.args.includes('--hmac-digest-type') ? hmacType : 'sha256',
      client,
      timestamp: Number(client.Timestamp),
      packet,
    };
  });
  const data: SpaFixtureFile = {
    generator: 'test/support/make-spa-fixtures.ts',
    fwknopVersion: version,
    createdAt: new Date().toISOString(),
    keys: k,
    fixtures,
  };
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  process.stdout.write(`wrote ${fixtures.length} fixtures to ${file}\n`);
}

if (require.main === module) main();
