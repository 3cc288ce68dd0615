/**
 * Unit tests for src/config/spa.ts: the spa_* door directives, and the fwknop
 * client configuration printed for a door (checked with the real client:
 * the packet it builds from that command line opens the door).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';

import { spaClientConfig, validateSpaDoor } from '../../src/config/spa';
import type { SpaDirective, SpaDoorInput, SpaRawValue } from '../../src/config/spa';
import { handleSpaPacket } from '../../src/spa/handle';
import { ReplayCache } from '../../src/spa/replay';

const KEY = Buffer.alloc(32, 7).toString('base64');
const HKEY = Buffer.alloc(64, 9).toString('base64');

function input(d: Partial<Record<SpaDirective, string>>, cmdTimeout?: number): SpaDoorInput {
  const directives: Partial<Record<SpaDirective, SpaRawValue>> = {};
  let line = 2;
  for (const [k, v] of Object.entries(d) as [SpaDirective, string][]) directives[k] = { value: v, line: line++ };
  return {
    name: 'spaSSH',
    line: 1,
    directives,
    ...(cmdTimeout !== undefined ? { cmdTimeout: { seconds: cmdTimeout, line: 99 } } : {}),
  };
}

test('spa config: defaults (port 62201, any source, tcp/22, 300 s max, 30 s default, sha256)', () => {
  const r = validateSpaDoor(input({ spa_key_base64: KEY, spa_hmac_key_base64: HKEY }));
  assert.deepEqual(r.errors, []);
  const d = r.door;
  assert.ok(d);
  assert.equal(d.port, 62201);
  assert.deepEqual(d.sources, []);
  assert.deepEqual(d.openPorts, [{ proto: 'tcp', port: 22 }]);
  assert.equal(d.maxTimeout, 300);
  assert.equal(d.defaultTimeout, 30);
  assert.equal(d.keys.hmacType, 'sha256');
  assert.equal(d.requireSourceAddress, false);
  assert.deepEqual(d.keys.encryption, Buffer.from(KEY, 'base64'));
});

test("spa config: the issue's example door", () => {
  const r = validateSpaDoor(
    input(
      {
        spa_port: '62201',
        spa_key_base64: KEY,
        spa_hmac_key_base64: HKEY,
        spa_source: '203.0.113.0/24',
        spa_open_ports: 'tcp/22,udp/53',
        spa_max_timeout: '300',
        spa_hmac_digest_type: 'SHA512',
        spa_require_source_address: 'yes',
      },
      30,
    ),
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.door?.sources, [{ family: 4, address: '203.0.113.0', prefix: 24 }]);
  assert.deepEqual(r.door?.openPorts, [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
  ]);
  assert.equal(r.door?.keys.hmacType, 'sha512');
  assert.equal(r.door?.requireSourceAddress, true);
});

test('spa config: errors with their line numbers, never quoting a key', () => {
  const cases: [Partial<Record<SpaDirective, string>>, number | undefined, RegExp, number][] = [
    [{ spa_hmac_key_base64: HKEY }, undefined, /no spa_key_base64/, 1],
    [{ spa_key_base64: KEY }, undefined, /no spa_hmac_key_base64/, 1],
    [{ spa_key_base64: KEY.replace('B', '-'), spa_hmac_key_base64: HKEY }, undefined, /URL-safe/, 2],
    [{ spa_key_base64: 'abc d', spa_hmac_key_base64: HKEY }, undefined, /not valid base64.*space/, 2],
    [{ spa_key_base64: 'abcde', spa_hmac_key_base64: HKEY }, undefined, /impossible/, 2],
    [{ spa_key_base64: 'abd', spa_hmac_key_base64: HKEY }, undefined, /non-zero bits/, 2],
    [
      { spa_key_base64: Buffer.alloc(33, 1).toString('base64'), spa_hmac_key_base64: HKEY },
      undefined,
      /33 bytes; fwknop takes 1 to 32/,
      2,
    ],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: Buffer.alloc(129, 1).toString('base64') },
      undefined,
      /129 bytes; fwknop takes 1 to 128/,
      3,
    ],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: KEY }, undefined, /same key/, 3],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_port: '0' }, undefined, /spa_port/, 4],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_port: '65536' }, undefined, /spa_port/, 4],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_source: '203.0.113.0/33' }, undefined, /prefix length/, 4],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_source: 'example.com' },
      undefined,
      /not an IPv4 or IPv6 address/,
      4,
    ],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_source: 'ANY,10.0.0.0/8' },
      undefined,
      /ANY cannot be combined/,
      4,
    ],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_open_ports: '22/tcp' },
      undefined,
      /write proto\/port, e.g. tcp\/22/,
      4,
    ],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_open_ports: 'tcp/0' }, undefined, /PORT 1-65535/, 4],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_open_ports: 'icmp/8' },
      undefined,
      /not tcp\/PORT or udp\/PORT/,
      4,
    ],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_max_timeout: '0' }, undefined, /at least 1/, 4],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_max_timeout: '5m' }, undefined, /whole number/, 4],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_hmac_digest_type: 'sha224' },
      undefined,
      /spa_hmac_digest_type must be one of/,
      4,
    ],
    [
      { spa_key_base64: KEY, spa_hmac_key_base64: HKEY, spa_require_source_address: 'maybe' },
      undefined,
      /yes or no/,
      4,
    ],
    [{ spa_key_base64: KEY, spa_hmac_key_base64: HKEY }, 0, /cmd_timeout of an SPA door must be at least 1/, 99],
  ];
  for (const [d, cmd, re, line] of cases) {
    const r = validateSpaDoor(input(d, cmd));
    assert.equal(r.door, undefined, String(re));
    assert.equal(r.errors.length, 1, `${re}: ${JSON.stringify(r.errors)}`);
    const e = r.errors[0];
    assert.match(e?.message ?? '', re);
    assert.equal(e?.line, line, String(re));
    for (const k of [KEY, HKEY, KEY.replace('B', '-')])
      assert.ok(!(e?.message ?? '').includes(k), 'message quotes a key');
  }
});

test('spa config: warnings (short keys, host bits, duplicates, cmd_timeout > spa_max_timeout)', () => {
  const r = validateSpaDoor(
    input(
      {
        spa_key_base64: Buffer.from('short').toString('base64'),
        spa_hmac_key_base64: Buffer.from('also short').toString('base64'),
        spa_source: '203.0.113.5/24,203.0.113.0/24',
        spa_open_ports: 'tcp/22,TCP/22',
        spa_max_timeout: '20',
      },
      30,
    ),
  );
  assert.deepEqual(r.errors, []);
  const texts = r.warnings.map((w) => w.message).join('\n');
  for (const re of [
    /only 5 bytes/,
    /only 10 bytes/,
    /host bits set; it means 203\.0\.113\.0\/24/,
    /lists 203\.0\.113\.0\/24 twice/,
    /lists tcp\/22 twice/,
    /longer than spa_max_timeout/,
  ])
    assert.match(texts, re);
});

test('spa config: keys never show when the door is logged, serialized or inspected', () => {
  const r = validateSpaDoor(input({ spa_key_base64: KEY, spa_hmac_key_base64: HKEY }));
  assert.ok(r.door);
  const hex = [Buffer.from(KEY, 'base64').toString('hex'), Buffer.from(HKEY, 'base64').toString('hex')];
  for (const text of [
    JSON.stringify(r.door),
    inspect(r.door, { depth: 10, showHidden: false }),
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the point: however the keys are stringified, no key text shows
    String(r.door.keys),
    JSON.stringify({ ...r.door.keys }),
  ]) {
    for (const k of [KEY, HKEY, ...hex, '7,7,7,7', '9,9,9,9']) assert.ok(!text.includes(k), `key visible in ${text}`);
  }
  assert.match(JSON.stringify(r.door), /"keys":"\[redacted\]"/);
});

test('spa client config: placeholders by default, real keys only on request', () => {
  const r = validateSpaDoor(
    input({
      spa_key_base64: KEY,
      spa_hmac_key_base64: HKEY,
      spa_port: '40001',
      spa_open_ports: 'tcp/22,udp/53',
      spa_hmac_digest_type: 'sha384',
    }),
  );
  assert.ok(r.door);
  const hidden = spaClientConfig(r.door, { server: 'knock.example.net' });
  for (const t of [hidden.commandLine, hidden.fwknoprc]) {
    assert.ok(!t.includes(KEY) && !t.includes(HKEY));
    assert.match(t, /spa_key_base64 of \[spaSSH\]/);
  }
  assert.match(
    hidden.commandLine,
    /^fwknop -A tcp\/22,udp\/53 -a "<your public IP>" -D knock\.example\.net -p 40001 --key-base64-rijndael .* --use-hmac --hmac-digest-type sha384$/,
  );
  assert.match(hidden.fwknoprc, /^\[spaSSH\]\nSPA_SERVER +knock\.example\.net\nSPA_SERVER_PORT +40001\n/);
  assert.match(hidden.fwknoprc, /\nHMAC_DIGEST_TYPE +sha384\n/);
  const shown = spaClientConfig(r.door, { revealKeys: true });
  assert.ok(shown.commandLine.includes(KEY) && shown.commandLine.includes(HKEY));
  assert.ok(shown.fwknoprc.includes(`KEY_BASE64          ${KEY}`));
});

/** Splits our printed command line into words (it only uses plain words and "..." / '...' quoting). */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

test('spa client config: the real fwknop client, run with the printed command line or ~/.fwknoprc stanza, makes a packet the door accepts', () => {
  const r = validateSpaDoor(
    input({
      spa_key_base64: KEY,
      spa_hmac_key_base64: HKEY,
      spa_open_ports: 'tcp/22,udp/53',
      spa_hmac_digest_type: 'sha512',
      spa_port: '40001',
    }),
  );
  assert.ok(r.door);
  const door = r.door;
  const cfg = spaClientConfig(door, { server: '127.0.0.1', revealKeys: true });
  const home = mkdtempSync(join(tmpdir(), 'spa-cfg-'));
  try {
    const env = { ...process.env, HOME: home };
    // 1. The command line, with the placeholder filled in.
    const argv = words(cfg.commandLine).map((w) => (w === '<your public IP>' ? '10.99.0.3' : w));
    assert.equal(argv[0], 'fwknop');
    const out1 = join(home, 'p1');
    const a = spawnSync('fwknop', [...argv.slice(1), '--no-save-args', '--no-rc-file', '-T', '-B', out1], {
      env,
      encoding: 'utf8',
    });
    assert.equal(a.error, undefined);
    // 2. The stanza, as ~/.fwknoprc.
    writeFileSync(join(home, '.fwknoprc'), cfg.fwknoprc.replace('<your public IP>', '10.99.0.4'), { mode: 0o600 });
    const out2 = join(home, 'p2');
    const b = spawnSync('fwknop', ['-n', 'spaSSH', '--no-save-args', '-T', '-B', out2], { env, encoding: 'utf8' });
    assert.equal(b.error, undefined);
    const cache = new ReplayCache();
    for (const [file, ip, res] of [
      [out1, '10.99.0.3', a],
      [out2, '10.99.0.4', b],
    ] as const) {
      const pkt = readFileSync(file, 'latin1').trimEnd();
      const v = handleSpaPacket(Buffer.from(pkt, 'latin1'), '192.0.2.1', [door], cache, Date.now());
      assert.ok(v.ok, `${v.ok ? '' : v.reason}\n${res.stdout}\n${res.stderr}`);
      assert.equal(v.grant.address, ip);
      assert.deepEqual(v.grant.ports, [
        { proto: 'tcp', port: 22 },
        { proto: 'udp', port: 53 },
      ]);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
