/**
 * The `knock` client (src/cli/knock.ts): command-line parsing, messages and
 * exit codes compared with Debian's knock 0.8 (/usr/bin/knock), and real
 * hits on loopback sockets.
 *
 *   npx tsc -p tsconfig.json && node --test dist/test/unit/knock.test.js
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import {
  main,
  parseKnockArgs,
  parsePortSpec,
  USAGE,
  type KnockIo,
  type KnockOptions,
  type LookupFn,
  type ParsedArgs,
} from '../../src/cli/knock';

const REPO = resolve(__dirname, '..', '..', '..');
const KNOCK_BIN = join(REPO, 'bin', 'knock');
const DEBIAN_KNOCK = '/usr/bin/knock';

/** main() with captured output. */
async function runMain(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: KnockIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/** main() with captured output and a given resolver. */
async function runMainWith(
  argv: string[],
  lookup: LookupFn,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    lookup,
  });
  return { code, stdout, stderr };
}

/** Run a knock binary (ours through node, or Debian's) and collect its output. */
function runBin(which: 'ours' | 'debian', argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const [cmd, args] = which === 'ours' ? [process.execPath, [KNOCK_BIN, ...argv]] : [DEBIAN_KNOCK, argv];
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The options of a parse that must succeed. */
function opts(argv: string[]): KnockOptions {
  const r: ParsedArgs = parseKnockArgs(argv);
  assert.equal(r.kind, 'run', `expected a runnable command line for ${JSON.stringify(argv)}, got ${JSON.stringify(r)}`);
  return r.options;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('parsePortSpec', () => {
  test('N, N:tcp and N:udp', () => {
    assert.deepEqual(parsePortSpec('22'), { port: 22, proto: 'tcp' });
    assert.deepEqual(parsePortSpec('3333:tcp'), { port: 3333, proto: 'tcp' });
    assert.deepEqual(parsePortSpec('4444:udp'), { port: 4444, proto: 'udp' });
    assert.deepEqual(parsePortSpec('1'), { port: 1, proto: 'tcp' });
    assert.deepEqual(parsePortSpec('65535:udp'), { port: 65535, proto: 'udp' });
    assert.deepEqual(parsePortSpec('022'), { port: 22, proto: 'tcp' });
  });

  test('like knock 0.8, any suffix other than exactly "udp" means TCP', () => {
    for (const s of ['5555:UDP', '5555:foo', '5555:', '5555:udp:x', '5555:tcp ']) {
      assert.deepEqual(parsePortSpec(s), { port: 5555, proto: 'tcp' }, s);
    }
  });

  test('non-numeric and out-of-range ports are rejected with a clear message', () => {
    for (const s of [
      'abc',
      'ssh',
      '0',
      '65536',
      '70000',
      '',
      ':udp',
      '-1',
      '+22',
      '22x',
      ' 22',
      '1e3',
      '0x10',
      '22.0',
      '2 2:udp',
    ]) {
      assert.throws(
        () => parsePortSpec(s),
        /^Error: error: invalid port '.*' in '.*' \(expected N, N:tcp or N:udp with N from 1 to 65535\)$/,
        s,
      );
    }
    assert.throws(() => parsePortSpec('abc:udp'), {
      message: "error: invalid port 'abc' in 'abc:udp' (expected N, N:tcp or N:udp with N from 1 to 65535)",
    });
  });
});

describe('command line', () => {
  test('defaults', () => {
    assert.deepEqual(opts(['example.org', '1', '2:udp']), {
      verbose: false,
      udp: false,
      delayMs: 0,
      family: 0,
      host: 'example.org',
      ports: [
        { port: 1, proto: 'tcp' },
        { port: 2, proto: 'udp' },
      ],
    });
  });

  test('-v/--verbose, -u/--udp, -4/--ipv4, -6/--ipv6', () => {
    assert.equal(opts(['-v', 'h', '1']).verbose, true);
    assert.equal(opts(['--verbose', 'h', '1']).verbose, true);
    assert.equal(opts(['-u', 'h', '1']).udp, true);
    assert.equal(opts(['--udp', 'h', '1']).udp, true);
    assert.equal(opts(['-4', 'h', '1']).family, 4);
    assert.equal(opts(['--ipv4', 'h', '1']).family, 4);
    assert.equal(opts(['-6', 'h', '1']).family, 6);
    assert.equal(opts(['--ipv6', 'h', '1']).family, 6);
  });

  test('-4 with -6 (-46, --both): both families (knock 0.8: the last one wins)', () => {
    for (const argv of [['-46'], ['-64'], ['-4', '-6'], ['-6', '--ipv4'], ['--both'], ['--bo'], ['-4', '--both']])
      assert.equal(opts([...argv, 'h', '1']).family, 46, argv.join(' '));
    assert.deepEqual(parseKnockArgs(['-b', 'h', '1']), { kind: 'usage', error: "knock: invalid option -- 'b'" });
  });

  test('-d/--delay in every getopt_long spelling', () => {
    for (const argv of [
      ['-d', '100'],
      ['-d100'],
      ['--delay', '100'],
      ['--delay=100'],
      ['--del=100'],
      ['-vd', '100'],
      ['-vd100'],
    ]) {
      assert.equal(opts([...argv, 'h', '1']).delayMs, 100, argv.join(' '));
    }
    assert.equal(opts(['-d', '0', 'h', '1']).delayMs, 0);
  });

  test('bundled short options, options after operands, and --', () => {
    const o = opts(['-vu46', 'h', '1']);
    assert.deepEqual([o.verbose, o.udp, o.family], [true, true, 46]);
    const p = opts(['h', '1', '-v', '2:udp', '--udp']);
    assert.deepEqual([p.verbose, p.udp, p.host, p.ports.map((x) => x.port)], [true, true, 'h', [1, 2]]);
    const q = opts(['-v', '--', 'h', '1']);
    assert.equal(q.host, 'h');
    assert.deepEqual(parseKnockArgs(['--', 'h', '-v']), {
      kind: 'error',
      message: "error: invalid port '-v' in '-v' (expected N, N:tcp or N:udp with N from 1 to 65535)",
    });
  });

  test('fewer than two operands: usage on stdout, exit 1', async () => {
    for (const argv of [[], ['host'], ['-v', 'host'], ['-d', '-5']]) {
      const r = await runMain(argv);
      assert.deepEqual(r, { code: 1, stdout: USAGE, stderr: '' }, argv.join(' '));
    }
  });

  test('-h/--help: usage on stdout, exit 1 (as Debian knock 0.8), even with a full command line', async () => {
    for (const argv of [['-h'], ['--help'], ['--he'], ['-h', 'host', '1'], ['host', '1', '-vh']]) {
      assert.deepEqual(await runMain(argv), { code: 1, stdout: USAGE, stderr: '' }, argv.join(' '));
    }
  });

  test("the usage text is knock 0.8's byte for byte, plus the -46 line", () => {
    const deb = runBin('debian', ['-h']);
    assert.equal(deb.code, 1);
    const both = '  -46, --both          knock over IPv4 and IPv6 (each hit to both addresses)\n';
    assert.ok(USAGE.includes(both));
    assert.equal(USAGE.replace(both, ''), deb.stdout);
  });

  test('-V/--version: version on stdout, exit 0, before anything else is checked', async () => {
    for (const argv of [['-V'], ['--version'], ['-V', '-d', '-5'], ['-vV']]) {
      const r = await runMain(argv);
      assert.equal(r.code, 0, argv.join(' '));
      assert.match(r.stdout, /^knock \d+\.\d+\.\d+ \(firewalld edition, knock 0\.8 compatible\)\n$/);
      assert.equal(r.stderr, '');
    }
  });

  test('unknown options and missing arguments: getopt message on stderr, usage, exit 1', async () => {
    const cases: [string[], string][] = [
      [['-x', 'h', '1'], "knock: invalid option -- 'x'\n"],
      [['-vx', 'h', '1'], "knock: invalid option -- 'x'\n"],
      [['--foo', 'h', '1'], "knock: unrecognized option '--foo'\n"],
      [['--v', 'h', '1'], "knock: option '--v' is ambiguous; possibilities: '--verbose' '--version'\n"],
      [['h', '1', '-d'], "knock: option requires an argument -- 'd'\n"],
      [['h', '1', '--delay'], "knock: option '--delay' requires an argument\n"],
      [['--udp=1', 'h', '1'], "knock: option '--udp' doesn't allow an argument\n"],
    ];
    for (const [argv, stderr] of cases) {
      assert.deepEqual(await runMain(argv), { code: 1, stdout: USAGE, stderr }, argv.join(' '));
    }
  });

  test("a negative delay is refused with knock 0.8's message", async () => {
    for (const argv of [['-d', '-5'], ['-d-1'], ['--delay=-100'], ['--delay', '-1']]) {
      assert.deepEqual(
        await runMain([...argv, '127.0.0.1', '1']),
        { code: 1, stdout: '', stderr: 'error: delay cannot be negative\n' },
        argv.join(' '),
      );
    }
  });

  test('a non-numeric delay is refused (knock 0.8 would silently use atoi())', async () => {
    for (const d of ['abc', '1x', '', '1.5']) {
      const r = await runMain(['-d', d, '127.0.0.1', '1']);
      assert.deepEqual(r, { code: 1, stdout: '', stderr: `error: invalid delay '${d}' (expected milliseconds)\n` }, d);
    }
    assert.equal((await runMain(['-d', '99999999999', '127.0.0.1', '1'])).code, 1);
  });

  test('a bad port is reported, exit 1, and nothing at all is sent', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    let got = 0;
    sock.on('message', () => got++);
    try {
      const port = sock.address().port;
      const r = await runMain(['127.0.0.1', `${port}:udp`, '70000:udp']);
      assert.deepEqual(r, {
        code: 1,
        stdout: '',
        stderr: "error: invalid port '70000' in '70000:udp' (expected N, N:tcp or N:udp with N from 1 to 65535)\n",
      });
      await sleep(100);
      assert.equal(got, 0, 'the valid port before the bad one was not hit');
    } finally {
      sock.close();
    }
  });

  test("resolution failures: knock 0.8's message, exit 1", async () => {
    // An IP literal of the other family (Node's lookup() would happily return it).
    for (const [argv, host] of [
      [['-6', '127.0.0.1', '1234'], '127.0.0.1'],
      [['-4', '::1', '1234'], '::1'],
    ] as const) {
      const r = await runMain([...argv]);
      const deb = runBin('debian', [...argv]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `Failed to resolve hostname '${host}' on port 1234\ngetaddrinfo: Address family for hostname not supported\n`,
      );
      assert.deepEqual([deb.code, deb.stderr], [1, r.stderr], 'same as Debian knock');
    }
    const r = await runMain(['nosuchhost.invalid', '1234']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Failed to resolve hostname 'nosuchhost\.invalid' on port 1234\ngetaddrinfo: .+\n$/);
  });

  test("bin/knock exits like Debian's knock 0.8 for every kind of command line", () => {
    const cases: string[][] = [
      [],
      ['-h'],
      ['--help'],
      ['-V'],
      ['-x', 'h', '1'],
      ['127.0.0.1'],
      ['-d', '-5', '127.0.0.1', '9'],
      ['-6', '127.0.0.1', '9'],
      ['-d', '0', '127.0.0.1', '9', '9:udp'],
    ];
    for (const argv of cases) {
      const ours = runBin('ours', argv);
      const deb = runBin('debian', argv);
      assert.equal(ours.code, deb.code, `exit code for ${JSON.stringify(argv)}`);
      const both = '  -46, --both          knock over IPv4 and IPv6 (each hit to both addresses)\n';
      if (!argv.includes('-V'))
        assert.equal(
          ours.stdout.replace(both, ''),
          deb.stdout,
          `stdout for ${JSON.stringify(argv)} (usage: but the -46 line)`,
        );
    }
  });
});

describe('real hits on loopback', () => {
  /** A TCP listener and a UDP socket on 127.0.0.1 (or ::1) random ports, recording what arrives in order. */
  async function targets(host: '127.0.0.1' | '::1'): Promise<{
    tcpPort: number;
    udpPort: number;
    events: string[];
    datagrams: Buffer[];
    close(): Promise<void>;
  }> {
    const events: string[] = [];
    const datagrams: Buffer[] = [];
    const server = net.createServer((s) => {
      events.push('tcp');
      s.on('error', () => undefined);
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, host, r));
    const udp = dgram.createSocket(host === '::1' ? 'udp6' : 'udp4');
    udp.on('message', (msg) => {
      events.push('udp');
      datagrams.push(msg);
    });
    await new Promise<void>((r) => udp.bind(0, host, r));
    return {
      tcpPort: (server.address() as net.AddressInfo).port,
      udpPort: udp.address().port,
      events,
      datagrams,
      close: async () => {
        udp.close();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  test('one TCP connection attempt and one 1-byte 0x00 datagram, in order', async () => {
    const t = await targets('127.0.0.1');
    try {
      // A 50 ms delay makes the arrival order observable in this process;
      // the e2e tests prove the order on the wire with -d 0 (knockd checks it).
      const r = await runMain(['-d', '50', '127.0.0.1', String(t.tcpPort), `${t.udpPort}:udp`]);
      assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
      await sleep(200);
      assert.deepEqual(t.events, ['tcp', 'udp']);
      assert.equal(t.datagrams.length, 1);
      assert.deepEqual([...t.datagrams[0]], [0x00]);
    } finally {
      await t.close();
    }
  });

  test('-d 0: every hit arrives exactly once; -u turns TCP ports into UDP', async () => {
    const t = await targets('127.0.0.1');
    try {
      assert.equal(
        (await runMain(['-d', '0', '127.0.0.1', String(t.tcpPort), `${t.udpPort}:udp`, `${t.tcpPort}:tcp`])).code,
        0,
      );
      await sleep(200);
      assert.deepEqual([...t.events].sort(), ['tcp', 'tcp', 'udp']);
      t.events.length = 0;
      assert.equal((await runMain(['-u', '127.0.0.1', `${t.udpPort}:tcp`, String(t.udpPort)])).code, 0);
      await sleep(200);
      assert.deepEqual(t.events, ['udp', 'udp']);
      assert.ok(t.datagrams.every((d) => d.length === 1 && d[0] === 0));
    } finally {
      await t.close();
    }
  });

  test('-d delays between hits (and not after the last one)', async (tc) => {
    const t = await targets('127.0.0.1');
    // Record every wait of the -d length in order with the hits (-v prints each hit before it is sent),
    // and let it pass at once: the test checks where knock waits and for how long, not the clock.
    const DELAY = 150_000;
    const seen: string[] = [];
    const realSetTimeout = globalThis.setTimeout;
    tc.mock.method(globalThis, 'setTimeout', ((fn: () => void, ms?: number) => {
      if (ms === DELAY) seen.push(`wait ${ms}`);
      return realSetTimeout(fn, ms === DELAY ? 0 : ms);
    }) as typeof setTimeout);
    try {
      const io: KnockIo = {
        stdout: { write: (line: string) => seen.push(line.startsWith('hitting') ? 'hit' : line) },
        stderr: { write: (line: string) => seen.push(`stderr: ${line}`) },
      };
      const argv = ['-v', '-d', String(DELAY), '127.0.0.1', `${t.udpPort}:udp`, `${t.udpPort}:udp`, `${t.udpPort}:udp`];
      assert.equal(await main(argv, io), 0);
      assert.deepEqual(seen, ['hit', `wait ${DELAY}`, 'hit', `wait ${DELAY}`, 'hit']);
    } finally {
      tc.mock.restoreAll();
      await t.close();
    }
  });

  test('-v prints exactly what knock 0.8 prints (IPv4, IPv6, -u)', async () => {
    for (const host of ['127.0.0.1', '::1'] as const) {
      const t = await targets(host);
      try {
        for (const argv of [
          ['-v', host, String(t.tcpPort), `${t.udpPort}:udp`, `${t.tcpPort}:foo`],
          ['-v', '-u', host, String(t.udpPort)],
        ]) {
          const ours = await runMain(argv);
          const deb = runBin('debian', argv);
          assert.equal(deb.code, 0, deb.stderr);
          assert.equal(ours.code, 0);
          assert.equal(ours.stdout, deb.stdout, `-v output for ${argv.join(' ')}`);
          assert.equal(ours.stderr, '');
        }
        const ours = await runMain(['-v', host, String(t.tcpPort), `${t.udpPort}:udp`]);
        assert.equal(ours.stdout, `hitting tcp ${host}:${t.tcpPort}\nhitting udp ${host}:${t.udpPort}\n`);
      } finally {
        await t.close();
      }
    }
  });

  test('-46: every hit goes to the IPv4 and then the IPv6 address of a name that has both', async () => {
    const t4 = await targets('127.0.0.1');
    const t6 = await targets('::1');
    const asked: string[] = [];
    const lookup: LookupFn = (host, o) => {
      asked.push(`${host}/${o.family}`);
      if (host !== 'dual.example' || o.family === 0)
        return Promise.reject(Object.assign(new Error('no'), { code: 'ENOTFOUND' }));
      return Promise.resolve(o.family === 4 ? { address: '127.0.0.1', family: 4 } : { address: '::1', family: 6 });
    };
    try {
      // the same port numbers on both targets are not guaranteed: knock a port of each, UDP (observable per socket)
      const r = await runMainWith(
        ['-v', '-46', '-d', '50', 'dual.example', `${t4.udpPort}:udp`, `${t6.udpPort}:udp`],
        lookup,
      );
      assert.deepEqual(r, {
        code: 0,
        stdout: [
          `hitting udp 127.0.0.1:${t4.udpPort}\n`,
          `hitting udp ::1:${t4.udpPort}\n`,
          `hitting udp 127.0.0.1:${t6.udpPort}\n`,
          `hitting udp ::1:${t6.udpPort}\n`,
        ].join(''),
        stderr: '',
      });
      await sleep(200);
      assert.deepEqual(t4.events, ['udp'], 'the IPv4 target got its hit over IPv4');
      assert.deepEqual(t6.events, ['udp'], 'the IPv6 target got its hit over IPv6');
      assert.deepEqual(asked.sort(), ['dual.example/4', 'dual.example/4', 'dual.example/6', 'dual.example/6']);
    } finally {
      await t4.close();
      await t6.close();
    }
  });

  test('-46 to a host with one family: one warning, the hits over that family, exit 0; with neither: the IPv4 error', async () => {
    const t = await targets('127.0.0.1');
    try {
      const r = await runMain(['-46', '127.0.0.1', `${t.udpPort}:udp`, `${t.udpPort}:udp`]);
      assert.deepEqual(r, {
        code: 0,
        stdout: '',
        stderr:
          "knock: warning: '127.0.0.1' has no IPv6 address (getaddrinfo: Address family for hostname not supported); knocking over IPv4 only\n",
      });
      await sleep(100);
      assert.deepEqual(t.events, ['udp', 'udp']);
    } finally {
      await t.close();
    }
    const none: LookupFn = () => Promise.reject(Object.assign(new Error('no'), { code: 'ENOTFOUND' }));
    assert.deepEqual(await runMainWith(['-46', 'nowhere.example', '1'], none), {
      code: 1,
      stdout: '',
      stderr: "Failed to resolve hostname 'nowhere.example' on port 1\ngetaddrinfo: Name or service not known\n",
    });
  });

  test('a host name is resolved (localhost)', async () => {
    const t = await targets('127.0.0.1');
    try {
      const r = await runMain(['-v', '-4', 'localhost', `${t.udpPort}:udp`]);
      assert.deepEqual(r, { code: 0, stdout: `hitting udp 127.0.0.1:${t.udpPort}\n`, stderr: '' });
      await sleep(100);
      assert.deepEqual(t.events, ['udp']);
    } finally {
      await t.close();
    }
  });

  test('knocking a closed port is not an error (exit 0, nothing printed)', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    assert.deepEqual(await runMain(['127.0.0.1', String(port), String(port)]), { code: 0, stdout: '', stderr: '' });
  });
});
