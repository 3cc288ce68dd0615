/**
 * Our `knock` client (bin/knock), end to end: real packets over the lab's
 * veth pair, against our knockd (firewalld rich rules, sshd behind them) and
 * against Debian's knockd 0.8 (/usr/sbin/knockd). The order of the hits on
 * the wire is proven by the daemons themselves: knocks are sent with no delay
 * and a sequence only opens if its hits arrive in order.
 *
 * Must run as root (requireRoot() fails, never skips, otherwise).
 *
 *   npx tsc -p tsconfig.json && node --test dist/test/e2e/knock-client.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { REPO, SLOW, sshRule, startKnockd, DEFAULT_CONF, type RunningDaemon, withLab } from './helpers';

const KNOCK_BIN = join(REPO, 'bin', 'knock');
const DEBIAN_KNOCKD = '/usr/sbin/knockd';
const SSH_BANNER = /^SSH-2\.0-OpenSSH/;

/** DEFAULT_CONF plus a UDP door that opens SSH as well. */
const UDP_CONF = `${DEFAULT_CONF()}
[openSSHudp]
    sequence          = 2222:udp,3333:udp
    seq_timeout       = 15
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 3600
`;

/** A plain knockd 0.8 configuration for Debian's knockd: doors that only echo. */
const DEBIAN_CONF = `[options]
    logfile = /dev/null

[openSSH]
    sequence    = 3333,4444,5555
    seq_timeout = 15
    tcpflags    = syn
    command     = /bin/echo OPENED %IP%

[openUDP]
    sequence    = 2222:udp,3333:udp
    seq_timeout = 15
    command     = /bin/echo UDPOPENED %IP%
`;

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('our knock client against real daemons', () => {
  let lab!: Lab;
  withLab({}, (l) => (lab = l));

  /** Run `node bin/knock <args>` in the client namespace; it must exit 0 silently (unless -v). */
  async function knock(...args: string[]): Promise<string> {
    const r = await lab.execIn('client', [process.execPath, KNOCK_BIN, ...args], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, `knock ${args.join(' ')} exited ${String(r.code)}: ${r.stderr}`);
    assert.equal(r.stderr, '');
    return r.stdout;
  }

  /** Wait (polling every 20 ms, giving up after SLOW) until the public zone's rich rules are non-empty; resolves them. */
  const waitForRules = (timeoutMs = SLOW): Promise<string[]> =>
    lab.waitFor(
      async () => {
        const r = await lab.richRules();
        return r.length ? r : undefined;
      },
      timeoutMs,
      20,
    );

  const waitForNoRules = (timeoutMs = SLOW): Promise<boolean> =>
    lab.waitFor(async () => (await lab.richRules()).length === 0, timeoutMs, 20);

  describe('with our knockd', () => {
    let d: RunningDaemon;
    before(async () => {
      d = await startKnockd(lab, UDP_CONF);
    });
    after(async () => {
      assert.equal(await d?.stop(), 0, 'knockd shuts down cleanly');
    });

    test('(a) knock opens SSH (hits in order, no delay) and 6666 7777 8888 closes it', async () => {
      assert.deepEqual(await lab.richRules(), []);
      assert.equal(await lab.sshBanner(), null, 'blocked before knocking');

      await knock('-d', '0', lab.serverAddr, '3333', '4444', '5555');
      assert.deepEqual(await waitForRules(), [sshRule(lab.clientAddr)]);
      assert.match((await lab.sshBanner()) ?? '', SSH_BANNER);
      const log = await d.log();
      assert.match(log, new RegExp(`${escapeRe(lab.clientAddr)}: openSSH: Stage 1`));
      assert.match(log, /openSSH: OPEN SESAME/);

      await knock(lab.serverAddr, '6666', '7777', '8888');
      await waitForNoRules();
      assert.equal(await lab.sshBanner(), null, 'blocked again after the close sequence');
      assert.match(await d.log(), /closeSSH: OPEN SESAME/);
    });

    test('(a) the same ports in the wrong order open nothing', async () => {
      const from = (await d.log()).length;
      await knock(lab.serverAddr, '3333', '5555', '4444');
      // The daemon has seen the out-of-order hit: it says so, and nothing opens.
      await d.waitForLog(/openSSH: wrong knock tcp\/5555 at stage 1, sequence reset/, SLOW, from);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /openSSH: OPEN SESAME/);
    });

    test('(c) a UDP door opens with -u and with port:udp', async () => {
      for (const args of [
        ['-u', lab.serverAddr, '2222', '3333'],
        [lab.serverAddr, '2222:udp', '3333:udp'],
      ]) {
        const from = (await d.log()).length;
        await knock(...args);
        assert.deepEqual(await waitForRules(), [sshRule(lab.clientAddr)], args.join(' '));
        assert.match((await lab.sshBanner()) ?? '', SSH_BANNER);
        assert.match((await d.log()).slice(from), /openSSHudp: OPEN SESAME/);
        await knock(lab.serverAddr, '6666', '7777', '8888');
        await waitForNoRules();
      }
    });

    test('(c) the UDP door ignores the same ports knocked over TCP', async () => {
      const from = (await d.log()).length;
      await knock(lab.serverAddr, '2222', '3333');
      // The TCP 3333 hit (after 2222) reached the TCP door: both hits were seen.
      await d.waitForLog(/openSSH: Stage 1/, SLOW, from);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /openSSHudp: Stage/);
    });

    test('(d) knock -6 to the server\'s IPv6 address opens a family="ipv6" rule', async () => {
      const out = await knock('-v', '-6', lab.serverAddr6, '3333', '4444', '5555');
      assert.equal(out, [3333, 4444, 5555].map((p) => `hitting tcp ${lab.serverAddr6}:${p}\n`).join(''));
      assert.deepEqual(await waitForRules(), [sshRule(lab.clientAddr6, 6)]);
      assert.match((await lab.sshBanner({ host: lab.serverAddr6 })) ?? '', SSH_BANNER);
      assert.equal(await lab.sshBanner(), null, 'IPv4 stays closed');
      await knock('-6', lab.serverAddr6, '6666', '7777', '8888');
      await waitForNoRules();
    });
  });

  describe("with Debian's knockd 0.8", () => {
    let proc: ChildProcess;
    let outFile: string;
    const output = (): Promise<string> => readFile(outFile, 'utf8').catch(() => '');

    before(async () => {
      const conf = join(lab.tmpDir, 'debian-knockd.conf');
      outFile = join(lab.tmpDir, 'debian-knockd.out');
      await writeFile(conf, DEBIAN_CONF);
      proc = lab.spawnIn(
        'server',
        [DEBIAN_KNOCKD, '-i', lab.serverIf, '-c', conf, '-p', join(lab.tmpDir, 'debian-knockd.pid'), '-v'],
        { logFile: outFile },
      );
      // knockd -v prints "listening on <iface>..." once its pcap handle is open.
      await lab.waitFor(
        async () => {
          if (proc.exitCode !== null) throw new Error(`Debian knockd exited with ${proc.exitCode}:\n${await output()}`);
          return (await output()).includes(`listening on ${lab.serverIf}`);
        },
        SLOW,
        50,
      );
    });
    after(async () => {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      proc.ref(); // the lab unrefs its children: keep the loop alive while we wait for this one
      const exited = new Promise<void>((res) => proc.once('exit', () => res()));
      proc.kill('SIGTERM');
      await exited;
    });

    /** Wait for `re` in knockd's output (text after `from`), giving up after SLOW. */
    const waitForOutput = (re: RegExp, from: number): Promise<string> =>
      lab.waitFor(
        async () => {
          const text = (await output()).slice(from);
          return re.test(text) ? text : undefined;
        },
        SLOW,
        20,
      );

    test('(b) knock 3333 4444 5555 makes knockd 0.8 say OPEN SESAME and run the command', async () => {
      const from = (await output()).length;
      await knock(lab.serverAddr, '3333', '4444', '5555');
      const text = await waitForOutput(new RegExp(`OPENED ${escapeRe(lab.clientAddr)}\\n`), from);
      assert.match(text, new RegExp(`${escapeRe(lab.clientAddr)}: openSSH: Stage 1`));
      assert.match(text, new RegExp(`${escapeRe(lab.clientAddr)}: openSSH: Stage 3`));
      assert.match(text, /openSSH: OPEN SESAME/);
      assert.doesNotMatch(text, /openUDP: OPEN SESAME/);
    });

    test("(c) knock -u and port:udp open knockd 0.8's UDP door", async () => {
      for (const args of [
        ['-u', lab.serverAddr, '2222', '3333'],
        [lab.serverAddr, '2222:udp', '3333:udp'],
      ]) {
        const from = (await output()).length;
        await knock(...args);
        // knockd's own line and its command's output reach the log in either order.
        const opened = `UDPOPENED ${escapeRe(lab.clientAddr)}\\n`;
        const text = await waitForOutput(
          new RegExp(`openUDP: OPEN SESAME[\\s\\S]*${opened}|${opened}[\\s\\S]*openUDP: OPEN SESAME`),
          from,
        );
        assert.match(text, /openUDP: OPEN SESAME/, args.join(' '));
      }
    });
  });
});
