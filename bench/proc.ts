/** /proc sampling of the daemons' processes (CPU, RSS, PSS), checked to be in the lab's server namespace. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { type Lab } from '../test/lab/lab';

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
