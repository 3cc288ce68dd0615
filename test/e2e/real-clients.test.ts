/**
 * Knocks made with ordinary clients, as users make them, against a zone whose
 * target is DROP (`firewall-cmd --zone=public --set-target=DROP`, a common
 * hardening): `nc -z -w 3`, `telnet` and bash's `/dev/tcp`, one port after
 * the other. The server never answers a knock port, so each client's kernel
 * retransmits its SYN after a second (same source port, same sequence
 * number); those copies must not count as wrong knocks. UDP knocks of the
 * mixed sequences are single datagrams (`nc -u`, bash's `/dev/udp`).
 *
 * Each case checks, with a packet capture on the server veth, that the
 * client really retransmitted; then that the door opened (the rich rule is
 * there, the SSH banner is readable); then closes the door again with the
 * close sequence (Debian's knock: one SYN per port, no retransmission).
 *
 * The zone's target can only be set permanently (`--set-target` needs
 * `--permanent`) and takes effect on `--reload`: the lab's firewalld reads and
 * writes a private config directory in the lab's temp dir (`--system-config`),
 * which the first test verifies, so the host's /etc/firewalld is never touched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, debianKnock, sleep, sshRule, startKnockd, type RunningDaemon, withLab } from './helpers';

const CONF = `
[options]
    logfile = /dev/null

[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 30
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh

[mixedSSH]
    sequence          = 4101:udp,4102,4103:udp,4104
    seq_timeout       = 30
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh

[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = 30
    tcpflags          = syn
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh
`;

type Client = 'nc' | 'telnet' | 'bash';

/** One knock on a port with a real client, from the client namespace; the TCP ones give up after 3 s (no answer). */
function knockArgv(client: Client, host: string, port: string): { argv: string[]; input?: string } {
  const [num, proto] = port.split(':') as [string, string | undefined];
  if (proto === 'udp') {
    if (client === 'nc') return { argv: ['nc', '-u', '-w', '1', host, num], input: 'knock\n' };
    return { argv: ['bash', '-c', `echo knock > /dev/udp/${host}/${num}`] };
  }
  switch (client) {
    case 'nc':
      return { argv: ['nc', '-z', '-w', '3', host, num] };
    case 'telnet':
      return { argv: ['timeout', '3', 'telnet', host, num] };
    case 'bash':
      return { argv: ['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${num}`] };
  }
}

/** SYNs (without ACK) on the server veth, as "sport dport seq" per line, from a tcpdump capture file. */
async function synsIn(lab: Lab, file: string): Promise<string[]> {
  const r = await lab.execIn('server', ['tcpdump', '-nn', '-r', file, 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn']);
  assert.equal(r.code, 0, `tcpdump -r: ${r.stderr}`);
  const out: string[] = [];
  for (const m of r.stdout.matchAll(
    /IP \d+\.\d+\.\d+\.\d+\.(\d+) > \d+\.\d+\.\d+\.\d+\.(\d+): Flags \[S\], seq (\d+)/g,
  ))
    out.push(`${m[1]} ${m[2]} ${m[3]}`);
  return out;
}

describe('real clients (nc, telnet, bash /dev/tcp) open a door in a zone with target DROP', () => {
  let lab!: Lab;
  withLab({ ipv6: false }, (l) => (lab = l));
  let d: RunningDaemon;
  let hostZone: { path: string; mtimeMs: number } | undefined;

  before(async () => {
    const host = '/etc/firewalld/zones/public.xml';
    hostZone = existsSync(host) ? { path: host, mtimeMs: statSync(host).mtimeMs } : undefined;
    await lab.firewallCmd('--permanent', '--zone=public', '--set-target=DROP');
    // the lab removes ssh from the runtime zone only; a reload would bring it back from the (private) permanent config
    await lab.firewallCmd('--permanent', '--zone=public', '--remove-service=ssh');
    await lab.firewallCmd('--reload');
    // the reload forgets the runtime binding of the veth to public (the lab made it at runtime): bind it again
    await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
    d = await startKnockd(lab, CONF);
  });
  after(async () => {
    await d?.stop();
  });

  test("the zone drops (no answer: clients retransmit); the change went to the lab's private config, not the host's", async () => {
    assert.equal(await lab.firewallCmd('--permanent', '--zone=public', '--get-target'), 'DROP');
    const zones = await lab.firewallCmd('--get-active-zones');
    assert.match(zones, new RegExp(`public\\s+interfaces: ${lab.serverIf}`), 'the veth is in zone public');
    const privateZone = join(lab.tmpDir, 'firewalld-etc', 'zones', 'public.xml');
    assert.match(readFileSync(privateZone, 'utf8'), /target="DROP"/);
    const host = '/etc/firewalld/zones/public.xml';
    if (hostZone === undefined) assert.equal(existsSync(host), false, `${host} was created`);
    else assert.equal(statSync(host).mtimeMs, hostZone.mtimeMs, `${host} was modified`);
    // dropped, not rejected: a connect to a closed port times out instead of failing at once
    const t0 = Date.now();
    const r = await lab.execIn('client', ['nc', '-z', '-w', '2', lab.serverAddr, '22']);
    assert.notEqual(r.code, 0);
    assert.ok(Date.now() - t0 >= 1900, `nc gave up after ${Date.now() - t0} ms: the zone answered instead of dropping`);
    assert.deepEqual(await lab.richRules(), []);
  });

  const cases: { client: Client; door: string; ports: string[] }[] = [];
  for (const client of ['nc', 'telnet', 'bash'] as const) {
    cases.push({ client, door: 'openSSH', ports: ['3333', '4444', '5555'] });
    cases.push({ client, door: 'mixedSSH', ports: ['4101:udp', '4102', '4103:udp', '4104'] });
  }

  for (const c of cases) {
    test(
      `${c.client}: ${c.door} (${c.ports.join(',')}) opens, the retransmitted SYNs notwithstanding`,
      { timeout: 90_000 },
      async () => {
        const from = (await d.log()).length;
        const pcap = join(lab.tmpDir, `${c.client}-${c.door}.pcap`);
        const dumpLog = join(lab.tmpDir, `${c.client}-${c.door}.tcpdump.log`);
        const dump: ChildProcess = lab.spawnIn(
          'server',
          ['tcpdump', '-i', lab.serverIf, '-nn', '-U', '-w', pcap, 'tcp or udp'],
          { logFile: dumpLog },
        );
        try {
          await lab.waitFor(
            async () => existsSync(dumpLog) && readFileSync(dumpLog, 'utf8').includes('listening on'),
            SLOW,
            50,
          );
          for (const p of c.ports) {
            const { argv, input } = knockArgv(c.client, lab.serverAddr, p);
            const r = await lab.execIn('client', argv, {
              timeoutMs: 10_000,
              ...(input !== undefined ? { input } : {}),
            });
            if (!p.endsWith(':udp')) assert.notEqual(r.code, 0, `${argv.join(' ')}: a knock port never accepts`);
          }
          await sleep(300);
        } finally {
          dump.kill('SIGTERM');
          await lab
            .waitFor(async () => dump.exitCode !== null || dump.signalCode !== null, SLOW, 50)
            .catch(() => undefined);
        }
        const syns = await synsIn(lab, pcap);
        const tcpPorts = c.ports.filter((p) => !p.includes(':'));
        for (const port of tcpPorts) {
          const mine = syns.filter((s) => s.split(' ')[1] === port);
          assert.ok(
            mine.length >= 2 && new Set(mine).size === 1,
            `${c.client} sent one SYN to ${port} and retransmitted it: ${JSON.stringify(mine)}`,
          );
        }
        await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
        assert.match((await lab.sshBanner({ timeoutMs: 3000 })) ?? '', /^SSH-2\.0-OpenSSH/);
        const log = (await d.log()).slice(from);
        assert.match(log, new RegExp(`: ${c.door}: OPEN SESAME`));
        assert.doesNotMatch(log, new RegExp(`: ${c.door}: wrong knock`), 'no retransmission spoiled the attempt');

        // close again for the next case
        const before = (await d.log()).length;
        await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
        await d.waitForLog(/closeSSH: OPEN SESAME/, SLOW, before);
        await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
        assert.equal(await lab.sshBanner(), null);
      },
    );
  }
});
