/**
 * The state directory is trusted with root's work: commands.json holds shell
 * commands the daemon runs as root, grants.json rules it puts back in
 * firewalld. So only root (or the uid the daemon runs as) may be able to
 * write there: the directory must be owned by root or that uid and be
 * neither group- nor world-writable, and every directory above it must be
 * owned by root or that uid and either not writable by others or sticky
 * (like /tmp: there nobody can rename a directory that is not theirs). The
 * path is checked after symlinks are resolved (/var/run → /run is fine).
 */
import { lstat, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';

export class StateDirUnsafe extends Error {
  override name = 'StateDirUnsafe';
}

const mode = (m: number): string => `0${(m & 0o7777).toString(8)}`;

/** Why `path` (a directory, `isTarget`: the state dir itself) is not safe for `uid`, or undefined. */
export function dirProblem(st: { uid: number; mode: number }, uid: number, isTarget: boolean): string | undefined {
  if (st.uid !== 0 && st.uid !== uid)
    return `is owned by uid ${st.uid}, not by root${uid !== 0 ? ` or uid ${uid}` : ''}`;
  const writable = (st.mode & 0o022) !== 0;
  if (writable && (isTarget || (st.mode & 0o1000) === 0))
    return `is ${(st.mode & 0o002) !== 0 ? 'world' : 'group'}-writable (mode ${mode(st.mode)})${isTarget ? '' : ' and not sticky'}`;
  return undefined;
}

/** Throw StateDirUnsafe naming the directory and the fix if anyone but root (or `uid`) could write into `dir`. */
export async function checkStateDir(dir: string, uid: number = process.getuid?.() ?? 0): Promise<void> {
  const real = await realpath(dir);
  for (let p = real, target = true; ; p = dirname(p), target = false) {
    const st = await lstat(p);
    if (target && !st.isDirectory()) throw new StateDirUnsafe(`state directory ${dir} is not a directory`);
    const why = dirProblem(st, uid, target);
    if (why !== undefined) {
      const fix =
        target && st.uid !== 0 && st.uid !== uid
          ? `chown root:root ${p} && chmod 0700 ${p}`
          : target
            ? `chmod 0700 ${p}`
            : `chown root ${p} and chmod go-w ${p}`;
      throw new StateDirUnsafe(
        `state directory ${dir}: ${p === real ? 'it' : p} ${why}; whoever can write there could make the daemon run commands ` +
          `as root (commands.json) or add firewall rules (grants.json): ${fix}, or give --state-dir a directory only root can write`,
      );
    }
    if (p === '/') return;
  }
}
