/**
 * Persisted entries are taken only if a door of the current configuration
 * could have made them. commands.json holds shell commands the daemon runs
 * as root and grants.json rich rules it keeps in firewalld: a file the
 * daemon did not write (or wrote for a door the admin has since removed or
 * changed) must not make it run a command or hold a rule no door in
 * knockd.conf describes.
 *
 * The state module knows no config: the daemon passes an EntryOrigin built
 * from its current doors (e.g. for a pending stop: the door named exists and
 * its Stop_Command with the entry's source filled in is the entry's command;
 * for a grant: the door exists and one of its rules for the entry's source,
 * in the entry's zone, is the entry's rule). withOrigin() puts it after the
 * entry's own shape check, so a refused entry is reported like any other bad
 * entry (problem line naming the file and the entry; the file moved aside and
 * kept for a post-mortem).
 */
import type { EntryCheck } from './statefile';

/** undefined: a current door could have made `entry`; otherwise why not (for the log line). */
export type EntryOrigin<T> = (entry: T) => string | undefined;

/** `check`, then `origin` on what it accepts. Without an origin, `check` alone. */
export function withOrigin<T>(check: EntryCheck<T>, origin: EntryOrigin<T> | undefined): EntryCheck<T> {
  if (origin === undefined) return check;
  return (raw) => {
    const r = check(raw);
    if (typeof r === 'string') return r;
    const why = origin(r);
    return why === undefined ? r : `no door of the current configuration could have made it (${why})`;
  };
}
