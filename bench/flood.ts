/**
 * Flood resilience: a SYN flood from spoofed random sources to the first knock
 * port (hping3 --flood --rand-source -S -p 3333, as fast as it can push into
 * the veth) while a legitimate client knocks the full sequence about once a
 * second, for each daemon in turn (ours, then knockd 0.8 with the tutorial's
 * firewall-cmd commands).
 *
 *   node dist/bench/flood.js              # 20 s flood per daemon, then ours until >= 1 M sources
 *   node dist/bench/flood.js --quick      # 3 s per daemon, no 1 M phase
 *   node dist/bench/flood.js --ours-only  # skip knockd 0.8 (experiments; BENCH_OURS_ARGS adds our daemon's arguments)
 *   node dist/bench/flood.js --seconds 8  # another flood duration
 *   node dist/bench/flood.js --profile    # only ours, under node --cpu-prof: top functions by self time
 *
 * Per daemon: share of legitimate knocks whose port 22 opened within 1 s
 * (each followed by the close sequence; a port still open before the next
 * knock is closed over D-Bus and counted), flood packets sent (hping3's own
 * count; the server veth's rx_packets delta as a cross-check), how many of
 * them the daemon actually handled (its "Stage 1" log lines, ours counts the
 * rate-limited ones too), daemon CPU seconds (utime+stime from /proc of the
 * daemon's own pid, flood + drain) per million flood packets, RSS after.
 *
 * Safety: the flood's destination is the lab's server address on the lab's
 * veth; the lab has no default route in either namespace (checked), so the
 * server cannot answer the spoofed sources: every reply fails its route lookup.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../test/lab/lab';
import { DEFAULT_MAX_ATTEMPTS, Matcher, type DoorSpec } from '../src/matcher/matcher';
import { FramePipeline } from '../src/capture/pipeline';
import { IPPROTO_TCP, TH_SYN } from '../src/decode/types';
import { ipv4Frame } from './frames';
import { FirewalldAgent, Probe } from './agents';
import {
  CLOSE_PORTS,
  OPEN_PORTS,
  fmtSummary,
  renderTable,
  RESULTS_DIR,
  sleep,
  startBenchLab,
  summarize,
  writeResult,
  type Summary,
} from './common';
import { DAEMON_LABEL, startDaemon, startOurs, type DaemonHandle, type DaemonName } from './daemons';
import { type TreeSample } from './proc';

export interface LegitStats {
  /** Open sequences knocked. */
  attempts: number;
  /** Of those, port 22 opened within 1 s of the last knock. */
  openedWithin1s: number;
  share: number | null;
  /** knock → open of the successful ones, ms. */
  latency: Summary | null;
  /** Port found still open before an open knock (close missed or a late open): closed over D-Bus. */
  forcedCloses: number;
}

export interface FloodPhase {
  daemon: DaemonName;
  seconds: number;
  /** hping3's "N packets transmitted". */
  floodSent: number;
  /** Server veth rx_packets delta over the flood (flood + legit client + ARP). */
  vethRx: number;
  floodPps: number;
  /** Flood packets the daemon handled as knocks ("Stage 1" events), null when unknown. */
  handled: number | null;
  handledShare: number | null;
  legit: LegitStats;
  /** Daemon CPU over flood + drain, seconds. */
  cpuSec: number;
  cpuSecPerMillion: number | null;
  /** cpuSec per packet the daemon handled, µs. */
  cpuUsPerHandled: number | null;
  /** CPU of reaped children (knockd 0.8's firewall-cmd), seconds. */
  childCpuSec: number;
  /** How long the daemon stayed busy after the flood stopped (capped). */
  drainSec: number;
  drainCapped: boolean;
  rssBeforeMB: number;
  rssAfterMB: number;
  hwmMB: number;
  /** Ours: attempts in flight as last logged. */
  attemptsInFlight: number | null;
  /** Per daemon process (ours: the daemon, then its capture process): CPU over the phase and RSS after. */
  processes: { pid: number; cpuSec: number; rssMB: number; hwmMB: number }[];
  /**
   * Once a second from the flood's start: per process, CPU seconds used in
   * that second and RSS (MB). Shows, e.g., a daemon process that stops
   * getting work while another one's memory climbs.
   */
  timeline: { t: number; cpu: number[]; rssMB: number[] }[];
}

export interface MillionPhase {
  /** Flood packets sent over both ours' phases together (random sources: virtually all distinct). */
  sent: number;
  /** Of those, handled by the daemon (the rest were dropped before it saw them). */
  handled: number | null;
  /** handled >= 1 M within the time cap. */
  reached: boolean;
  seconds: number;
  rssAfterMB: number;
  /** Sum of each daemon process's peak RSS. */
  hwmMB: number;
  /** Per process (daemon, capture): RSS after, peak. */
  processes: { pid: number; rssMB: number; hwmMB: number }[];
  attemptsInFlight: number | null;
  limitMB: number;
  /** hwmMB < limitMB. */
  memoryOk: boolean;
}

/** The matcher alone (in-process, one core) fed the flood's packets: distinct sources, all on the first knock port. */
export interface MatcherFloodResult {
  maxAttempts: number;
  /** packets/s while the attempt table fills (first maxAttempts sources). */
  fillPps: number;
  /** packets/s once it is full (every new source evicts the oldest stage-1 attempt). */
  fullPps: number;
  fullPackets: number;
}

export interface FloodResult {
  seconds: number;
  matcher: MatcherFloodResult;
  ours: FloodPhase;
  /** null with --ours-only. */
  knockd08: FloodPhase | null;
  million: MillionPhase | null;
  totalSeconds: number;
}

const RSS_LIMIT_MB = 150;

/**
 * The per-packet path of the capture process (FramePipeline → Matcher, both
 * of the config's doors) without libpcap or IPC, on one reused frame whose
 * source address changes every packet: first until the table is full, then
 * for `fullMs` more. Isolates the matcher's cost under the flood from
 * everything around it.
 */
export function runMatcherFloodBench(fullMs: number): MatcherFloodResult {
  const door = (name: string, ports: number[], action: 'open' | 'close'): DoorSpec => ({
    name,
    sequence: ports.map((port) => ({ proto: IPPROTO_TCP, port })),
    seqTimeoutMs: 15_000,
    tcpFlags: { set: TH_SYN, clear: 0 },
    action,
  });
  const matcher = new Matcher(
    [door('openSSH', OPEN_PORTS, 'open'), door('closeSSH', CLOSE_PORTS, 'close')],
    () => undefined,
    { maxAttempts: DEFAULT_MAX_ATTEMPTS },
  );
  matcher.setLocalAddresses(['10.0.0.1']);
  const pipeline = new FramePipeline(matcher);
  const frame = ipv4Frame({ src: '11.0.0.0', dst: '10.0.0.1', dport: OPEN_PORTS[0] });
  let src = 0x0b000000;
  let now = 0;
  const feed = (n: number): void => {
    for (let i = 0; i < n; i++) {
      frame.writeUInt32BE(src++ >>> 0, 14 + 12);
      if ((src & 127) === 0) now += 1; // ~128 k packets/s of simulated time: nothing times out
      pipeline.onFrame('ETHERNET', frame, frame.length, now);
    }
  };
  let t = process.hrtime.bigint();
  feed(DEFAULT_MAX_ATTEMPTS);
  const fillPps = DEFAULT_MAX_ATTEMPTS / (Number(process.hrtime.bigint() - t) / 1e9);
  t = process.hrtime.bigint();
  const deadline = t + BigInt(fullMs) * 1_000_000n;
  let full = 0;
  while (process.hrtime.bigint() < deadline) {
    feed(1000);
    full += 1000;
  }
  const fullPps = full / (Number(process.hrtime.bigint() - t) / 1e9);
  return {
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    fillPps: Math.round(fillPps),
    fullPps: Math.round(fullPps),
    fullPackets: full,
  };
}
/** The extra flood for the 1 M phase stops after this long even if ours has not handled 1 M sources by then. */
const MILLION_CAP_MS = 60_000;

async function vethRx(lab: Lab): Promise<number> {
  const r = await lab.execIn('server', ['ip', '-s', '-j', 'link', 'show', 'dev', lab.serverIf]);
  const j = JSON.parse(r.stdout) as { stats64: { rx: { packets: number } } }[];
  return j[0].stats64.rx.packets;
}

/** Flood for `seconds` with hping3 in the client namespace; resolves hping3's count of packets sent. */
let floodSeq = 0;
async function flood(lab: Lab, seconds: number, tag: string): Promise<number> {
  const logFile = join(lab.tmpDir, `hping3-${++floodSeq}-${tag}.log`);
  // `timeout -s INT` ends it on time and makes hping3 print its statistics.
  // Pinned to the first core (with two or more), so the generator and the
  // kernel's receive path it drives (veth delivers in the sender's context)
  // never take every core from the daemon: the same split for both daemons.
  const pin = os.cpus().length >= 2 ? ['taskset', '-c', '0'] : [];
  const proc = lab.spawnIn(
    'client',
    [
      'timeout',
      '-s',
      'INT',
      '-k',
      '5',
      String(seconds),
      ...pin,
      'hping3',
      '--flood',
      '--rand-source',
      '-S',
      '-p',
      String(OPEN_PORTS[0]),
      lab.serverAddr,
    ],
    { logFile },
  );
  proc.ref();
  await new Promise<void>((r) => proc.once('exit', () => r()));
  const text = fs.readFileSync(logFile, 'utf8');
  const m = /(\d+) packets transmitted/.exec(text);
  if (!m) throw new Error(`hping3 printed no statistics:\n${text.slice(-2000)}`);
  return Number(m[1]);
}

/** Stage-1 events a daemon handled, from its log. */
function stage1Count(d: DaemonHandle): number | null {
  const log = d.log();
  const lines = (log.match(/: openSSH: Stage 1$/gm) ?? []).length;
  if (d.name === 'knockd08') return lines;
  let suppressed = 0;
  for (const m of log.matchAll(/(\d+) "Stage 1"(?: and \d+ stage-1 "sequence timeout")? line\(s\) suppressed/g))
    suppressed += Number(m[1]);
  return lines + suppressed;
}

function attemptsInFlight(d: DaemonHandle): number | null {
  if (d.name !== 'ours') return null;
  const all = [...d.log().matchAll(/(\d+) attempts in flight/g)];
  return all.length ? Number(all[all.length - 1][1]) : null;
}

/** The legitimate client: knock, expect :22 open within 1 s, knock close; about once a second until `until`. */
async function legitLoop(probe: Probe, fw: FirewalldAgent, until: number): Promise<LegitStats> {
  const lat: number[] = [];
  let attempts = 0;
  let forcedCloses = 0;
  while (Date.now() + 1500 < until) {
    const start = Date.now();
    // Closed before we knock? (A close that was missed, or a late open, would fake a success.)
    const pre = await probe.wait('open', 150);
    if (pre.t1 !== null) {
      forcedCloses++;
      await fw.clear();
    }
    attempts++;
    const o = await probe.knock(OPEN_PORTS, 'open', 1000);
    if (o.ms !== null) lat.push(o.ms);
    await probe.knock(CLOSE_PORTS, 'closed', 1500, { closedOnSilence: true, silenceMs: 300 });
    const rest = 1000 - (Date.now() - start);
    if (rest > 0) await sleep(rest);
  }
  return {
    attempts,
    openedWithin1s: lat.length,
    share: attempts ? Math.round((lat.length / attempts) * 1000) / 1000 : null,
    latency: summarize(lat),
    forcedCloses,
  };
}

/** Wait until the daemon stops burning CPU (two 250 ms windows under 10 ms each), at most capSec. */
async function drain(d: DaemonHandle, capSec: number): Promise<{ sec: number; capped: boolean }> {
  const t0 = Date.now();
  let prev = d.sample().cpuSec;
  let quiet = 0;
  while (Date.now() - t0 < capSec * 1000) {
    await sleep(250);
    const now = d.sample().cpuSec;
    quiet = now - prev < 0.01 ? quiet + 1 : 0;
    prev = now;
    if (quiet >= 2) return { sec: Math.round((Date.now() - t0) / 100) / 10, capped: false };
  }
  return { sec: capSec, capped: true };
}

async function floodPhase(
  lab: Lab,
  probe: Probe,
  fw: FirewalldAgent,
  name: DaemonName,
  seconds: number,
  log: (s: string) => void,
  existing?: DaemonHandle,
): Promise<{ phase: FloodPhase; daemon: DaemonHandle }> {
  await fw.clear();
  const d = existing ?? (await startDaemon(lab, name));
  await sleep(1000);
  const before: TreeSample = d.sample();
  const rx0 = await vethRx(lab);
  const until = Date.now() + seconds * 1000;
  const timeline: FloodPhase['timeline'] = [];
  let prev = before;
  const started = Date.now();
  const sampler = setInterval(() => {
    try {
      const now = d.sample();
      timeline.push({
        t: Math.round((Date.now() - started) / 100) / 10,
        cpu: now.parts.map(
          (p) => Math.round((p.cpuSec - (prev.parts.find((b) => b.pid === p.pid)?.cpuSec ?? 0)) * 100) / 100,
        ),
        rssMB: now.parts.map((p) => p.rssMB),
      });
      prev = now;
    } catch {
      /* a process went away: skip this second */
    }
  }, 1000);
  let sent: number;
  let legit: LegitStats;
  try {
    [sent, legit] = await Promise.all([flood(lab, seconds, `${name}-${seconds}`), legitLoop(probe, fw, until)]);
  } finally {
    clearInterval(sampler);
  }
  const rx1 = await vethRx(lab);
  const dr = await drain(d, 5);
  if (d.name === 'ours') await sleep(1200); // let the once-a-second "suppressed" line for the last second reach the log
  const after = d.sample();
  const handled = stage1Count(d);
  const cpuSec = Math.round((after.cpuSec - before.cpuSec) * 100) / 100;
  const phase: FloodPhase = {
    daemon: name,
    seconds,
    floodSent: sent,
    vethRx: rx1 - rx0,
    floodPps: Math.round(sent / seconds),
    handled,
    handledShare: handled !== null && sent ? Math.round((Math.min(handled, sent) / sent) * 1000) / 1000 : null,
    legit,
    cpuSec,
    cpuSecPerMillion: sent ? Math.round((cpuSec / (sent / 1e6)) * 100) / 100 : null,
    cpuUsPerHandled: handled ? Math.round((cpuSec / handled) * 1e7) / 10 : null,
    childCpuSec: Math.round((after.childCpuSec - before.childCpuSec) * 100) / 100,
    drainSec: dr.sec,
    drainCapped: dr.capped,
    rssBeforeMB: before.rssMB,
    rssAfterMB: after.rssMB,
    hwmMB: after.hwmMB,
    attemptsInFlight: attemptsInFlight(d),
    processes: after.parts.map((p) => ({
      pid: p.pid,
      cpuSec: Math.round((p.cpuSec - (before.parts.find((b) => b.pid === p.pid)?.cpuSec ?? 0)) * 100) / 100,
      rssMB: p.rssMB,
      hwmMB: p.hwmMB,
    })),
    timeline,
  };
  log(
    `  ${DAEMON_LABEL[name]}: sent ${sent} (${phase.floodPps} pps), handled ${String(handled)}, legit ${legit.openedWithin1s}/${legit.attempts} opened within 1 s, ` +
      `CPU ${cpuSec} s (${String(phase.cpuSecPerMillion)} s/M), RSS ${phase.rssAfterMB} MB (peak ${phase.hwmMB} MB)${dr.capped ? `, still busy ${dr.sec} s after the flood` : ''}`,
  );
  return { phase, daemon: d };
}

export async function runFloodBench(opts: {
  quick: boolean;
  lab?: Lab;
  seconds?: number;
  oursOnly?: boolean;
  log?: (s: string) => void;
}): Promise<FloodResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const t0 = Date.now();
  const seconds = opts.seconds ?? (opts.quick ? 3 : 20);
  const matcher = runMatcherFloodBench(opts.quick ? 500 : 3000);
  log(
    `flood: matcher alone, distinct sources: ${Math.round(matcher.fillPps / 1000)} k packets/s while the table fills, ${Math.round(matcher.fullPps / 1000)} k/s once full`,
  );
  const lab = opts.lab ?? (await startBenchLab());
  const probe = Probe.start(lab);
  const fw = await FirewalldAgent.start(lab);
  try {
    log(
      `flood: hping3 --flood --rand-source -S -p ${OPEN_PORTS[0]} for ${seconds} s per daemon, legitimate knock about once a second`,
    );
    const o = await floodPhase(lab, probe, fw, 'ours', seconds, log);
    let million: MillionPhase | null = null;
    try {
      if (!opts.quick) {
        // Keep flooding ours (no legit client) until it has seen >= 1 M distinct random sources, at most 60 s more.
        let sent = o.phase.floodSent;
        let secs = seconds;
        const extraStart = Date.now();
        while ((stage1Count(o.daemon) ?? sent) < 1_000_000 && Date.now() - extraStart < MILLION_CAP_MS) {
          const need = 1_000_000 - (stage1Count(o.daemon) ?? sent);
          const rate = Math.max(1, (o.phase.handled ?? o.phase.floodSent) / seconds);
          const left = Math.ceil((MILLION_CAP_MS - (Date.now() - extraStart)) / 1000);
          const s = Math.max(3, Math.min(30, left, Math.ceil(need / rate) + 2));
          sent += await flood(lab, s, `ours-million-${secs}`);
          secs += s;
          await sleep(1200);
        }
        const p = o.daemon.sample();
        const handled = stage1Count(o.daemon);
        million = {
          sent,
          handled,
          reached: (handled ?? 0) >= 1_000_000,
          seconds: secs,
          rssAfterMB: p.rssMB,
          hwmMB: p.hwmMB,
          processes: p.parts.map((x) => ({ pid: x.pid, rssMB: x.rssMB, hwmMB: x.hwmMB })),
          attemptsInFlight: attemptsInFlight(o.daemon),
          limitMB: RSS_LIMIT_MB,
          memoryOk: p.hwmMB < RSS_LIMIT_MB,
        };
        log(
          `  ours after ${String(handled)} handled / ${sent} sent random sources: RSS ${p.rssMB} MB, peak ${p.hwmMB} MB (limit ${RSS_LIMIT_MB} MB)`,
        );
      }
    } finally {
      await o.daemon.stop();
    }
    const k = opts.oursOnly ? undefined : await floodPhase(lab, probe, fw, 'knockd08', seconds, log);
    await k?.daemon.stop();
    return {
      seconds,
      matcher,
      ours: o.phase,
      knockd08: k?.phase ?? null,
      million,
      totalSeconds: Math.round((Date.now() - t0) / 100) / 10,
    };
  } finally {
    await probe.stop().catch(() => undefined);
    await fw.stop().catch(() => undefined);
    if (!opts.lab) await lab.stop();
  }
}

const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(1)} %`);
const num = (x: number | null, d = 0): string => (x === null ? 'n/a' : x.toFixed(d));
const ratioText = (a: number | null, b: number | null, d = 1): string =>
  a === null || b === null || a === 0 || b === 0 ? 'n/a' : `${(a / b).toFixed(d)}×`;

/** Rows for the combined table: metric, ours, knockd 0.8, knockd/ours. */
export function floodRows(r: FloodResult): string[][] {
  const o = r.ours;
  const k = r.knockd08;
  /** knockd 0.8's cell, or "skipped" (--ours-only). */
  const K = (f: (k: FloodPhase) => string): string => (k ? f(k) : 'skipped');
  const rows: string[][] = [
    [
      `flood: packets sent in ${r.seconds} s (pps)`,
      `${o.floodSent} (${o.floodPps})`,
      K((k) => `${k.floodSent} (${k.floodPps})`),
      '',
    ],
    [
      'flood: packets the daemon handled',
      `${num(o.handled)} (${pct(o.handledShare)})`,
      K((k) => `${num(k.handled)} (${pct(k.handledShare)})`),
      '',
    ],
    [
      'legit knocks opened within 1 s',
      `${o.legit.openedWithin1s}/${o.legit.attempts} (${pct(o.legit.share)})`,
      K((k) => `${k.legit.openedWithin1s}/${k.legit.attempts} (${pct(k.legit.share)})`),
      '',
    ],
    [
      '  their knock → open, ms',
      fmtSummary(o.legit.latency),
      K((k) => fmtSummary(k.legit.latency)),
      ratioText(k?.legit.latency?.median ?? null, o.legit.latency?.median ?? null),
    ],
    [
      'daemon CPU s per M flood packets',
      num(o.cpuSecPerMillion, 2),
      K((k) => num(k.cpuSecPerMillion, 2)),
      ratioText(k?.cpuSecPerMillion ?? null, o.cpuSecPerMillion),
    ],
    [
      '  daemon CPU µs per packet it handled',
      num(o.cpuUsPerHandled, 1),
      K((k) => num(k.cpuUsPerHandled, 1)),
      ratioText(k?.cpuUsPerHandled ?? null, o.cpuUsPerHandled),
    ],
    [
      '  daemon CPU s (flood + drain)',
      `${num(o.cpuSec, 2)} (+${o.drainSec} s)`,
      K((k) => `${num(k.cpuSec, 2)} (+${k.drainSec} s${k.drainCapped ? ', capped' : ''})`),
      '',
    ],
    ...(o.processes.length > 1
      ? [
          [
            '  ours per process: daemon / capture, CPU s',
            o.processes.map((x) => x.cpuSec.toFixed(2)).join(' / '),
            '',
            '',
          ],
        ]
      : []),
    [
      'RSS after flood, MB (peak)',
      `${o.rssAfterMB} (${o.hwmMB})`,
      K((k) => `${k.rssAfterMB} (${k.hwmMB})`),
      ratioText(k?.rssAfterMB ?? null, o.rssAfterMB, 2),
    ],
  ];
  if (r.million) {
    const m = r.million;
    rows.push([
      `ours after ≥1 M random sources: RSS MB (peak), limit ${m.limitMB}`,
      `${m.rssAfterMB} (${m.hwmMB}) ${m.memoryOk ? 'met' : 'MISSED'}`,
      '',
      '',
    ]);
    rows.push([
      '  per process: daemon / capture, MB (peak)',
      m.processes.map((x) => `${x.rssMB} (${x.hwmMB})`).join(' / '),
      '',
      '',
    ]);
    rows.push([
      `  sources sent / handled in ${m.seconds} s (1 M handled: ${m.reached ? 'yes' : 'NO'})`,
      `${m.sent} / ${num(m.handled)}`,
      '',
      '',
    ]);
    rows.push(['  attempts in flight (--max-attempts 100000)', num(m.attemptsInFlight), '', '']);
  }
  const k1 = (x: number): string => `${(x / 1000).toFixed(0)} k`;
  rows.push([
    'matcher alone, flood packets/s: table filling / full',
    `${k1(r.matcher.fillPps)} / ${k1(r.matcher.fullPps)}`,
    '',
    '',
  ]);
  return rows;
}

export const FLOOD_HEADER = ['flood', 'ours', 'knockd 0.8', 'knockd/ours'];

// ----- profiling --------------------------------------------------------------

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

/**
 * Self time per function (by name + location) from a V8 .cpuprofile;
 * percentages are of the busy time (everything but "(idle)").
 */
export function summarizeProfile(
  p: CpuProfile,
  top = 20,
): {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  entries: ProfileEntry[];
  byFile: { file: string; selfMs: number; selfPct: number }[];
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time since sample i-1; charge it to sample i-1's node (what DevTools does).
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  const fnAgg = new Map<string, ProfileEntry>();
  const fileAgg = new Map<string, number>();
  const short = (url: string): string =>
    url
      .replace(/^file:\/\//, '')
      .replace(/^.*\/node_modules\//, 'node_modules/')
      .replace(/^.*\/dist\//, 'dist/');
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    totalUs += us;
    const fn = n.callFrame.functionName || (n.callFrame.url ? '(anonymous)' : '(native)');
    if (fn === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = n.callFrame.url ? `${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : '';
    const k = `${fn}@${where}`;
    const e = fnAgg.get(k) ?? { fn, where, selfMs: 0, selfPct: 0 };
    e.selfMs += us / 1000;
    fnAgg.set(k, e);
    const file = n.callFrame.url ? short(n.callFrame.url) : fn.startsWith('(') ? fn : '(native)';
    fileAgg.set(file, (fileAgg.get(file) ?? 0) + us / 1000);
  }
  const busyMs = (totalUs - idleUs) / 1000;
  const round = (x: number): number => Math.round(x * 10) / 10;
  const entries = [...fnAgg.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top)
    .map((e) => ({ ...e, selfMs: round(e.selfMs), selfPct: round((e.selfMs / busyMs) * 100) }));
  const byFile = [...fileAgg.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([file, ms]) => ({ file, selfMs: round(ms), selfPct: round((ms / busyMs) * 100) }));
  return { totalMs: round(totalUs / 1000), idleMs: round(idleUs / 1000), busyMs: round(busyMs), entries, byFile };
}

export interface ProfileSummary {
  file: string;
  pid: number;
  role: string;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  entries: ProfileEntry[];
  byFile: { file: string; selfMs: number; selfPct: number }[];
}

/**
 * Ours under `node --cpu-prof` through one flood (with the legit client),
 * twice. fork() passes --cpu-prof on to the capture process, but node writes
 * a profile only on a normal exit, and the daemon's shutdown SIGTERMs its
 * capture process. So: pass 'daemon' stops the daemon with SIGTERM (its
 * profile is written, the capture process's is lost); pass 'capture' SIGKILLs
 * the daemon instead, the capture process sees its IPC channel close and
 * exits normally, writing the per-packet hot path's profile.
 */
export async function runFloodProfile(opts: {
  seconds: number;
  log?: (s: string) => void;
}): Promise<{ phases: FloodPhase[]; profiles: ProfileSummary[] }> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const lab = await startBenchLab();
  const probe = Probe.start(lab);
  const fw = await FirewalldAgent.start(lab);
  const phases: FloodPhase[] = [];
  const profiles: ProfileSummary[] = [];
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  try {
    for (const want of ['capture', 'daemon'] as const) {
      const dir = join(lab.tmpDir, `cpuprof-${want}`);
      fs.mkdirSync(dir, { recursive: true });
      log(`profile pass for the ${want} process`);
      const d = await startOurs(lab, { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
      const { phase } = await floodPhase(lab, probe, fw, 'ours', opts.seconds, log, d);
      phases.push(phase);
      const pids = d.sample().pids;
      if (want === 'daemon') {
        await d.stop();
      } else {
        d.proc.ref();
        const exited = new Promise<void>((r) => d.proc.once('exit', () => r()));
        process.kill(d.pid, 'SIGKILL');
        await exited;
        // The capture process exits on its own once it notices (it may still be draining its ring).
        await lab
          .waitFor(async () => pids.slice(1).every((p) => !fs.existsSync(`/proc/${p}`)), 20_000, 100)
          .catch(() => undefined);
      }
      await sleep(500);
      for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
        // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
        const pid = Number(f.split('.')[3]);
        const role = pid === d.pid ? 'daemon' : pids.includes(pid) ? 'capture' : `pid${pid}`;
        if (role !== want) continue;
        const kept = join(RESULTS_DIR, `flood-${role}.cpuprofile`);
        fs.copyFileSync(join(dir, f), kept);
        profiles.push({
          file: kept,
          pid,
          role,
          ...summarizeProfile(JSON.parse(fs.readFileSync(kept, 'utf8')) as CpuProfile),
        });
      }
      if (!profiles.some((p) => p.role === want)) log(`  no profile from the ${want} process`);
    }
    return { phases, profiles };
  } finally {
    await probe.stop().catch(() => undefined);
    await fw.stop().catch(() => undefined);
    await lab.stop();
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const done = (text: string): void => {
    process.stdout.write(text);
    process.exit(0);
  };
  const fail = (e: unknown): void => {
    process.stderr.write(`flood bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  };
  if (process.argv.includes('--profile')) {
    runFloodProfile({ seconds: quick ? 3 : 10 }).then((r) => {
      const file = writeResult('flood-profile', { ...r, node: process.version, date: new Date().toISOString() });
      let text = '';
      for (const p of r.phases) {
        text +=
          `\nour daemon under the flood with --cpu-prof: sent ${p.floodSent}, handled ${String(p.handled)}, legit ${p.legit.openedWithin1s}/${p.legit.attempts}, ` +
          `CPU daemon / capture ${p.processes.map((x) => x.cpuSec.toFixed(2)).join(' / ')} s`;
      }
      text += '\n';
      for (const s of r.profiles) {
        text +=
          `\n${s.role} (pid ${s.pid}): ${s.totalMs} ms sampled, ${s.busyMs} ms busy (${s.file}); % of busy time\n` +
          `${renderTable([['function', 'where', 'self ms', 'self %'], ...s.entries.map((e) => [e.fn, e.where, e.selfMs.toFixed(1), e.selfPct.toFixed(1)])])}\n\n` +
          `${renderTable([['by file', 'self ms', 'self %'], ...s.byFile.map((e) => [e.file, e.selfMs.toFixed(1), e.selfPct.toFixed(1)])])}\n`;
      }
      done(`${text}\n(${file})\n`);
    }, fail);
  } else {
    const i = process.argv.indexOf('--seconds');
    const seconds = i > 0 ? Number(process.argv[i + 1]) : undefined;
    runFloodBench({ quick, oursOnly: process.argv.includes('--ours-only'), ...(seconds ? { seconds } : {}) }).then(
      (r) => {
        const file = writeResult('flood', { ...r, quick, node: process.version, date: new Date().toISOString() });
        done(
          `\nflood resilience (${r.totalSeconds} s)\n${renderTable([FLOOD_HEADER, ...floodRows(r)])}\n\n(${file})\n`,
        );
      },
      fail,
    );
  }
}
