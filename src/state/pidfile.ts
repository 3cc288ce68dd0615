/**
 * The pid file (`-d`, `-p`, `PidFile`). knockd 0.8 wrote it with fopen("w")
 * at start and unlinked it at exit, overwriting a stale one left by a crash;
 * the same here (a stale pid file never stops a start: the state-directory
 * lock is what keeps two daemons apart), but never through the path: the pid
 * goes into a new file made with O_EXCL|O_NOFOLLOW next to it and renamed over
 * it, so a symlink or a hard link planted at the path (a pid file in a
 * directory others can write) is replaced, and its target never written.
 * At exit it is removed only if it still holds our pid.
 */
import { unlink, rename, chmod } from 'node:fs/promises';
import { createExclusive, readNoFollow } from './statefile';

/** Write `pid` to `file` (mode 0644, as knockd's under umask 022): temp file, then rename over whatever is there. */
export async function writePidFile(file: string, pid: number = process.pid): Promise<void> {
  const tmp = `${file}.${pid}.tmp`;
  const fh = await createExclusive(tmp, 0o644);
  try {
    await fh.writeFile(`${pid}\n`, 'utf8');
    await fh.close();
    await chmod(tmp, 0o644); // whatever the umask
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Remove `file` if it is a regular file holding `pid` (not another daemon's, not a link planted since). */
export async function removePidFile(file: string, pid: number = process.pid): Promise<boolean> {
  const text = await readNoFollow(file).catch(() => undefined);
  if (text?.trim() !== String(pid)) return false;
  await unlink(file);
  return true;
}
