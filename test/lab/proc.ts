/**
 * Processes of a lab: small helpers (run a command, kill a process group,
 * wait for a condition) and `Procs`, which starts every long-running process
 * of one lab in a network namespace, in a process group of its own with its
 * output in a log file, and kills them all at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { ExecOptions, ExecResult } from './types';

export const IP = 'ip';
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
export const KILL_GRACE_MS = 2_000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function errCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = e.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** True if a process with this pid exists (EPERM still means "exists"). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM';
  }
}

/** Send a signal to a whole process group; ignore "no such process". */
export function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // Group already gone (ESRCH) – nothing to do.
  }
}

/** Last `maxLines` lines of a file, or a note that it could not be read. */
export function tailFile(file: string, maxLines = 40): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    return lines.slice(-maxLines).join('\n');
  } catch (e) {
    return `<cannot read ${file}: ${errMsg(e)}>`;
  }
}

/**
 * Run a command (no shell), collect output. Never rejects on non-zero exit;
 * rejects only if the executable cannot be spawned at all. The command runs in
 * its own process group so a timeout kills its descendants as well.
 */
export function runCmd(
  argv: string[],
  opts: ExecOptions & { env?: NodeJS.ProcessEnv; track?: Set<ChildProcess> } = {},
): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('runCmd: empty argv'));
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      detached: true,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    opts.track?.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin?.on('error', () => {
      /* EPIPE when the command does not read its input – irrelevant */
    });
    child.stdin?.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      opts.track?.delete(child);
      reject(new Error(`cannot run ${argv.join(' ')}: ${errMsg(e)}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.track?.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Synchronous variant for exit hooks and requireRoot(); output as strings. */
export function runSync(argv: string[], timeoutMs = 10_000): { code: number | null; stdout: string; stderr: string } {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return { code: null, stdout: '', stderr: 'empty argv' };
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? errMsg(r.error) : '') };
}

/** Shell-like rendering of an argv for log lines; very long arguments are abbreviated. */
export function describe(argv: string[]): string {
  return argv
    .map((a) => (a.length > 120 ? `${a.slice(0, 40).trim()}…(${a.length} chars)` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

/**
 * Poll `fn` every `intervalMs` until it resolves a truthy value; exceptions
 * count as "not yet"; on timeout throws with the last exception, if any.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `waitFor: condition not met within ${timeoutMs} ms` +
          (lastErr !== undefined ? ` (last error: ${errMsg(lastErr)})` : ''),
      );
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

/** A long-running process started by the lab. */
export interface Managed {
  name: string;
  child: ChildProcess;
  /** Resolves once the process has exited (or failed to spawn). */
  exited: Promise<void>;
  logFile: string;
}

/** The processes of one lab, and its log (lab.log). */
export class Procs {
  /** Long-running processes still alive. */
  readonly managed = new Set<Managed>();
  /** Short-lived commands, killed at the end if still running. */
  readonly transient = new Set<ChildProcess>();
  /** Environment of everything the lab runs (DBUS_SYSTEM_BUS_ADDRESS once the bus is up). */
  env: NodeJS.ProcessEnv = { ...process.env };
  private closed = false;

  constructor(private readonly labLog: string) {}

  log(msg: string): void {
    if (this.closed) return;
    try {
      fs.appendFileSync(this.labLog, `${new Date().toISOString()} ${msg}\n`);
    } catch {
      /* tmpDir gone – ignore */
    }
  }

  /** No more log lines (the temp dir is about to go). */
  close(): void {
    this.closed = true;
  }

  /** Run a host-side command that must succeed (e.g. `ip -n NS …`). */
  async mustRun(argv: string[], input?: string): Promise<string> {
    const r = await runCmd(argv, { env: this.env, track: this.transient, ...(input !== undefined ? { input } : {}) });
    this.log(`run ${describe(argv)} -> ${String(r.code)}${input !== undefined ? `\n${input}` : ''}`);
    if (r.code !== 0) {
      throw new Error(`${describe(argv)} failed (exit ${String(r.code)}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
  }

  /** A command in network namespace `netns` (`label` names it in the log). */
  async exec(netns: string, label: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.execWith([IP, 'netns', 'exec', netns], label, argv, opts);
  }

  /** A command behind a `prefix` that puts it where it runs (ip netns exec, nsenter). */
  async execWith(prefix: string[], label: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const t0 = Date.now();
    const r = await runCmd([...prefix, ...argv], { ...opts, env: this.env, track: this.transient });
    this.log(
      `exec[${label}] ${describe(argv)} -> ${r.timedOut ? 'TIMEOUT' : String(r.code ?? r.signal)} (${Date.now() - t0} ms)` +
        (r.code !== 0 && r.stderr ? `\n  stderr: ${r.stderr.trim()}` : ''),
    );
    return r;
  }

  /**
   * Start a long-running process in network namespace `netns`, in its own
   * process group, stdout/stderr appended to `logFile`. With `pipeStdout`
   * stdout is a pipe instead (the caller reads it).
   */
  start(netns: string, label: string, name: string, argv: string[], logFile: string, pipeStdout = false): Managed {
    const fd = fs.openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(IP, ['netns', 'exec', netns, ...argv], {
        detached: true, // own process group → killGroup() reaches its children
        env: this.env,
        stdio: ['ignore', pipeStdout ? 'pipe' : fd, fd],
      });
    } finally {
      fs.closeSync(fd); // the child has its own copy
    }
    // Do not keep the test process alive just because a lab is running;
    // stop() / the exit hook take care of the processes.
    child.unref();
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.log(`${name} (pid ${String(child.pid)}) exited: ${String(code ?? signal)}`);
        resolve();
      });
      child.once('error', (e) => {
        this.log(`${name}: spawn error: ${errMsg(e)}`);
        resolve();
      });
    });
    const m: Managed = { name, child, exited, logFile };
    this.managed.add(m);
    void exited.then(() => this.managed.delete(m));
    this.log(`spawn[${label}] ${name} pid ${String(child.pid)}: ${describe(argv)} (log ${logFile})`);
    return m;
  }

  /** SIGTERM the process group, SIGKILL after `graceMs`, wait for exit. */
  async kill(m: Managed, graceMs = KILL_GRACE_MS): Promise<void> {
    const pid = m.child.pid;
    if (pid === undefined || m.child.exitCode !== null || m.child.signalCode !== null) {
      killGroup(pid, 'SIGKILL'); // leader gone, but stragglers in its group may remain
      return;
    }
    killGroup(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      m.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (!graceful) this.log(`${m.name} (pid ${pid}) ignored SIGTERM for ${graceMs} ms, sending SIGKILL`);
    killGroup(pid, 'SIGKILL');
    if (!graceful) await Promise.race([m.exited, sleep(2_000)]);
  }

  /** Every process: the long-running ones gracefully, the short-lived ones at once. */
  async killAll(): Promise<void> {
    await Promise.all([...this.managed].map((m) => this.kill(m)));
    for (const c of this.transient) killGroup(c.pid, 'SIGKILL');
  }

  /** SIGKILL to every process group, synchronously (exit hooks). */
  killAllSync(): void {
    for (const m of this.managed) killGroup(m.child.pid, 'SIGKILL');
    for (const c of this.transient) killGroup(c.pid, 'SIGKILL');
  }
}
