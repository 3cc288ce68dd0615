/**
 * One daemon per state directory. Two knockd instances on one host (one per
 * interface, as knockd admins run them) must not share grants.json and
 * commands.json: a restart of one would take over, or drop, the other's
 * grants.
 *
 * The lock is the highest-numbered `<dir>/knockd.lock.<n>` file; it names
 * its holder (owner.ts: pid, start time, boot). A start reads the highest
 * one: a live holder → StateDirBusy; none, or a holder that is gone (SIGKILL,
 * crash, reboot) → it hard-links a file with its own identity to number
 * n + 1. link(2) fails if the name exists, so exactly one of any number of
 * daemons starting together gets n + 1, and a stale lock is never removed
 * before it is superseded (the old check-then-unlink let two racing starts
 * each remove the other's fresh lock and both run). The winner then lists
 * again (a name created during a directory read may be missed by it: a
 * higher number seen now means this start lost) and removes the lower,
 * superseded files. The file is complete the moment its name exists (a
 * link of a written temp file), so nobody ever reads a half-written lock.
 *
 * A pid file rather than flock(2): Node has no flock, and the file names the
 * other instance in the error message.
 */
import { link, mkdir, open as openFile, readdir, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { currentOwner, formatOwner, isLiveOwner, legacyLive, parseOwner, type LockOwner } from './owner';
import { checkStateDir } from './dir-trust';

export class StateDirBusy extends Error {
  override name = 'StateDirBusy';
}

export interface StateDirLock {
  readonly file: string;
  release(): Promise<void>;
}

/** The lock file of knockd before numbered locks (a pid only): honoured while its process is a live knockd. */
export const LEGACY_LOCK = 'knockd.lock';
const LOCK_NAME = /^knockd\.lock\.([1-9][0-9]{0,14})$/;
/** Start attempts when another start races this one (each costs two directory reads). */
export const LOCK_ATTEMPTS = 8;

export interface LockOptions {
  /** This process's identity (tests: several takers in one process). */
  owner?: LockOwner;
  /** Tests only: awaited at named points of the take-over, to widen race windows. */
  pause?: (step: 'read-holder' | 'before-link' | 'before-verify') => Promise<void>;
}

/** The lock numbers present in `dir`, highest first. */
async function lockNumbers(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir(dir)) {
    const m = LOCK_NAME.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => b - a);
}

const lockFile = (dir: string, n: number): string => join(dir, `knockd.lock.${n}`);

/** Read a lock file without following a symlink; undefined if it is gone. */
async function readLock(file: string): Promise<string | undefined> {
  try {
    const fh = await openFile(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function busy(dir: string, pid: number): StateDirBusy {
  return new StateDirBusy(
    `state directory ${dir} is in use by another knockd (pid ${pid}); two daemons must not share grants.json: ` +
      `give this one its own with --state-dir (e.g. --state-dir ${dir}/<interface>)`,
  );
}

/** Write `text` to a new file `file` (O_EXCL|O_NOFOLLOW: never through a link left there); a leftover of ours is replaced. */
async function writeNew(file: string, text: string): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fh;
  try {
    fh = await openFile(file, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await unlink(file);
    fh = await openFile(file, flags, 0o600);
  }
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Take the state directory's lock for this process, or throw StateDirBusy naming the holder and --state-dir. */
export async function lockStateDir(dir: string, opts: LockOptions = {}): Promise<StateDirLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await checkStateDir(dir);
  const me = opts.owner ?? (await currentOwner());
  const mine = formatOwner(me);
  const legacy = await readLock(join(dir, LEGACY_LOCK));
  if (legacy !== undefined) {
    const pid = Number.parseInt(legacy, 10);
    if (await legacyLive(pid)) throw busy(dir, pid);
  }
  const tmp = join(dir, `knockd.lock-new.${me.pid}`);
  await writeNew(tmp, mine);
  try {
    for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
      const top = (await lockNumbers(dir))[0] ?? 0;
      if (top > 0) {
        await opts.pause?.('read-holder');
        const text = await readLock(lockFile(dir, top));
        if (text === undefined) continue; // released or superseded meanwhile: look again
        const holder = parseOwner(text);
        if (holder !== undefined && (await isLiveOwner(holder))) throw busy(dir, holder.pid);
      }
      await opts.pause?.('before-link');
      const file = lockFile(dir, top + 1);
      try {
        await link(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // another start took n + 1
        throw err;
      }
      await opts.pause?.('before-verify');
      const now = await lockNumbers(dir);
      if (now[0] !== top + 1) {
        // A higher number (ours was made from a directory read that missed it), or ours removed: this start lost.
        if (now.includes(top + 1)) await unlink(file).catch(() => undefined);
        continue;
      }
      for (const n of now.slice(1)) await unlink(lockFile(dir, n)).catch(() => undefined);
      if (legacy !== undefined) await unlink(join(dir, LEGACY_LOCK)).catch(() => undefined);
      return {
        file,
        release: async () => {
          if ((await readLock(file).catch(() => undefined)) === mine) await unlink(file).catch(() => undefined);
        },
      };
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  throw new StateDirBusy(
    `state directory ${dir}: cannot take its lock (knockd.lock.<n>) in ${LOCK_ATTEMPTS} attempts (another knockd is starting at the same time?); give each daemon its own --state-dir`,
  );
}
