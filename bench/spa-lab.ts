/**
 * SPA in the lab, with the real fwknop client's packets:
 *  - latency: SPA packet → SSH reachable, next to knock → SSH reachable, on
 *    the same daemon in the same run (the probe of latency.ts: t0 just before
 *    the datagram / last SYN goes out, t1 the first successful connect to :22);
 *  - flood: hping3 --udp --flood --rand-source with SPA-sized payloads
 *    (204 bytes: they pass the kernel's length filter and reach the HMAC
 *    check) at the SPA port, while fresh authentic packets are sent about
 *    once a second: how many open, how fast, CPU and RSS of both processes.
 *
 *   node dist/bench/spa-lab.js [--quick]
 *
 * Packets are made with `fwknop -T -B` in the client namespace before each
 * trial (never timed). Nothing leaves the lab.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../test/lab/lab';
import { FirewalldAgent, Probe } from './agents';
import { OPEN_PORTS, fmtSummary, renderTable, sleep, startBenchLab, summarize, writeResult } from './common';
import { startOurs } from './daemons';

const KEY = 'JfqyVlEWbEMy9Oj72I0zuDVJcXyrtkLMpSYMZRsC/HY=';
const HMAC = 'wPkUeYdpzH8gzq/U4xywnkvtBGtTyKuqjYQ2ss21Bcj3zdyEnnq8hqTGm5W11bMWpLcc+ZE2wayC+/ydGIzU6w==';
const SPA_PORT = 62201;

const CONF = `[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 15
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 3600
[spaSSH]
    spa_port            = ${SPA_PORT}
    spa_key_base64      = ${KEY}
    spa_hmac_key_base64 = ${HMAC}
    spa_open_ports      = tcp/22
    cmd_timeout         = 3600
    firewalld_zone      = public
`;

/** A fresh authentic SPA packet from the real client (hex), made in the client namespace. */
function makePacket(lab: Lab, home: string): string {
  const file = join(home, 'pkt');
  execFileSync(
    'ip',
    [
      'netns',
      'exec',
      lab.clientNs,
      'env',
      `HOME=${home}`,
      'fwknop',
      '--no-rc-file',
      '--no-save-args',
      '-A',
      'tcp/22',
      '-a',
      lab.clientAddr,
      '-D',
      lab.serverAddr,
      '--key-base64-rijndael',
      KEY,
      '--key-base64-hmac',
      HMAC,
      '--use-hmac',
      '-T',
      '-B',
      file,
    ],
    { stdio: 'ignore' },
  );
  return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'latin1').toString('hex');
}

export async function runSpaBench(opts: {
  quick: boolean;
  lab?: Lab;
  log?: (s: string) => void;
}): Promise<Record<string, unknown>> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const trials = opts.quick ? 5 : 30;
  const floodSeconds = opts.quick ? 4 : 20;
  const lab = opts.lab ?? (await startBenchLab());
  const home = fs.mkdtempSync(join(lab.tmpDir, 'fwknop-'));
  const probe = Probe.start(lab);
  const fw = await FirewalldAgent.start(lab);
  const d = await startOurs(lab, { conf: CONF });
  try {
    const spa: number[] = [];
    const knock: number[] = [];
    for (let i = 0; i < trials; i++) {
      await fw.clear();
      await sleep(200);
      const pkt = makePacket(lab, home);
      const r = await probe.spa(pkt, SPA_PORT, 'open', 5000);
      if (r.ms !== null) spa.push(r.ms);
      await fw.clear();
      await sleep(200);
      const k = await probe.knock(OPEN_PORTS, 'open', 5000);
      if (k.ms !== null) knock.push(k.ms);
    }
    log(
      `latency, ${trials} trials each (ms): SPA → open ${fmtSummary(summarize(spa))}; knock → open ${fmtSummary(summarize(knock))}`,
    );

    // Flood: random-source UDP datagrams of SPA size at the SPA port; a fresh authentic packet about once a second.
    await fw.clear();
    const before = d.sample();
    // As in flood.ts: on two or more cores the generator (and the kernel receive path it drives) gets core 0.
    const pin = availableParallelism() >= 2 ? ['taskset', '-c', '0'] : [];
    const hping = lab.spawnIn(
      'client',
      [
        ...pin,
        'timeout',
        '-s',
        'INT',
        '-k',
        '5',
        String(floodSeconds),
        'hping3',
        '--udp',
        '--flood',
        '--rand-source',
        '-d',
        '204',
        '-p',
        String(SPA_PORT),
        lab.serverAddr,
      ],
      {
        logFile: join(lab.tmpDir, 'hping3-spa.log'),
      },
    );
    const t0 = Date.now();
    const opened: number[] = [];
    const knocked: number[] = [];
    let sent = 0;
    let knocks = 0;
    await sleep(1000);
    while (Date.now() - t0 < (floodSeconds - 1) * 1000) {
      // Alternately a fresh SPA packet and a knock sequence: neither may be starved by the flood.
      if (sent <= knocks) {
        const pkt = makePacket(lab, home);
        sent++;
        const r = await probe.spa(pkt, SPA_PORT, 'open', 2000);
        if (r.ms !== null) opened.push(r.ms);
      } else {
        knocks++;
        const k = await probe.knock(OPEN_PORTS, 'open', 2000);
        if (k.ms !== null) knocked.push(k.ms);
      }
      await fw.clear();
      await sleep(300);
    }
    await new Promise<void>((r) => (hping.exitCode !== null ? r() : hping.once('exit', () => r())));
    const text = fs.readFileSync(join(lab.tmpDir, 'hping3-spa.log'), 'utf8');
    const floodSent = Number(/(\d+) packets transmitted/.exec(text)?.[1] ?? NaN);
    const after = d.sample();
    const cpu = after.cpuSec - before.cpuSec;
    const rss = after.rssMB;
    log(
      `flood: ${floodSent} datagrams in ${floodSeconds} s (${Math.round(floodSent / floodSeconds / 1000)} k/s), legit SPA ${opened.length}/${sent} opened, knocks ${knocked.length}/${knocks} opened (${fmtSummary(summarize(knocked))} ms), SPA ` +
        `${fmtSummary(summarize(opened))} ms; CPU ${cpu.toFixed(2)} s (${((cpu / floodSent) * 1e6).toFixed(1)} µs a datagram), RSS ${rss.toFixed(1)} MB`,
    );
    const result = {
      trials,
      spa: summarize(spa),
      knock: summarize(knock),
      flood: {
        seconds: floodSeconds,
        sent: floodSent,
        legitSent: sent,
        legitOpened: opened.length,
        openMs: summarize(opened),
        knocks,
        knocksOpened: knocked.length,
        knockMs: summarize(knocked),
        cpuSeconds: cpu,
        rssMb: rss,
      },
    };
    writeResult('spa-lab', result);
    log(
      renderTable([
        ['metric', 'value'],
        ['SPA → open (median ms)', fmtSummary(summarize(spa))],
        ['knock → open (median ms)', fmtSummary(summarize(knock))],
        ['UDP flood at SPA port', `${Math.round(floodSent / floodSeconds / 1000)} k/s`],
        ['legit SPA opened under flood', `${opened.length}/${sent}`],
        ['knocks opened under the SPA flood', `${knocked.length}/${knocks}`],
      ]),
    );
    return result;
  } finally {
    await d.stop();
    await probe.stop();
    await fw.stop();
    if (!opts.lab) await lab.stop();
  }
}

if (require.main === module) {
  runSpaBench({ quick: process.argv.includes('--quick') }).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
