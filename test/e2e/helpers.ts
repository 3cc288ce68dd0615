/**
 * End-to-end helpers: run our knockd (and Debian's knock/knockd) inside a lab.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { requireRoot, startLab, type Lab, type LabOptions } from '../lab/lab';

export const REPO = resolve(__dirname, '..', '..', '..');
export const KNOCKD_BIN = join(REPO, 'bin', 'knockd');

/**
 * How long an end-to-end test waits for something that should happen before it
 * gives up: a "give up" bound, not a claim of speed. firewalld, capture restarts
 * and daemon start-up can take seconds on a loaded 2-core machine; a behaviour that
 * never happens still fails, only later. Speed is measured by bench/, not here.
 */
export const SLOW = 30_000;

export interface RunningDaemon {
  proc: ChildProcess;
  logFile: string;
  confFile: string;
  /** The whole log so far. */
  log(): Promise<string>;
  /** Wait until the log matches `re` (counting only text after `from` chars). */
  waitForLog(re: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

let seq = 0;

export interface StartOptions {
  /** Extra environment for the daemon, e.g. NOTIFY_SOCKET. */
  env?: Record<string, string>;
  /** Log line that means "started" (default /listening on/). */
  waitFor?: RegExp;
  /** --state-dir (default: a fresh directory per daemon in the lab's temp dir). Reuse one to test restarts. */
  stateDir?: string;
  /** A command the daemon runs under, e.g. strace. */
  wrap?: string[];
  /** `-i` (default: the lab's server veth); null: no `-i` at all. */
  iface?: string | null;
}

/** Start bin/knockd in the server namespace with `conf` as its config; resolves once it is listening. */
export async function startKnockd(
  lab: Lab,
  conf: string,
  extraArgs: string[] = [],
  opts: StartOptions = {},
): Promise<RunningDaemon> {
  const n = ++seq;
  const confFile = join(lab.tmpDir, `knockd-${n}.conf`);
  const logFile = join(lab.tmpDir, `knockd-${n}.log`);
  const outFile = join(lab.tmpDir, `knockd-${n}.out`);
  await writeFile(confFile, conf);
  const env = opts.env ?? {};
  const envArgv = Object.keys(env).length ? ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)] : [];
  const stateDir = opts.stateDir ?? join(lab.tmpDir, `state-${n}`);
  const proc = lab.spawnIn(
    'server',
    [
      ...envArgv,
      ...(opts.wrap ?? []),
      process.execPath,
      KNOCKD_BIN,
      ...(opts.iface === null ? [] : ['-i', opts.iface ?? lab.serverIf]),
      '-c',
      confFile,
      '-g',
      logFile,
      '--state-dir',
      stateDir,
      ...extraArgs,
    ],
    { logFile: outFile },
  );
  const readLog = async (): Promise<string> => {
    const [a, b] = await Promise.all([
      readFile(logFile, 'utf8').catch(() => ''),
      readFile(outFile, 'utf8').catch(() => ''),
    ]);
    return a.length ? a : b;
  };
  const d: RunningDaemon = {
    proc,
    logFile,
    confFile,
    log: readLog,
    waitForLog: (re, timeoutMs = SLOW, from = 0) =>
      lab.waitFor(async () => {
        const text = (await readLog()).slice(from);
        if (re.test(text)) return text;
        if (proc.exitCode !== null)
          throw new Error(`knockd exited with ${proc.exitCode}:\n${await readFile(outFile, 'utf8').catch(() => '')}`);
        return undefined;
      }, timeoutMs),
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.ref(); // the lab unrefs its children; keep the loop alive while we wait for this one
      const done = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
      proc.kill(signal);
      return done;
    },
  };
  try {
    await d.waitForLog(opts.waitFor ?? /listening on/, SLOW);
  } catch (err) {
    const out = await readFile(outFile, 'utf8').catch(() => '');
    throw new Error(`knockd did not start: ${(err as Error).message}\n--- output ---\n${out}`);
  }
  return d;
}

/** Remove every rich rule of zone public (between tests). */
export async function clearRichRules(lab: Lab): Promise<void> {
  for (const r of await lab.richRules()) await lab.firewallCmd('--zone=public', `--remove-rich-rule=${r}`);
}

/** Run `fn` with a daemon on `conf`; stop it and clear zone public's rich rules afterwards, whatever happened. */
export async function withDaemon(
  lab: Lab,
  conf: string,
  fn: (d: RunningDaemon) => Promise<void>,
  opts: StartOptions & { args?: string[] } = {},
): Promise<void> {
  const d = await startKnockd(lab, conf, opts.args ?? [], opts);
  try {
    await fn(d);
  } finally {
    await d.stop();
    await clearRichRules(lab);
  }
}

/** Knock the default open sequence with Debian's knock until a rich rule appears (after a fault); give up after `giveUpMs`. */
export async function knockUntilOpen(lab: Lab, giveUpMs = SLOW): Promise<void> {
  await lab.waitFor(
    async () => {
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      return (await lab.richRules()).length > 0;
    },
    giveUpMs,
    300,
  );
}

/** Debian's knock 0.8 client, run in the client namespace. */
export async function debianKnock(
  lab: Lab,
  host: string,
  ports: (number | string)[],
  extra: string[] = [],
): Promise<void> {
  const r = await lab.execIn('client', ['knock', ...extra, host, ...ports.map(String)], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`knock failed (${r.code}): ${r.stderr}`);
}

/**
 * Knock from a chosen source address in the client namespace: one TCP
 * connection attempt per port (SYN), not waiting for an answer, like knock 0.8.
 */
export async function knockFrom(lab: Lab, source: string, host: string, ports: number[], delayMs = 0): Promise<void> {
  const script = `
const net = require('net');
const [src, host, delay, ...ports] = process.argv.slice(1);
(async () => {
  for (const p of ports) {
    const s = net.connect({ host, port: Number(p), localAddress: src });
    s.on('error', () => {});
    await new Promise((r) => setTimeout(r, 20));
    s.destroy();
    if (Number(delay)) await new Promise((r) => setTimeout(r, Number(delay)));
  }
})();`;
  const r = await lab.execIn(
    'client',
    [process.execPath, '-e', script, source, host, String(delayMs), ...ports.map(String)],
    { timeoutMs: 15_000 },
  );
  if (r.code !== 0) throw new Error(`knockFrom failed (${r.code}): ${r.stderr}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * firewalld's rule timers are GLib timeout_add_seconds, which rounds a deadline
 * less than a quarter second past a whole second down: a rule may go up to 250 ms
 * before its timeout. The lower bound of an expiry check allows that much.
 */
export const FIREWALLD_EARLY_MS = 250;

/**
 * Wait until zone public has no rich rules (giving up after SLOW) and check the
 * rule did not go early: at least `timeoutS` seconds after `t0`, taken before the
 * knock that opened it (minus FIREWALLD_EARLY_MS). Returns the seconds it lasted.
 * No upper bound beyond SLOW: how late a loaded machine lets it go is not behaviour.
 */
export async function waitExpiredAfter(lab: Lab, t0: number, timeoutS: number): Promise<number> {
  await lab.waitFor(async () => (await lab.richRules()).length === 0, SLOW, 50);
  const lasted = Date.now() - t0;
  if (lasted < timeoutS * 1000 - FIREWALLD_EARLY_MS)
    throw new Error(`the rule went ${lasted} ms after the knock began, before its ${timeoutS} s timeout`);
  return lasted / 1000;
}

/** The rich rule our daemon adds for a knocker. */
export const sshRule = (src: string, family: 4 | 6 = 4): string =>
  `rule family="ipv${family}" source address="${src}" service name="ssh" accept`;

export const DEFAULT_CONF = (opts: { cmdTimeout?: number; seqTimeout?: number; tcpflags?: string } = {}): string => `
[options]
    logfile = /dev/null

[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = ${opts.seqTimeout ?? 15}
    tcpflags          = ${opts.tcpflags ?? 'syn'}
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = ${opts.cmdTimeout ?? 3600}

[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = ${opts.seqTimeout ?? 15}
    tcpflags          = ${opts.tcpflags ?? 'syn'}
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh
`;

/**
 * One lab for the enclosing file or describe(): started (as root, or the test
 * fails) before its tests, removed after them. `set` receives it.
 */
export function withLab(opts: LabOptions, set: (lab: Lab) => void): void {
  let lab: Lab | undefined;
  before(async () => {
    requireRoot();
    lab = await startLab(opts);
    set(lab);
  });
  after(async () => {
    await lab?.stop();
  });
}

/** Pids of every process below `pid` (children, grandchildren, ...). */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const walk = async (p: number): Promise<void> => {
    const tasks = await readdir(`/proc/${p}/task`).catch(() => [] as string[]);
    for (const t of tasks) {
      const kids = (await readFile(`/proc/${p}/task/${t}/children`, 'utf8').catch(() => ''))
        .split(' ')
        .filter(Boolean)
        .map(Number);
      for (const k of kids) {
        out.push(k);
        await walk(k);
      }
    }
  };
  await walk(pid);
  return out;
}

/** The pid of the daemon's capture process (dist/src/capture/worker.js), giving up after `timeoutMs` waiting for one other than `not`. */
export async function capturePid(lab: Lab, d: RunningDaemon, not?: number, timeoutMs = SLOW): Promise<number> {
  return lab.waitFor(
    async () => {
      for (const p of await descendants(d.proc.pid!)) {
        if (p === not) continue;
        const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
        if (cmd.includes('capture/worker.js')) return p;
      }
      return undefined;
    },
    timeoutMs,
    25,
  );
}
