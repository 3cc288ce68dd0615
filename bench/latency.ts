/**
 * Knock-to-open and knock-to-close latency, ours vs Debian's knockd 0.8
 * running the CentOS tutorial's firewall-cmd commands, plus the floor (a bare
 * firewalld D-Bus call), all in the same namespace lab in the same run.
 *
 *   node dist/bench/latency.js            # 30 open + 30 close trials per daemon, 30 floor trials
 *   node dist/bench/latency.js --quick    # 5 of each
 *
 * What is timed (all clocks are CLOCK_MONOTONIC via process.hrtime, which
 * network namespaces share, so times from different processes compare):
 * - daemons: one long-running probe process in the client namespace sends the
 *   three knocks itself (one TCP connect per port, destroyed at once, like
 *   knock 0.8), stamps t0 as the last SYN goes out (just before its
 *   connect(2)), then starts a TCP connect to server:22 every 2 ms until one
 *   succeeds (open) or one is rejected (close: firewalld REJECTs with ICMP
 *   admin-prohibited, EHOSTUNREACH); t1. Reported: t1 - t0.
 * - floor: a node process in the server namespace sends firewalld's
 *   addRichRule (then removeRichRule) straight over D-Bus on an already open
 *   connection; t0 before the call. Reported: the call's round trip, and
 *   t1 - t0 with t1 the probe's first successful (refused) connect, so
 *   "floor" = D-Bus call + rule visible to the client, the least a daemon
 *   that uses firewalld can do. One floor trial runs before each of ours
 *   (paired, same firewalld conditions); knockd 0.8 runs afterwards.
 * No process start-up is inside a timed region: probe and D-Bus agent are
 * started once and driven over stdin/stdout with JSON lines, under SCHED_FIFO
 * where allowed (chrt) so the processes they time cannot delay their stamps.
 *
 * The helpers the lab benchmarks share are in common.ts (lab, results,
 * statistics), proc.ts (/proc sampling), daemons.ts (both daemons),
 * agents.ts and agent-main.ts (the probe and the D-Bus agent).
 */
import { type Lab } from '../test/lab/lab';
import { sshRule } from '../test/e2e/helpers';
import {
  OPEN_PORTS,
  CLOSE_PORTS,
  POLL_MS,
  sleep,
  writeResult,
  type Summary,
  summarize,
  fmtSummary,
  fmtRatio,
  ratio,
  renderTable,
  startBenchLab,
} from './common';
import { type DaemonName, DAEMON_LABEL, startDaemon } from './daemons';
import { Probe, FirewalldAgent, nsDiffMs } from './agents';

export interface DaemonLatency {
  /** knock-to-open, ms (t1 - t0) per trial. */
  open: number[];
  close: number[];
  openStats: Summary | null;
  closeStats: Summary | null;
  /** Trials where the port did not change state within the timeout. */
  failures: number;
}

export interface LatencyResult {
  trials: number;
  warmup: number;
  pollIntervalMs: number;
  ours: DaemonLatency;
  knockd08: DaemonLatency;
  floor: {
    addCall: number[];
    addVisible: number[];
    removeCall: number[];
    removeVisible: number[];
    addCallStats: Summary | null;
    addVisibleStats: Summary | null;
    removeCallStats: Summary | null;
    removeVisibleStats: Summary | null;
    failures: number;
  };
  ratios: {
    /** knockd 0.8 median / ours median (speed-up; target >= 10). */
    knockdOverOursOpen: number | null;
    knockdOverOursClose: number | null;
    /** ours median / floor (add + visible) median (target <= 1.5). */
    oursOverFloorOpen: number | null;
    oursOverFloorClose: number | null;
  };
  targets: { tenTimesFaster: boolean; withinFloor: boolean };
  seconds: number;
}

const PAUSE_MS = 150;

type FloorSamples = {
  addCall: number[];
  addVisible: number[];
  removeCall: number[];
  removeVisible: number[];
  failures: number;
};

/** One floor trial: addRichRule straight over D-Bus, the probe sees :22 open; removeRichRule, it sees it closed. */
async function floorTrial(probe: Probe, fw: FirewalldAgent, rule: string, into: FloorSamples | null): Promise<void> {
  for (const op of ['add', 'remove'] as const) {
    const seen = probe.wait(op === 'add' ? 'open' : 'closed', 10_000);
    await sleep(10); // the probe is polling before the call goes out
    const c = op === 'add' ? await fw.add(rule) : await fw.remove(rule);
    const v = await seen;
    if (!into) continue;
    (op === 'add' ? into.addCall : into.removeCall).push(nsDiffMs(c.t1, c.t0));
    if (v.t1 === null) into.failures++;
    else (op === 'add' ? into.addVisible : into.removeVisible).push(nsDiffMs(v.t1, c.t0));
  }
}

/**
 * Alternate open and close knocks against one daemon. With `floor`, a floor
 * trial runs before each of the daemon's (our daemon does not react to it:
 * no knock is sent), so both are measured under the same conditions, paired,
 * rather than minutes apart while firewalld's own speed drifts.
 */
async function measureDaemon(
  lab: Lab,
  probe: Probe,
  name: DaemonName,
  trials: number,
  warmup: number,
  log: (s: string) => void,
  floor?: { fw: FirewalldAgent; samples: FloorSamples },
): Promise<DaemonLatency> {
  const d = await startDaemon(lab, name);
  const open: number[] = [];
  const close: number[] = [];
  const rule = sshRule(lab.clientAddr);
  let failures = 0;
  try {
    await sleep(300);
    for (let i = 0; i < warmup + trials; i++) {
      if (floor) {
        await floorTrial(probe, floor.fw, rule, i >= warmup ? floor.samples : null);
        await sleep(PAUSE_MS);
      }
      const o = await probe.knock(OPEN_PORTS, 'open', 10_000);
      const c = await probe.knock(CLOSE_PORTS, 'closed', 10_000);
      if (i >= warmup) {
        if (o.ms !== null) open.push(o.ms);
        else failures++;
        if (c.ms !== null) close.push(c.ms);
        else failures++;
      }
      await sleep(PAUSE_MS);
    }
  } finally {
    await d.stop();
  }
  const r = { open, close, openStats: summarize(open), closeStats: summarize(close), failures };
  log(
    `  ${DAEMON_LABEL[name]}: open ${fmtSummary(r.openStats)} ms, close ${fmtSummary(r.closeStats)} ms, failures ${failures}`,
  );
  return r;
}

function floorResult(f: FloorSamples, log: (s: string) => void): LatencyResult['floor'] {
  const r = {
    ...f,
    addCallStats: summarize(f.addCall),
    addVisibleStats: summarize(f.addVisible),
    removeCallStats: summarize(f.removeCall),
    removeVisibleStats: summarize(f.removeVisible),
  };
  log(
    `  floor: add call ${fmtSummary(r.addCallStats)} ms, add+visible ${fmtSummary(r.addVisibleStats)} ms, remove+visible ${fmtSummary(r.removeVisibleStats)} ms`,
  );
  return r;
}

export async function runLatencyBench(opts: {
  quick: boolean;
  lab?: Lab;
  log?: (s: string) => void;
}): Promise<LatencyResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const t0 = Date.now();
  const trials = opts.quick ? 5 : 30;
  const warmup = opts.quick ? 1 : 2;
  const lab = opts.lab ?? (await startBenchLab());
  const probe = Probe.start(lab);
  try {
    log(`latency: ${trials} trials (+${warmup} warm-up) per daemon, probe polls :22 every ${POLL_MS} ms`);
    const fw = await FirewalldAgent.start(lab);
    const samples: FloorSamples = { addCall: [], addVisible: [], removeCall: [], removeVisible: [], failures: 0 };
    let ours: DaemonLatency;
    try {
      await fw.clear(); // start closed (a previous bench may have left a rule)
      ours = await measureDaemon(lab, probe, 'ours', trials, warmup, log, { fw, samples });
    } finally {
      await fw.stop();
    }
    const floor = floorResult(samples, log);
    const knockd08 = await measureDaemon(lab, probe, 'knockd08', trials, warmup, log);
    const ratios = {
      knockdOverOursOpen: ratio(knockd08.openStats?.median, ours.openStats?.median),
      knockdOverOursClose: ratio(knockd08.closeStats?.median, ours.closeStats?.median),
      oursOverFloorOpen: ratio(ours.openStats?.median, floor.addVisibleStats?.median),
      oursOverFloorClose: ratio(ours.closeStats?.median, floor.removeVisibleStats?.median),
    };
    return {
      trials,
      warmup,
      pollIntervalMs: POLL_MS,
      ours,
      knockd08,
      floor,
      ratios,
      targets: {
        tenTimesFaster: (ratios.knockdOverOursOpen ?? 0) >= 10,
        withinFloor: ratios.oursOverFloorOpen !== null && ratios.oursOverFloorOpen <= 1.5,
      },
      seconds: Math.round((Date.now() - t0) / 100) / 10,
    };
  } finally {
    await probe.stop().catch(() => undefined);
    if (!opts.lab) await lab.stop();
  }
}

/** Table rows (without header) for the combined table: metric, ours, knockd 0.8, knockd/ours, floor, ours/floor. */
export function latencyRows(r: LatencyResult): string[][] {
  const pass = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  return [
    [
      'knock → open, ms',
      fmtSummary(r.ours.openStats),
      fmtSummary(r.knockd08.openStats),
      fmtRatio(r.ratios.knockdOverOursOpen),
      fmtSummary(r.floor.addVisibleStats),
      fmtRatio(r.ratios.oursOverFloorOpen, 2),
    ],
    [
      'knock → closed, ms',
      fmtSummary(r.ours.closeStats),
      fmtSummary(r.knockd08.closeStats),
      fmtRatio(r.ratios.knockdOverOursClose),
      fmtSummary(r.floor.removeVisibleStats),
      fmtRatio(r.ratios.oursOverFloorClose, 2),
    ],
    [
      '  D-Bus call alone (add / remove), ms',
      '',
      '',
      '',
      `${fmtSummary(r.floor.addCallStats)} / ${fmtSummary(r.floor.removeCallStats)}`,
      '',
    ],
    ['  failed trials', String(r.ours.failures), String(r.knockd08.failures), '', String(r.floor.failures), ''],
    [
      '  targets: ≥10× knockd (open) / ≤1.5× floor (open)',
      `${pass(r.targets.tenTimesFaster)} / ${pass(r.targets.withinFloor)}`,
      '',
      '',
      '',
      '',
    ],
  ];
}

export const LATENCY_HEADER = [
  'metric: median (min–max)',
  'ours',
  'knockd 0.8',
  'knockd/ours',
  'floor (D-Bus)',
  'ours/floor',
];

if (require.main === module) {
  {
    const quick = process.argv.includes('--quick');
    runLatencyBench({ quick }).then(
      (r) => {
        const file = writeResult('latency', { ...r, quick, node: process.version, date: new Date().toISOString() });
        process.stdout.write(
          `\nknock latency (${r.trials} trials each, ${r.seconds} s)\n${renderTable([LATENCY_HEADER, ...latencyRows(r)])}\n\n(${file})\n`,
        );
        process.exit(0);
      },
      (e: unknown) => {
        process.stderr.write(`latency bench failed: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      },
    );
  }
}
