/** Starting and stopping the two daemons the benchmarks compare: ours, and Debian's knockd 0.8 with firewall-cmd. */
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { type Lab } from '../test/lab/lab';
import { DEFAULT_CONF, KNOCKD_BIN } from '../test/e2e/helpers';
import { OPEN_PORTS, CLOSE_PORTS, DEBIAN_KNOCKD } from './common';
import { type TreeSample, treeSample, verifyDaemonPid } from './proc';

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
      () =>
        proc.exitCode !== null || proc.signalCode !== null
          ? Promise.reject(new Error(`${what} exited (${String(proc.exitCode ?? proc.signalCode)})`))
          : Promise.resolve(re.test(read())),
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
