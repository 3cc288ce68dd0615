/**
 * What a process holds, read from /proc/<pid>/status by someone else: the
 * daemon checks its capture process with it once that reports `listening`,
 * and the end-to-end tests use it too.
 */
import { readFileSync } from 'node:fs';

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
  };
}

/** Why `p` is not fully unprivileged, or undefined when it is. */
export function unprivilegedProblem(p: ProcessPrivileges): string | undefined {
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
    if (v !== 0n) bad.push(`${k} ${v.toString(16)}`);
  }
  if (!p.noNewPrivs) bad.push('NoNewPrivs 0');
  // 2: a seccomp filter (the sandbox of vendor/cap-privsep.patch); 0 none, 1 strict.
  if (p.seccomp !== 2) bad.push(`Seccomp ${p.seccomp}`);
  return bad.length > 0 ? bad.join(', ') : undefined;
}

/** Why process `pid` is not fully unprivileged (or its status cannot be read), or undefined when it is. */
export function privilegeProblem(pid: number | undefined): string | undefined {
  if (pid === undefined) return 'no pid';
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (err) {
    return `cannot read /proc/${pid}/status: ${(err as Error).message}`;
  }
  return unprivilegedProblem(parseStatus(text));
}
