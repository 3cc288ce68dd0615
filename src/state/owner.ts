/**
 * Who holds a state directory's lock, and whether that process still runs.
 *
 * A lock names its holder by boot id, pid and the process's start time
 * (field 22 of /proc/<pid>/stat, clock ticks since boot). That triple names
 * one process instance: a recycled pid has a later start time, a reboot a
 * new boot id. The other candidates are unsound: a pid alone may be any
 * process by now; "knockd" in /proc/<pid>/cmdline matches `vi knockd.conf`
 * or `tail -f knockd.log` (the daemon then refused to start until the lock
 * was removed by hand), and /proc/<pid>/exe of the daemon is the node
 * binary, which any Node program shares. A lock file of an older knockd
 * (`knockd.lock`, a pid only) is judged by exe and script together.
 */
import { readFile, readlink, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface LockOwner {
  pid: number;
  /** Start time, clock ticks since boot (decimal text: it can exceed 2^53 only in theory, but is never computed with). */
  start: string;
  /** /proc/sys/kernel/random/boot_id. */
  boot: string;
}

const BOOT_ID = '/proc/sys/kernel/random/boot_id';

/** Field 22 of /proc/<pid>/stat, or undefined if there is no such process. */
export async function startTime(pid: number | 'self'): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after the last ")" start at 3.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const v = f[22 - 3];
  return v !== undefined && /^\d+$/.test(v) ? v : undefined;
}

export async function bootId(): Promise<string> {
  return (await readFile(BOOT_ID, 'utf8')).trim();
}

export async function currentOwner(): Promise<LockOwner> {
  const start = await startTime('self');
  if (start === undefined) throw new Error('cannot read /proc/self/stat');
  return { pid: process.pid, start, boot: await bootId() };
}

export const formatOwner = (o: LockOwner): string => `${o.pid} ${o.start} ${o.boot}\n`;

/** A lock file's holder, or undefined if the text is not one (then the lock is taken over as stale). */
export function parseOwner(text: string): LockOwner | undefined {
  const m = /^([1-9][0-9]{0,9}) ([0-9]{1,20}) ([0-9a-f-]{1,64})\n$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), start: m[2], boot: m[3] };
}

/** Is the process `o` names still running (same boot, same pid, same start time)? */
export async function isLiveOwner(o: LockOwner): Promise<boolean> {
  if (o.boot !== (await bootId().catch(() => ''))) return false;
  return (await startTime(o.pid)) === o.start;
}

/** The executable of process `pid`, without the " (deleted)" an upgraded binary gets. */
async function exeOf(pid: number | 'self'): Promise<string | undefined> {
  const exe = await readlink(`/proc/${pid}/exe`).catch(() => undefined);
  return exe?.replace(/ \(deleted\)$/, '');
}

/** The script a node process runs (argv[1], resolved against its cwd and symlinks). */
async function scriptOf(pid: number): Promise<string | undefined> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (argv[1] === undefined || argv[1] === '' || cwd === undefined) return undefined;
  return realpath(resolve(cwd, argv[1])).catch(() => undefined);
}

/** An old-style lock's pid: live if it runs our node binary with our script (the pid alone may have been recycled). */
export async function legacyLive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  const [exe, ours] = await Promise.all([exeOf(pid), exeOf('self')]);
  if (exe === undefined || exe !== ours || process.argv[1] === undefined) return false;
  const [script, ourScript] = await Promise.all([scriptOf(pid), realpath(process.argv[1]).catch(() => undefined)]);
  return script !== undefined && script === ourScript;
}
