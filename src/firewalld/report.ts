/**
 * What `knockd --status` and STATUS= say about firewalld: its version and the
 * expiry mechanism that version gets, whether it is broken, the bounds
 * (grants held, calls in flight) and the signals ignored.
 */
import type { Logger } from 'pino';
import type { FirewalldClient } from './client';
import type { Grants } from './grants';
import type { FirewalldHealth } from './health';
import { RESTART_ADVICE } from './health';

export interface FirewalldReport {
  version: string;
  /** Who ends grants on time: firewalld (timed rules) or knockd (untimed rules). */
  expiry: string;
  /** '' while firewalld works. */
  broken: string;
  grants: number;
  maxGrants: number;
  refusedFull: number;
  callsInFlight: number;
  callsQueued: number;
  maxCalls: number;
  /** Signals about firewalld from a sender that may not send them (forged), all time. */
  signalsIgnored: number;
  /** RichRuleRemoved for rules firewalld still had (stale, or our own refresh). */
  staleSignals: number;
  /** Rules removed by an earlier firewalld timer and put back. */
  putBack: number;
}

export function firewalldReport(fw: FirewalldClient, grants: Grants, health: FirewalldHealth): FirewalldReport {
  const p = grants.mechanism;
  const c = fw.calls;
  return {
    version: p?.version ?? '',
    expiry: p?.expiry ?? '',
    broken: health.broken,
    grants: grants.list().length,
    maxGrants: grants.maxGrants,
    refusedFull: grants.counts.refusedFull,
    callsInFlight: c.inFlight,
    callsQueued: c.queued,
    maxCalls: c.max,
    signalsIgnored: fw.ignoredSignals,
    staleSignals: grants.counts.staleSignals,
    putBack: grants.counts.putBack,
  };
}

/** The STATUS= line while firewalld is broken. */
export function brokenStatus(why: string): string {
  return `firewalld is broken (${why}): ${RESTART_ADVICE}`;
}

/** One line of `knockd --status`. */
export function formatFirewalldReport(r: FirewalldReport): string {
  const who = r.expiry === 'knockd' ? 'knockd removes untimed rules on time' : 'timed rules, firewalld removes them';
  return [
    `firewalld ${r.version || '(version not read yet)'}: ${who}${r.broken ? `; BROKEN: ${r.broken}` : ''}`,
    `  grants ${r.grants}/${r.maxGrants} (${r.refusedFull} refused, table full); calls in flight ${r.callsInFlight}/${r.maxCalls}, ${r.callsQueued} queued`,
    `  signals ignored (wrong sender) ${r.signalsIgnored}; stale RichRuleRemoved ${r.staleSignals}; put back after a stale firewalld timer ${r.putBack}`,
  ].join('\n');
}

/** Log forged (ignored) signals: the first at once, then at most one line a minute with the count. */
export function logIgnoredSignals(fw: FirewalldClient, log: Logger, now: () => number = Date.now): void {
  let last = -Infinity;
  let since = 0;
  fw.on('ignoredSignal', (sender, member) => {
    since++;
    if (now() - last < 60_000) return;
    log.warn(
      `ignored ${since} D-Bus signal(s) about firewalld from a sender that may not send them (latest ${member} from ${sender || '(none)'}): forged by a local user, or from a firewalld that is gone; nothing changed. Logged at most once a minute`,
    );
    last = now();
    since = 0;
  });
}
