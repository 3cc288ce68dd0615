/**
 * What a process holds, read from /proc/<pid>/status (and each thread's
 * /proc/<pid>/task/<tid>/status) by someone else: the daemon checks its
 * capture process with it once that reports `listening`, and the end-to-end
 * tests use it too.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessPrivileges {
  /** Real, effective, saved, filesystem. */
  uid: number[];
  gid: number[];
  groups: number[];
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: boolean;
  /** 0 none, 1 strict, 2 filter. */
  seccomp: number;
  /** The signals the thread blocks (SigBlk). */
  sigBlk: bigint;
}

export function parseStatus(text: string): ProcessPrivileges {
  const f = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) f.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const ids = (k: string): number[] => (f.get(k) ?? '').split(/\s+/).filter(Boolean).map(Number);
  const caps = (k: string): bigint => {
    const v = f.get(k);
    if (v === undefined || !/^[0-9a-f]+$/i.test(v)) throw new Error(`no ${k} in the status file`);
    return BigInt(`0x${v}`);
  };
  return {
    uid: ids('Uid'),
    gid: ids('Gid'),
    groups: ids('Groups'),
    capInh: caps('CapInh'),
    capPrm: caps('CapPrm'),
    capEff: caps('CapEff'),
    capBnd: caps('CapBnd'),
    capAmb: caps('CapAmb'),
    noNewPrivs: f.get('NoNewPrivs') === '1',
    seccomp: Number(f.get('Seccomp') ?? 0),
    sigBlk: /^[0-9a-f]+$/i.test(f.get('SigBlk') ?? '') ? BigInt(`0x${f.get('SigBlk') ?? ''}`) : 0n,
  };
}

/** SIGKILL (9), SIGSTOP (19) and glibc's two internal signals (32, 33): no thread can block them. */
const UNBLOCKABLE = (1n << 8n) | (1n << 18n) | (3n << 31n);

/**
 * Whether the thread blocks every signal it can: node's SIGUSR1 watchdog
 * thread does, so the privilege drop's signal to each thread does not reach
 * it (vendor/README.md).
 */
export function blocksEverySignal(p: ProcessPrivileges): boolean {
  return (p.sigBlk | UNBLOCKABLE) === (1n << 64n) - 1n;
}

/**
 * Why `p` is not fully unprivileged, or undefined when it is. `thread`: `p`
 * is a thread other than the main one, which may keep its inheritable and
 * bounding sets (used only at execve, which the seccomp filter refuses) if
 * it blocks every signal, as the drop cannot reach it (vendor/README.md).
 */
export function unprivilegedProblem(p: ProcessPrivileges, thread = false): string | undefined {
  const exempt = thread && blocksEverySignal(p);
  const bad: string[] = [];
  if (p.uid.length !== 4 || p.uid.some((u) => u === 0)) bad.push(`Uid ${p.uid.join(' ')}`);
  if (p.gid.length !== 4 || p.gid.some((g) => g === 0)) bad.push(`Gid ${p.gid.join(' ')}`);
  if (p.groups.length > 0) bad.push(`Groups ${p.groups.join(' ')}`);
  for (const [k, v] of [
    ['CapInh', p.capInh],
    ['CapPrm', p.capPrm],
    ['CapEff', p.capEff],
    ['CapBnd', p.capBnd],
    ['CapAmb', p.capAmb],
  ] as const) {
    if (exempt && (k === 'CapInh' || k === 'CapBnd')) continue;
    if (v !== 0n) bad.push(`${k} ${v.toString(16)}`);
  }
  if (!p.noNewPrivs) bad.push('NoNewPrivs 0');
  // 2: a seccomp filter (the sandbox of vendor/cap-privsep.patch); 0 none, 1 strict.
  if (p.seccomp !== 2) bad.push(`Seccomp ${p.seccomp}`);
  return bad.length > 0 ? bad.join(', ') : undefined;
}

/**
 * Why process `pid` is not fully unprivileged (or its status cannot be
 * read), or undefined when it is: its main thread, then every other thread
 * (capability sets are per thread).
 */
export function privilegeProblem(pid: number | undefined): string | undefined {
  if (pid === undefined) return 'no pid';
  let text: string;
  let tids: string[];
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
    tids = readdirSync(`/proc/${pid}/task`);
  } catch (err) {
    return `cannot read /proc/${pid}/status: ${(err as Error).message}`;
  }
  const main = unprivilegedProblem(parseStatus(text));
  if (main !== undefined) return main;
  for (const tid of tids) {
    if (tid === String(pid)) continue;
    let t: string;
    try {
      t = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread has exited
    }
    const problem = unprivilegedProblem(parseStatus(t), true);
    if (problem !== undefined) return `thread ${tid}: ${problem}`;
  }
  return undefined;
}
