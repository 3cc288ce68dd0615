/** The grammar of a number of seconds in knockd.conf (Seq_Timeout, Cmd_Timeout, spa_max_timeout). */

import { clip } from './text';

/**
 * Largest timeout we accept, in seconds: what firewalld takes (a D-Bus int32,
 * about 68 years). Longer than a Node timer holds (2^31-1 ms): the grant
 * table and the command runner chain their timers.
 */
export const MAX_TIMEOUT_SECONDS = 0x7fffffff;

export interface SecondsBounds {
  min: number;
  /** Defaults to MAX_TIMEOUT_SECONDS. */
  max?: number;
  /** Why `max` is the limit, for the message (default: about 68 years, what firewalld takes). */
  maxReason?: string;
}

/**
 * A whole number of seconds (ASCII digits only: no sign, unit or fraction) in
 * [min, max], or the message saying why not; `what` is the directive as written.
 */
export function parseSeconds(value: string, what: string, bounds: SecondsBounds): number | string {
  const max = bounds.max ?? MAX_TIMEOUT_SECONDS;
  if (!/^\d+$/.test(value)) return `${what} must be a whole number of seconds, got "${clip(value)}"`;
  const n = Number(value);
  if (n < bounds.min)
    return `${what} must be at least ${bounds.min} second${bounds.min === 1 ? '' : 's'}, got ${clip(value)}`;
  if (n > max)
    return `${what} = ${clip(value)} is too long (at most ${max} s, ${bounds.maxReason ?? 'about 68 years: what firewalld takes'})`;
  return n;
}
