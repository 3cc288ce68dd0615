/**
 * All benchmarks in sequence: matcher (in-process), latency, flood, idle (one
 * namespace lab shared by the last three). Writes bench/results/all.json
 * (and each benchmark's own file) and prints one combined table.
 *
 *   npm run bench                          # = npm run build && node dist/bench/run.js
 *   node dist/bench/run.js --quick         # a smoke run, under a minute
 *
 * Must run as root (network namespaces, firewalld, hping3). Full run: a few
 * minutes (latency ~1.5 min, flood ~1.5–2 min, idle 1 min).
 */
import * as os from 'node:os';
import { runMatcherBench, type MatcherBenchResult } from './matcher';
import {
  LATENCY_HEADER,
  latencyRows,
  renderTable,
  runLatencyBench,
  startBenchLab,
  writeResult,
  type LatencyResult,
} from './latency';
import { floodRows, runFloodBench, type FloodResult } from './flood';
import { idleRows, runIdleBench, type IdleResult } from './idle';
import { runSpaBench } from './spa-lab';
import { completionFloodRows, runCompletionFloodBench, type CompletionFloodResult } from './completion-flood';

export interface AllResults {
  date: string;
  quick: boolean;
  node: string;
  machine: { cpus: number; cpuModel: string; memGB: number; kernel: string };
  seconds: number;
  matcher: MatcherBenchResult;
  latency: LatencyResult;
  flood: FloodResult;
  /** A sniffed sequence completed from spoofed sources (completion-flood.ts); absent in older results. */
  completionFlood?: CompletionFloodResult;
  idle: IdleResult;
  /** SPA packet → open and a UDP flood at the SPA port (spa-lab.ts). */
  spa: Record<string, unknown>;
}

/** One table, six columns; flood/idle/matcher rows leave the floor columns empty. */
export function combinedTable(r: AllResults): string {
  const pad = (row: string[]): string[] => [
    ...row,
    ...Array<string>(Math.max(0, LATENCY_HEADER.length - row.length)).fill(''),
  ];
  const m = (x: number): string => `${(x / 1e6).toFixed(2)} M`;
  const section = (title: string): string[] => pad([`[${title}]`]);
  return renderTable([
    LATENCY_HEADER,
    section(`latency: ${r.latency.trials} trials each, probe polls :22 every ${r.latency.pollIntervalMs} ms`),
    ...latencyRows(r.latency),
    section(`flood: hping3 --flood --rand-source, ${r.flood.seconds} s per daemon`),
    ...floodRows(r.flood).map(pad),
    ...(r.completionFlood ? completionFloodRows(r.completionFlood).map(pad) : []),
    section('idle'),
    ...idleRows(r.idle).map(pad),
    section('matcher (in-process, one core, 90% non-knock traffic)'),
    pad([
      'decode + match, packets/s',
      `${m(r.matcher.ppsMedian)} (${m(r.matcher.ppsMin)}–${m(r.matcher.ppsMax)})`,
      'n/a',
      '',
    ]),
  ]);
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const t0 = Date.now();
  const log = (s: string): void => {
    process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  };
  log(`benchmarks (${quick ? 'quick' : 'full'})`);
  const matcher = runMatcherBench(quick);
  log(`matcher: ${(matcher.ppsMedian / 1e6).toFixed(2)} M packets/s`);
  const lab = await startBenchLab();
  let latency: LatencyResult;
  let flood: FloodResult;
  let completionFlood: CompletionFloodResult;
  let idle: IdleResult;
  let spa: Record<string, unknown>;
  try {
    latency = await runLatencyBench({ quick, lab, log });
    flood = await runFloodBench({ quick, lab, log });
    completionFlood = await runCompletionFloodBench({ quick, lab, log });
    idle = await runIdleBench({ quick, lab, log });
    spa = await runSpaBench({ quick, lab, log });
  } finally {
    await lab.stop();
  }
  const cpus = os.cpus();
  const all: AllResults = {
    date: new Date().toISOString(),
    quick,
    node: process.version,
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? '',
      memGB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
    },
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    matcher,
    latency,
    flood,
    completionFlood,
    idle,
    spa,
  };
  const meta = { quick, node: process.version, date: all.date };
  writeResult('matcher', { ...matcher, ...meta });
  writeResult('latency', { ...latency, ...meta });
  writeResult('flood', { ...flood, ...meta });
  writeResult('completion-flood', { ...completionFlood, ...meta });
  writeResult('idle', { ...idle, ...meta });
  const file = writeResult('all', all);
  process.stdout.write(
    `\nknockd-firewalld benchmarks (${quick ? 'QUICK run: few trials, numbers are rough' : 'full run'}), ${all.date}\n` +
      `${all.machine.cpus} × ${all.machine.cpuModel}, ${all.machine.memGB} GB, Linux ${all.machine.kernel}, node ${all.node}; took ${all.seconds} s\n` +
      `cells: median (min–max) unless noted; ratios are knockd/ours (>1: ours better) and ours/floor (1: as fast as a bare D-Bus call)\n\n` +
      `${combinedTable(all)}\n\n(${file})\n`,
  );
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`benchmarks failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
