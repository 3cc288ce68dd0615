/**
 * The one table of what this daemon trusts a firewalld version to do. The
 * daemon reads firewalld's own `version` property at start (and after every
 * firewalld restart) and asks this table one question: may grants be timed
 * rich rules (firewalld removes them on time by itself), or must the daemon
 * own their expiry (untimed rules it removes itself)?
 *
 * firewalld rewrote timed rules in 2.3.3, 2.4.1 and 2.5.0. With the new code,
 * `firewall-cmd --reload` with any timed rule present fails (upstream #1597:
 * "dictionary changed size during iteration"), sends no `Reloaded`, leaves
 * every zone call answering INVALID_ZONE and the kernel with only its
 * `policy_drop` table: every new connection dropped, SSH included. It also
 * sends a stale `RichRuleRemoved` at a rule's original expiry after the rule
 * was removed or re-added. On those versions the daemon adds no timed rule.
 *
 * A release not in the table is not assumed fixed: anything newer than the
 * last row gets the safe mechanism (daemon-owned expiry) until the version
 * matrix (test/e2e/fw-*.test.ts against that release) shows otherwise and a
 * row says so here.
 */

/** firewalld's timed-rule implementation of a version. */
export type TimerCode = 'old' | 'new' | 'unknown';

/** Who ends a grant on time. */
export type ExpiryOwner = 'firewalld' | 'knockd';

export interface VersionPolicy {
  /** The version as firewalld reported it ('' when it could not be read). */
  version: string;
  timers: TimerCode;
  /** 'firewalld': rules carry firewalld's timeout; 'knockd': untimed rules, the daemon removes them on time. */
  expiry: ExpiryOwner;
  /** Old timer code keeps a timer keyed by (zone, text) as passed: a rule removed with another spelling and re-added is removed again at the old expiry. */
  orphanTimers: boolean;
  /** Why, in words for the log and `--status`. */
  why: string;
}

/** [from, to) version ranges and their timer code, oldest first. `to` undefined: open-ended. */
const TABLE: readonly { from: number[]; to?: number[]; timers: TimerCode; note: string }[] = [
  { from: [0], to: [2, 3, 3], timers: 'old', note: 'old timer code (0.9, 1.x, up to 2.3.2)' },
  { from: [2, 3, 3], to: [2, 4, 0], timers: 'new', note: 'new timer code since 2.3.3' },
  { from: [2, 4, 0], to: [2, 4, 1], timers: 'old', note: 'old timer code (2.4.0)' },
  { from: [2, 4, 1], to: [2, 5, 0], timers: 'new', note: 'new timer code since 2.4.1' },
  { from: [2, 5, 0], to: [2, 6, 0], timers: 'new', note: 'new timer code (2.5.x)' },
  // Newer than anything measured: not assumed fixed (upstream #1597 is open).
  { from: [2, 6, 0], timers: 'new', note: 'newer than any version measured; treated as the new timer code' },
];

/** `2.5.2` → [2, 5, 2]; undefined when it is not dotted numbers (a suffix such as `-rc1` or `.dev0` is ignored). */
export function parseVersion(v: string): number[] | undefined {
  const m = /^\s*(\d{1,4}(?:\.\d{1,4}){0,3})(?:[^\d.].*)?$/.exec(v);
  return m ? m[1].split('.').map(Number) : undefined;
}

function cmp(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** What the daemon does with firewalld `version`. An unreadable version gets the safe mechanism. */
export function versionPolicy(version: string): VersionPolicy {
  const v = parseVersion(version);
  const row = v && TABLE.find((r) => cmp(v, r.from) >= 0 && (r.to === undefined || cmp(v, r.to) < 0));
  const timers: TimerCode = row ? row.timers : 'unknown';
  const expiry: ExpiryOwner = timers === 'old' ? 'firewalld' : 'knockd';
  const what = row ? row.note : `version "${version}" not understood`;
  const why =
    expiry === 'firewalld'
      ? `firewalld ${version}: ${what}: grants are timed rules, firewalld removes them on time even if knockd dies`
      : `firewalld ${version || '(unknown)'}: ${what}: grants are untimed rules whose expiry knockd owns (timed rules break "firewall-cmd --reload" on this code, upstream #1597)`;
  return { version, timers, expiry, orphanTimers: timers === 'old', why };
}
