/**
 * Clients that knock twice (issue #19, item 1): browsers, phone knock apps and
 * wrappers around `nc`/`telnet` open two connections per port. Here each knock
 * is made twice with a real client from the client namespace — two `nc -z`,
 * two bash `/dev/tcp` connects (each a new connection: another source port and
 * sequence number), two UDP datagrams — and the door must open, with no
 * "wrong knock" in the log. A packet capture on the server veth checks that
 * every TCP port really got two different SYNs.
 *
 * On the old code (before the repeat rule) every case fails: the second SYN
 * to the port just passed was a wrong knock and reset the sequence.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

[repeatSSH]
    sequence          = 1000,1000,2000
    seq_timeout       = 30
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh

[strictSSH]
    sequence          = 3401,3402,3403
    seq_timeout       = 30
    tcpflags          = syn
    strict_repeats    = yes
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

type Client = 'nc' | 'bash';

/** One knock (one connection, or one datagram) with a real client; TCP gives up after 1 s (the zone rejects). */
function knockArgv(client: Client, host: string, port: string): { argv: string[]; input?: string } {
  const [num, proto] = port.split(':') as [string, string | undefined];
  if (proto === 'udp') {
    if (client === 'nc') return { argv: ['nc', '-u', '-w', '1', host, num], input: 'knock\n' };
    return { argv: ['bash', '-c', `echo knock > /dev/udp/${host}/${num}`] };
  }
  if (client === 'nc') return { argv: ['nc', '-z', '-w', '1', host, num] };
  return { argv: ['timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${num}`] };
}

/** SYNs (without ACK) on the server veth as "sport dport seq", from a tcpdump capture file (IPv4 and IPv6). */
async function synsIn(lab: Lab, file: string): Promise<string[]> {
  const r = await lab.execIn('server', [
    'tcpdump',
    '-nn',
    '-r',
    file,
    'tcp and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn or ip6 and tcp',
  ]);
  assert.equal(r.code, 0, `tcpdump -r: ${r.stderr}`);
  const out: string[] = [];
  for (const m of r.stdout.matchAll(/IP6? [0-9a-f.:]+\.(\d+) > [0-9a-f.:]+\.(\d+): Flags \[S\], seq (\d+)/g))
    out.push(`${m[1]} ${m[2]} ${m[3]}`);
  return out;
}

describe('clients that knock twice (two connections per port) open a door', () => {
  let lab!: Lab;
  withLab({}, (l) => (lab = l));
  let d: RunningDaemon;

  before(async () => {
    d = await startKnockd(lab, CONF);
  });
  after(async () => {
    await d?.stop();
  });

  const cases: { client: Client; door: string; ports: string[]; family: 4 | 6 }[] = [
    { client: 'nc', door: 'openSSH', ports: ['3333', '4444', '5555'], family: 4 },
    { client: 'bash', door: 'openSSH', ports: ['3333', '4444', '5555'], family: 4 },
    { client: 'nc', door: 'openSSH', ports: ['3333', '4444', '5555'], family: 6 },
    { client: 'nc', door: 'mixedSSH', ports: ['4101:udp', '4102', '4103:udp', '4104'], family: 4 },
    { client: 'bash', door: 'mixedSSH', ports: ['4101:udp', '4102', '4103:udp', '4104'], family: 4 },
    // a sequence that repeats a port on purpose, knocked twice: 1000 four times, then 2000 twice
    { client: 'nc', door: 'repeatSSH', ports: ['1000', '1000', '2000'], family: 4 },
  ];

  test(
    "a door with strict_repeats = yes keeps knockd 0.8's rule: two nc per port open nothing, one each opens",
    { timeout: 90_000 },
    async () => {
      const from = (await d.log()).length;
      for (const p of ['3401', '3402', '3403'])
        for (let n = 0; n < 2; n++)
          await lab.execIn('client', knockArgv('nc', lab.serverAddr, p).argv, { timeoutMs: 10_000 });
      await d.waitForLog(/strictSSH: wrong knock tcp\/3401 at stage 1, sequence reset/, SLOW, from);
      await sleep(300);
      assert.deepEqual(await lab.richRules(), []);
      assert.doesNotMatch((await d.log()).slice(from), /strictSSH: OPEN SESAME/);
      for (const p of ['3401', '3402', '3403'])
        await lab.execIn('client', knockArgv('nc', lab.serverAddr, p).argv, { timeoutMs: 10_000 });
      await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
      const before = (await d.log()).length;
      await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
      await d.waitForLog(/closeSSH: OPEN SESAME/, SLOW, before);
      await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
    },
  );

  for (const c of cases) {
    test(
      `${c.client} twice per port, IPv${c.family}: ${c.door} (${c.ports.join(',')}) opens`,
      { timeout: 90_000 },
      async () => {
        const host = c.family === 6 ? lab.serverAddr6 : lab.serverAddr;
        const src = c.family === 6 ? lab.clientAddr6 : lab.clientAddr;
        const from = (await d.log()).length;
        const pcap = join(lab.tmpDir, `twice-${c.client}-${c.door}-${c.family}.pcap`);
        const dumpLog = `${pcap}.log`;
        const knocks: string[] = [];
        const dump: ChildProcess = lab.spawnIn(
          'server',
          ['tcpdump', '--immediate-mode', '-i', lab.serverIf, '-nn', '-U', '-w', pcap, 'tcp or udp'],
          {
            logFile: dumpLog,
          },
        );
        try {
          await lab.waitFor(
            async () => existsSync(dumpLog) && readFileSync(dumpLog, 'utf8').includes('listening on'),
            SLOW,
            50,
          );
          for (const p of c.ports)
            for (let n = 0; n < 2; n++) {
              const { argv, input } = knockArgv(c.client, host, p);
              const r = await lab.execIn('client', argv, {
                timeoutMs: 10_000,
                ...(input !== undefined ? { input } : {}),
              });
              knocks.push(`${argv.join(' ')}: ${r.code} ${r.stderr.trim()}`);
            }
          await sleep(300);
        } finally {
          dump.kill('SIGTERM');
          await lab
            .waitFor(async () => dump.exitCode !== null || dump.signalCode !== null, SLOW, 50)
            .catch(() => undefined);
        }
        const syns = await synsIn(lab, pcap);
        for (const port of new Set(c.ports.filter((p) => !p.includes(':')))) {
          const want = 2 * c.ports.filter((p) => p === port).length;
          const mine = new Set(syns.filter((s) => s.split(' ')[1] === port));
          assert.ok(
            mine.size >= want,
            `${c.client} made ${want} connections to ${port}: ${JSON.stringify([...mine])}; all: ${JSON.stringify(syns)}; ${knocks.join(' | ')}; dump: ${readFileSync(dumpLog, 'utf8')}`,
          );
        }
        await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(src, c.family)), SLOW, 50);
        const log = (await d.log()).slice(from);
        assert.match(log, new RegExp(`: ${c.door}: OPEN SESAME`));
        assert.doesNotMatch(log, new RegExp(`: ${c.door}: wrong knock`), 'no second knock spoiled the attempt');

        const before = (await d.log()).length;
        await debianKnock(lab, host, [6666, 7777, 8888]);
        await d.waitForLog(/closeSSH: OPEN SESAME/, SLOW, before);
        await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
      },
    );
  }
});
