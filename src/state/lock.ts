/**
 * One daemon per state directory. Two knockd instances on one host (one per
 * interface, as knockd admins run them) must not share grants.json and
 * commands.json: a restart of one would take over, or drop, the other's
 * grants. The first one to start writes its pid to `<dir>/knockd.lock`
 * (O_EXCL); a second one finds a live knockd there and refuses to start.
 * A lock left by a process that is gone (SIGKILL, crash) is taken over.
 *
 * A pid file rather than flock(2): Node has no flock, and the pid names the
 * other instance in the error message.
 */
import { mkdir, open as openFile, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export class StateDirBusy extends Error {
  override name = 'StateDirBusy';
}

/** Is `pid` a live knockd process (not a recycled pid of something else)? */
async function liveKnockd(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('knockd');
  } catch {
    return false;
  }
}

export interface StateDirLock {
  readonly file: string;
  release(): Promise<void>;
}

/** Take `<dir>/knockd.lock` for this process, or throw StateDirBusy naming the holder and --state-dir. */
export async function lockStateDir(dir: string): Promise<StateDirLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'knockd.lock');
  const mine = `${process.pid}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await openFile(file, 'wx', 0o600);
      await fh.writeFile(mine);
      await fh.close();
      return {
        file,
        release: async () => {
          const now = await readFile(file, 'utf8').catch(() => '');
          if (now === mine) await unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (await liveKnockd(holder)) {
      throw new StateDirBusy(
        `state directory ${dir} is in use by another knockd (pid ${holder}); two daemons must not share grants.json: ` +
          `give this one its own with --state-dir (e.g. --state-dir ${dir}/<interface>)`,
      );
    }
    // Stale: its process is gone. Remove it and try again (a racing start gets EEXIST and looks once more).
    await unlink(file).catch(() => undefined);
  }
  throw new StateDirBusy(
    `state directory ${dir}: cannot take ${file} (another knockd is starting at the same time?); give each daemon its own --state-dir`,
  );
}
