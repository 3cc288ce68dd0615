/**
 * Idle cost: both daemons running side by side in the lab with no traffic
 * (no knocks, nothing else on the veth) for 60 s: resident memory at the
 * start and at the end (and PSS at the end, per process), CPU seconds used
 * in between.
 *
 *   node dist/bench/idle.js            # 60 s
 *   node dist/bench/idle.js --quick    # 5 s
 *
 * Ours counts the daemon and its capture process together (both node);
 * knockd 0.8 is one process. Sampling starts 2 s after both are listening.
 */
import type { Lab } from '../test/lab/lab';
import { renderTable, sleep, startBenchLab, writeResult } from './common';
import { DAEMON_LABEL, startKnockd08, startOurs, type DaemonHandle, type DaemonName } from './daemons';

export interface IdleDaemon {
  processes: number;
  rssStartMB: number;
  rssEndMB: number;
  /** PSS at the end, per process (ours: daemon first, then the capture process). */
  pssEndMB: number[];
  /** CPU seconds used over the window (utime + stime of the daemon's processes). */
  cpuSec: number;
  /** cpuSec as a share of one core. */
  cpuShare: number;
}

export interface IdleResult {
  seconds: number;
  ours: IdleDaemon;
  knockd08: IdleDaemon;
}

export async function runIdleBench(opts: {
  quick: boolean;
  lab?: Lab;
  seconds?: number;
  log?: (s: string) => void;
}): Promise<IdleResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const seconds = opts.seconds ?? (opts.quick ? 5 : 60);
  const lab = opts.lab ?? (await startBenchLab());
  const daemons: DaemonHandle[] = [];
  try {
    log(`idle: both daemons, no traffic, ${seconds} s`);
    daemons.push(await startOurs(lab));
    daemons.push(await startKnockd08(lab));
    await sleep(2000);
    const before = daemons.map((d) => d.sample());
    const t0 = Date.now();
    await sleep(seconds * 1000);
    const wall = (Date.now() - t0) / 1000;
    const after = daemons.map((d) => d.sample());
    const out = {} as Record<DaemonName, IdleDaemon>;
    daemons.forEach((d, i) => {
      const cpu = Math.round((after[i].cpuSec - before[i].cpuSec) * 100) / 100;
      out[d.name] = {
        processes: after[i].pids.length,
        rssStartMB: before[i].rssMB,
        rssEndMB: after[i].rssMB,
        pssEndMB: after[i].parts.map((p) => p.pssMB),
        cpuSec: cpu,
        cpuShare: Math.round((cpu / wall) * 10000) / 10000,
      };
      log(
        `  ${DAEMON_LABEL[d.name]}: RSS ${before[i].rssMB} → ${after[i].rssMB} MB, CPU ${cpu} s in ${wall.toFixed(1)} s`,
      );
    });
    return { seconds, ours: out.ours, knockd08: out.knockd08 };
  } finally {
    for (const d of daemons) await d.stop().catch(() => undefined);
    if (!opts.lab) await lab.stop();
  }
}

const ratioText = (a: number, b: number, d = 1): string => (a === 0 || b === 0 ? 'n/a' : `${(a / b).toFixed(d)}×`);

/** Rows for the combined table: metric, ours, knockd 0.8, knockd/ours. */
export function idleRows(r: IdleResult): string[][] {
  const o = r.ours;
  const k = r.knockd08;
  return [
    [
      `idle ${r.seconds} s: RSS at start → end, MB`,
      `${o.rssStartMB} → ${o.rssEndMB}`,
      `${k.rssStartMB} → ${k.rssEndMB}`,
      ratioText(k.rssEndMB, o.rssEndMB, 2),
    ],
    [`idle ${r.seconds} s: PSS at end, MB (per process)`, o.pssEndMB.join(' + '), k.pssEndMB.join(' + '), ''],
    [
      `idle ${r.seconds} s: CPU seconds used`,
      o.cpuSec.toFixed(2),
      k.cpuSec.toFixed(2),
      ratioText(k.cpuSec, o.cpuSec, 2),
    ],
    ['  processes', String(o.processes), String(k.processes), ''],
  ];
}

export const IDLE_HEADER = ['idle', 'ours', 'knockd 0.8', 'knockd/ours'];

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  runIdleBench({ quick }).then(
    (r) => {
      const file = writeResult('idle', { ...r, quick, node: process.version, date: new Date().toISOString() });
      process.stdout.write(`\nidle cost\n${renderTable([IDLE_HEADER, ...idleRows(r)])}\n\n(${file})\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`idle bench failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
