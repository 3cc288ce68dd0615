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
 * This file also holds the helpers the other lab benchmarks share
 * (flood.ts, idle.ts, run.ts): the bench lab, starting both daemons,
 * /proc sampling, the probe and D-Bus agent, statistics and tables.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as dbus from 'dbus-next';
import { requireRoot, startLab, type Lab, type LabNs } from '../test/lab/lab';
import { DEFAULT_CONF, KNOCKD_BIN, REPO, sshRule } from '../test/e2e/helpers';

// ===========================================================================
// Shared helpers (also used by flood.ts, idle.ts, run.ts)
// ===========================================================================

export const RESULTS_DIR = join(REPO, 'bench', 'results');
export const OPEN_PORTS = [3333, 4444, 5555];
export const CLOSE_PORTS = [6666, 7777, 8888];
export const DEBIAN_KNOCKD = '/usr/sbin/knockd';
/** Interval between the probe's connect attempts to port 22. */
export const POLL_MS = 2;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function writeResult(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  p90: number;
  mean: number;
}

/** Median (mean of the two middle values for even n), min, max, p90 (nearest rank), mean; null for no samples. */
export function summarize(xs: readonly number[]): Summary | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const mid = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    n,
    median: r(mid),
    min: r(s[0]!),
    max: r(s[n - 1]!),
    p90: r(s[Math.min(n - 1, Math.ceil(0.9 * n) - 1)]!),
    mean: r(s.reduce((a, b) => a + b, 0) / n),
  };
}

/** "12.3 (9.8–20.1)": median and min–max with a unit-free number format. */
export function fmtSummary(s: Summary | null, digits = 1): string {
  if (!s) return 'n/a';
  const f = (x: number): string => x.toFixed(digits);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

export function fmtRatio(x: number | null, digits = 1): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(digits)}×`;
}

export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}

/** Plain-text table; the first row is the header. */
export function renderTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  const line = (row: string[]): string =>
    row
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

export const nsName = (lab: Lab, ns: LabNs): string => (ns === 'server' ? lab.serverNs : lab.clientNs);

/** The one-connection-at-a-time stand-in for sshd on :22 (sshd's fork per connection would load the machine). */
const LISTENER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('error', () => {}); s.destroy(); });
srv.on('error', (e) => { console.error(e); process.exit(1); });
srv.listen({ port: 22, host: '0.0.0.0', backlog: 4096 }, () => console.log('listening'));
`;

/**
 * A lab for benchmarks: IPv4 only, a trivial TCP listener on :22 instead of
 * sshd, ICMP rate limits lifted in the server namespace (per-namespace
 * sysctls) so every rejected probe gets its admin-prohibited answer at once,
 * and a check that neither namespace has a default route (so nothing, not
 * even a reply to a spoofed flood source, can leave the lab).
 */
export async function startBenchLab(): Promise<Lab> {
  requireRoot();
  const lab = await startLab({ ipv6: false, sshd: false });
  try {
    for (const ns of ['server', 'client'] as const) {
      for (const fam of ['-4', '-6']) {
        const r = await lab.execIn(ns, ['ip', fam, 'route', 'show', 'default']);
        if (r.code !== 0 || r.stdout.trim() !== '')
          throw new Error(`bench lab: unexpected default route in the ${ns} namespace: ${r.stdout}${r.stderr}`);
      }
    }
    const r = await lab.execIn('server', [
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.icmp_ratelimit=0',
      'net.ipv4.icmp_msgs_per_sec=10000000',
      'net.ipv4.icmp_msgs_burst=10000000',
    ]);
    if (r.code !== 0) throw new Error(`sysctl in the server namespace failed: ${r.stderr}`);
    lab.spawnIn('server', [process.execPath, '-e', LISTENER], { logFile: join(lab.tmpDir, 'listener22.log') });
    await lab.waitFor(
      async () => (await lab.execIn('server', ['nc', '-z', '-w1', '127.0.0.1', '22'], { timeoutMs: 3000 })).code === 0,
      10_000,
      50,
    );
  } catch (e) {
    await lab.stop().catch(() => undefined);
    throw e;
  }
  return lab;
}

// ----- /proc sampling -------------------------------------------------------

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export interface ProcSample {
  /** utime + stime of the process itself, seconds. */
  cpuSec: number;
  /** cutime + cstime: children it has waited for (knockd 0.8's firewall-cmd), seconds. */
  childCpuSec: number;
  rssMB: number;
  /** Peak RSS so far. */
  hwmMB: number;
  /** Proportional set size (shared pages split among the processes mapping them): what the process really costs. */
  pssMB: number;
}

export function procSample(pid: number): ProcSample {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3; utime..cstime are 14..17.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const t = ticksPerSecond();
  const n = (i: number): number => Number(f[i - 3]);
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return {
    cpuSec: (n(14) + n(15)) / t,
    childCpuSec: (n(16) + n(17)) / t,
    rssMB: Math.round((kb('VmRSS') / 1024) * 10) / 10,
    hwmMB: Math.round((kb('VmHWM') / 1024) * 10) / 10,
    pssMB: Math.round((pssKB(pid) / 1024) * 10) / 10,
  };
}

/** Pss of /proc/<pid>/smaps_rollup in kB (NaN if unreadable). */
function pssKB(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * `root` and its live descendants that run the same executable: the daemon's
 * own processes (ours: the daemon and its capture process, both node), not
 * the commands it runs (knockd 0.8's sh + firewall-cmd, whose CPU shows up in
 * childCpuSec once reaped).
 */
export function daemonPids(root: number): number[] {
  const exe = fs.readlinkSync(`/proc/${root}/exe`);
  const children = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid);
      if (list) list.push(Number(e));
      else children.set(ppid, [Number(e)]);
    } catch {
      /* gone */
    }
  }
  const out = [root];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    try {
      if (fs.readlinkSync(`/proc/${pid}/exe`) !== exe) continue;
    } catch {
      continue;
    }
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

export type TreeSample = ProcSample & { pids: number[]; parts: (ProcSample & { pid: number })[] };

/** Sum of procSample over daemonPids(root) (hwmMB: sum of each process's peak); `parts` per process, root first. */
export function treeSample(root: number): TreeSample {
  const pids = daemonPids(root);
  const acc = {
    cpuSec: 0,
    childCpuSec: 0,
    rssMB: 0,
    hwmMB: 0,
    pssMB: 0,
    pids: [] as number[],
    parts: [] as (ProcSample & { pid: number })[],
  };
  for (const pid of pids) {
    let p: ProcSample;
    try {
      p = procSample(pid);
    } catch {
      continue;
    }
    acc.cpuSec += p.cpuSec;
    acc.childCpuSec += p.childCpuSec;
    acc.rssMB += p.rssMB;
    acc.hwmMB += p.hwmMB;
    acc.pssMB += p.pssMB;
    acc.pids.push(pid);
    acc.parts.push({ pid, ...p });
  }
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return {
    ...acc,
    cpuSec: Math.round(acc.cpuSec * 100) / 100,
    childCpuSec: Math.round(acc.childCpuSec * 100) / 100,
    rssMB: r1(acc.rssMB),
    hwmMB: r1(acc.hwmMB),
    pssMB: r1(acc.pssMB),
  };
}

/**
 * Prove that `pid` is the daemon itself, not an `ip netns exec` or `env`
 * wrapper (both exec, so the spawned pid is the daemon's): its executable is
 * `exe` and it lives in the lab's server network namespace.
 */
export function verifyDaemonPid(lab: Lab, pid: number, exe: string): void {
  const real = fs.readlinkSync(`/proc/${pid}/exe`);
  if (real !== fs.realpathSync(exe)) throw new Error(`pid ${pid} runs ${real}, expected ${exe}`);
  const nsIno = fs.statSync(`/run/netns/${lab.serverNs}`).ino;
  const procNs = fs.readlinkSync(`/proc/${pid}/ns/net`); // "net:[4026532xxx]"
  if (procNs !== `net:[${nsIno}]`)
    throw new Error(`pid ${pid} is in ${procNs}, not the server namespace (inode ${nsIno})`);
}

// ----- the two daemons ------------------------------------------------------

export type DaemonName = 'ours' | 'knockd08';
export const DAEMON_LABEL: Record<DaemonName, string> = { ours: 'ours', knockd08: 'knockd 0.8 + firewall-cmd' };

export interface DaemonHandle {
  name: DaemonName;
  /** The daemon's own pid (verified). */
  pid: number;
  logFile: string;
  proc: ChildProcess;
  log(): string;
  /** CPU and memory of the daemon's own processes (see treeSample). */
  sample(): TreeSample;
  stop(): Promise<void>;
}

let daemonSeq = 0;

async function stopChild(proc: ChildProcess, graceMs = 10_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.ref(); // the lab unrefs its children: keep the loop alive while we wait for this one
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

function handle(name: DaemonName, proc: ChildProcess, logFile: string, exe: string, lab: Lab): DaemonHandle {
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`${name}: spawn failed`);
  verifyDaemonPid(lab, pid, exe);
  return {
    name,
    pid,
    logFile,
    proc,
    log: () => {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    sample: () => treeSample(pid),
    stop: () => stopChild(proc),
  };
}

let stateDirFlag: boolean | undefined;
/** Whether bin/knockd takes --state-dir (then each daemon gets one in the lab's temp dir, never /run/knockd). */
function supportsStateDir(): boolean {
  stateDirFlag ??= execFileSync(process.execPath, [KNOCKD_BIN, '--help'], { encoding: 'utf8' }).includes('--state-dir');
  return stateDirFlag;
}

async function waitForText(
  lab: Lab,
  proc: ChildProcess,
  files: string[],
  re: RegExp,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const read = (): string => files.map((f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '')).join('\n');
  try {
    await lab.waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`${what} exited (${String(proc.exitCode ?? proc.signalCode)})`);
        return re.test(read());
      },
      timeoutMs,
      50,
    );
  } catch (e) {
    throw new Error(`${what} did not start: ${(e as Error).message}\n--- output ---\n${read().slice(-3000)}`);
  }
}

/**
 * Our daemon (bin/knockd) in the server namespace with the e2e tests' config
 * (the same doors as the tutorial, as firewalld_* settings). `nodeArgs` go
 * before the script (e.g. --cpu-prof), `args` after ours.
 */
export async function startOurs(
  lab: Lab,
  opts: { nodeArgs?: string[]; args?: string[]; conf?: string } = {},
): Promise<DaemonHandle> {
  const n = ++daemonSeq;
  const confFile = join(lab.tmpDir, `ours-${n}.conf`);
  const logFile = join(lab.tmpDir, `ours-${n}.log`);
  const outFile = join(lab.tmpDir, `ours-${n}.out`);
  fs.writeFileSync(confFile, opts.conf ?? DEFAULT_CONF());
  const state = supportsStateDir() ? ['--state-dir', join(lab.tmpDir, `ours-${n}-state`)] : [];
  const argv = [
    process.execPath,
    ...(opts.nodeArgs ?? []),
    KNOCKD_BIN,
    '-i',
    lab.serverIf,
    '-c',
    confFile,
    '-g',
    logFile,
    ...state,
    ...(opts.args ?? []),
  ];
  const proc = lab.spawnIn('server', argv, { logFile: outFile });
  await waitForText(lab, proc, [logFile, outFile], /listening on/, 'our knockd');
  return handle('ours', proc, logFile, process.execPath, lab);
}

/**
 * knockd 0.8's config as in the CentOS tutorial: [openSSH]/[closeSSH] run
 * firewall-cmd to add/remove a rich rule for %IP%.
 */
export function knockd08Conf(logFile: string): string {
  const rule = 'rule family="ipv4" source address="%IP%" service name="ssh" accept';
  return `[options]
    logfile = ${logFile}

[openSSH]
    sequence    = ${OPEN_PORTS.join(',')}
    seq_timeout = 15
    tcpflags    = syn
    command     = /usr/bin/firewall-cmd --zone=public --add-rich-rule="${rule}"

[closeSSH]
    sequence    = ${CLOSE_PORTS.join(',')}
    seq_timeout = 15
    tcpflags    = syn
    command     = /usr/bin/firewall-cmd --zone=public --remove-rich-rule="${rule}"
`;
}

/** Debian's knockd 0.8 (no -v: verbose mode prints every packet) in the server namespace. */
export async function startKnockd08(lab: Lab): Promise<DaemonHandle> {
  const n = ++daemonSeq;
  const confFile = join(lab.tmpDir, `knockd08-${n}.conf`);
  const logFile = join(lab.tmpDir, `knockd08-${n}.log`);
  const outFile = join(lab.tmpDir, `knockd08-${n}.out`);
  fs.writeFileSync(confFile, knockd08Conf(logFile));
  const proc = lab.spawnIn(
    'server',
    [DEBIAN_KNOCKD, '-i', lab.serverIf, '-c', confFile, '-p', join(lab.tmpDir, `knockd08-${n}.pid`)],
    { logFile: outFile },
  );
  await waitForText(lab, proc, [logFile, outFile], /listening on/, "Debian's knockd 0.8");
  return handle('knockd08', proc, logFile, DEBIAN_KNOCKD, lab);
}

export function startDaemon(lab: Lab, name: DaemonName): Promise<DaemonHandle> {
  return name === 'ours' ? startOurs(lab, { args: oursArgsFromEnv() }) : startKnockd08(lab);
}

/** Extra command-line arguments for our daemon in every benchmark, for experiments: `BENCH_OURS_ARGS="--capture-buffer 16"`. */
export function oursArgsFromEnv(): string[] {
  return (process.env.BENCH_OURS_ARGS ?? '').split(/\s+/).filter(Boolean);
}

// ----- JSON-lines helper processes ------------------------------------------

let rtPrefix: string[] | undefined;
/**
 * `chrt -f 10` when real-time scheduling is allowed here: the probe and the
 * D-Bus agent then run the moment they are woken, so their timestamps are not
 * delayed by the very processes they time (on two cores the daemon, dbus and
 * firewalld wake up together). They sleep between events, so this starves
 * nothing. Empty (normal scheduling) where chrt is missing or refused.
 */
export function realtimePrefix(): string[] {
  if (rtPrefix === undefined) {
    try {
      execFileSync('chrt', ['-f', '10', 'true'], { stdio: 'ignore' });
      rtPrefix = ['chrt', '-f', '10'];
    } catch {
      rtPrefix = [];
    }
  }
  return rtPrefix;
}

/**
 * A node process in a lab namespace driven over stdin/stdout with JSON lines
 * (`{id, ...}` in, `{id, ...}` out). Started with `ip netns exec` (which
 * execs), in its own process group; stop() ends it, and the lab's stop()
 * sweeps the namespace in any case.
 */
export class NsAgent {
  private readonly child: ChildProcess;
  private readonly pending = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private exited = false;

  constructor(lab: Lab, ns: LabNs, mode: '--probe' | '--dbus', logFile: string) {
    const fd = fs.openSync(logFile, 'a');
    try {
      this.child = spawn(
        'ip',
        ['netns', 'exec', nsName(lab, ns), ...realtimePrefix(), process.execPath, __filename, mode],
        {
          env: lab.env,
          stdio: ['pipe', 'pipe', fd],
          detached: true,
        },
      );
    } finally {
      fs.closeSync(fd);
    }
    onJsonLines(this.child.stdout!, (msg) => {
      const p = this.pending.get(Number(msg.id));
      if (!p) return;
      this.pending.delete(Number(msg.id));
      if (typeof msg.error === 'string') p.reject(new Error(msg.error));
      else p.resolve(msg);
    });
    this.child.on('exit', (code, sig) => {
      this.exited = true;
      for (const p of this.pending.values())
        p.reject(new Error(`${mode} agent exited (${String(code ?? sig)}); see ${logFile}`));
      this.pending.clear();
    });
    this.child.stdin!.on('error', () => undefined);
  }

  request<T = Record<string, unknown>>(msg: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error('agent has exited'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent request ${JSON.stringify(msg)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin!.write(`${JSON.stringify({ ...msg, id })}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
  }
}

/** Result of a probe knock/wait: absolute CLOCK_MONOTONIC times in ns (as strings), ms = t1 - t0. */
export interface ProbeResult {
  /** Right after the last knock (or when waiting began). */
  t0: string;
  /** First connect that succeeded (open) / was refused (closed); null on timeout. */
  t1: string | null;
  ms: number | null;
  how: string;
  attempts: number;
}

export type Want = 'open' | 'closed' | 'none';

/** The client-side probe: knocks and port-22 polling from the client namespace. */
export class Probe {
  constructor(
    private readonly agent: NsAgent,
    private readonly host: string,
  ) {}

  static start(lab: Lab): Probe {
    return new Probe(new NsAgent(lab, 'client', '--probe', join(lab.tmpDir, 'bench-probe.log')), lab.serverAddr);
  }

  /**
   * Knock `ports`, then poll :22 every POLL_MS until it is `want`
   * (closedOnSilence: a connect unanswered for silenceMs counts as closed).
   */
  knock(
    ports: number[],
    want: Want,
    timeoutMs: number,
    extra: { closedOnSilence?: boolean; silenceMs?: number } = {},
  ): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'knock', host: this.host, ports, want, timeoutMs, intervalMs: POLL_MS, ...extra },
      timeoutMs + 10_000,
    );
  }

  /** Send one UDP datagram (an SPA packet, as hex) to `port`, then poll :22 until it is `want`; t0 just before the send. */
  spa(payloadHex: string, port: number, want: Want, timeoutMs: number): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'spa', host: this.host, payload: payloadHex, port, want, timeoutMs, intervalMs: POLL_MS },
      timeoutMs + 10_000,
    );
  }

  /** Poll :22 from now on until it is `want`. */
  wait(
    want: Want,
    timeoutMs: number,
    extra: { closedOnSilence?: boolean; silenceMs?: number } = {},
  ): Promise<ProbeResult> {
    return this.agent.request<ProbeResult>(
      { op: 'knock', host: this.host, ports: [], want, timeoutMs, intervalMs: POLL_MS, ...extra },
      timeoutMs + 10_000,
    );
  }

  stop(): Promise<void> {
    return this.agent.stop();
  }
}

/** firewalld over D-Bus from the server namespace: the latency floor, and cleanup for the flood bench. */
export class FirewalldAgent {
  constructor(private readonly agent: NsAgent) {}

  static async start(lab: Lab): Promise<FirewalldAgent> {
    const a = new FirewalldAgent(new NsAgent(lab, 'server', '--dbus', join(lab.tmpDir, 'bench-dbus.log')));
    await a.agent.request({ op: 'ping' }); // connects and warms up the bus connection
    return a;
  }

  /** addRichRule(public, rule, 0): t0 before the call, t1 on the reply (ns strings). */
  add(rule: string): Promise<{ t0: string; t1: string }> {
    return this.agent.request({ op: 'add', rule });
  }

  remove(rule: string): Promise<{ t0: string; t1: string }> {
    return this.agent.request({ op: 'remove', rule });
  }

  /** Remove every rich rule of the public zone; resolves how many there were. */
  async clear(): Promise<number> {
    const r = await this.agent.request<{ removed: number }>({ op: 'clear' });
    return r.removed;
  }

  stop(): Promise<void> {
    return this.agent.stop();
  }
}

export const nsDiffMs = (t1: string, t0: string): number => Number(BigInt(t1) - BigInt(t0)) / 1e6;

/** Each line of `input` parsed as a JSON object (both ends of the agents' pipe); lines that are not JSON are skipped. */
function onJsonLines(
  input: NodeJS.ReadableStream,
  fn: (msg: Record<string, unknown>) => void,
): ReturnType<typeof createInterface> {
  const rl = createInterface({ input });
  rl.on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    fn(msg);
  });
  return rl;
}

// ----- agent bodies (run in the namespaces) ---------------------------------

type Reply = (msg: Record<string, unknown>) => void;

function serveLines(handler: (msg: Record<string, unknown>, reply: Reply) => Promise<void>): void {
  const reply: Reply = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  onJsonLines(process.stdin, (msg) => {
    handler(msg, reply).catch((e: unknown) => reply({ id: msg.id, error: e instanceof Error ? e.message : String(e) }));
  }).on('close', () => process.exit(0));
}

const noop = (): void => undefined;
const REFUSED = new Set(['EHOSTUNREACH', 'ECONNREFUSED', 'ENETUNREACH', 'EACCES', 'EPERM']);

/**
 * Send one SYN per port (connect, destroyed once the SYN is out), in order, no
 * delay: knock 0.8 without -d. Resolves the time just before the last SYN was
 * handed to the kernel (or now, for no ports).
 */
async function sendKnocks(host: string, ports: number[]): Promise<bigint> {
  let sent = process.hrtime.bigint();
  for (const port of ports) {
    // net.connect() to an IP literal queues connect(2) with process.nextTick;
    // this tick is queued first, so it runs immediately before it. (Stamping
    // after the syscall is wrong on a busy machine: the SYN wakes the daemon
    // inside connect(2) and this process can be preempted for milliseconds
    // before it gets to stamp anything.)
    process.nextTick(() => (sent = process.hrtime.bigint()));
    const s = net.connect({ host, port });
    s.on('error', noop);
    await new Promise<void>((r) => setImmediate(r));
    s.destroy();
  }
  return sent;
}

/** One UDP datagram; resolves the time just before it was handed to the kernel. */
async function sendDatagram(host: string, port: number, payload: Buffer): Promise<bigint> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, r));
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) =>
    sock.send(payload, port, host, (err) => (err ? reject(err) : resolve())),
  );
  sock.close();
  return t0;
}

/** Start a connect to host:22 every intervalMs (overlapping, at most 128 in flight, each given up after 1 s). */
function pollPort22(
  host: string,
  want: Want,
  timeoutMs: number,
  intervalMs: number,
  closedOnSilence: boolean,
  silenceMs: number,
): Promise<{ t1: bigint | null; how: string; attempts: number }> {
  return new Promise((resolve) => {
    if (want === 'none') {
      resolve({ t1: process.hrtime.bigint(), how: 'none', attempts: 0 });
      return;
    }
    const live = new Set<net.Socket>();
    let done = false;
    let attempts = 0;
    const finish = (t1: bigint | null, how: string): void => {
      if (done) return;
      done = true;
      clearInterval(iv);
      clearTimeout(limit);
      for (const s of live) s.destroy();
      resolve({ t1, how, attempts });
    };
    const attempt = (): void => {
      if (done || live.size >= 128) return;
      attempts++;
      const started = process.hrtime.bigint();
      const s = net.connect({ host, port: 22 });
      live.add(s);
      const giveUp = setTimeout(
        () => {
          live.delete(s);
          s.destroy();
          // Unanswered SYN: with the flood filling queues, the reject may be lost too.
          if (closedOnSilence && want === 'closed') finish(started + BigInt(Math.round(silenceMs * 1e6)), 'silence');
        },
        closedOnSilence ? silenceMs : 1000,
      );
      s.once('connect', () => {
        const t = process.hrtime.bigint();
        clearTimeout(giveUp);
        live.delete(s);
        s.on('error', noop);
        s.resetAndDestroy(); // RST: no TIME_WAIT pile-up over thousands of probes
        if (want === 'open') finish(t, 'connect');
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        const t = process.hrtime.bigint();
        s.on('error', noop);
        clearTimeout(giveUp);
        live.delete(s);
        if (want === 'closed' && REFUSED.has(e.code ?? '')) finish(t, e.code ?? 'error');
      });
    };
    const iv = setInterval(attempt, intervalMs);
    const limit = setTimeout(() => finish(null, 'timeout'), timeoutMs);
    attempt();
  });
}

function runProbe(): void {
  serveLines(async (msg, reply) => {
    if (msg.op !== 'knock' && msg.op !== 'spa') throw new Error(`unknown op ${String(msg.op)}`);
    const host = String(msg.host);
    const ports = (msg.ports as number[]) ?? [];
    const t0 =
      msg.op === 'spa'
        ? await sendDatagram(host, Number(msg.port), Buffer.from(String(msg.payload), 'hex'))
        : await sendKnocks(host, ports);
    const r = await pollPort22(
      host,
      msg.want as Want,
      Number(msg.timeoutMs),
      Number(msg.intervalMs ?? POLL_MS),
      msg.closedOnSilence === true,
      Number(msg.silenceMs ?? 300),
    );
    reply({
      id: msg.id,
      t0: t0.toString(),
      t1: r.t1 === null ? null : r.t1.toString(),
      ms: r.t1 === null ? null : Number(r.t1 - t0) / 1e6,
      how: r.how,
      attempts: r.attempts,
    });
  });
}

function runDbusAgent(): void {
  const bus = dbus.systemBus();
  const call = (iface: string, member: string, signature: string, body: unknown[]): Promise<dbus.Message | null> =>
    bus.call(
      new dbus.Message({
        destination: 'org.fedoraproject.FirewallD1',
        path: '/org/fedoraproject/FirewallD1',
        interface: iface,
        member,
        signature,
        body,
      }),
    );
  const ZONE = 'org.fedoraproject.FirewallD1.zone';
  serveLines(async (msg, reply) => {
    switch (msg.op) {
      case 'ping': {
        await call('org.fedoraproject.FirewallD1', 'getDefaultZone', '', []);
        reply({ id: msg.id });
        return;
      }
      case 'add':
      case 'remove': {
        const t0 = process.hrtime.bigint();
        if (msg.op === 'add') await call(ZONE, 'addRichRule', 'ssi', ['public', String(msg.rule), 0]);
        else await call(ZONE, 'removeRichRule', 'ss', ['public', String(msg.rule)]);
        const t1 = process.hrtime.bigint();
        reply({ id: msg.id, t0: t0.toString(), t1: t1.toString() });
        return;
      }
      case 'clear': {
        const rules = ((await call(ZONE, 'getRichRules', 's', ['public']))?.body[0] ?? []) as string[];
        for (const r of rules) await call(ZONE, 'removeRichRule', 'ss', ['public', r]).catch(noop);
        reply({ id: msg.id, removed: rules.length });
        return;
      }
      default:
        throw new Error(`unknown op ${String(msg.op)}`);
    }
  });
}

// ===========================================================================
// The latency benchmark
// ===========================================================================

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
  const mode = process.argv[2];
  if (mode === '--probe') runProbe();
  else if (mode === '--dbus') runDbusAgent();
  else {
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
