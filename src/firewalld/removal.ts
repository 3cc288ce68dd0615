/**
 * What a `RichRuleRemoved` means for a grant held, once firewalld has been
 * asked whether the rule is still there (the signal alone proves nothing:
 * 2.3.3+/2.4.1+/2.5.x send a stale one at a rule's original expiry even after
 * it was removed and re-added, and every version sends our own removals).
 * Pure: the grant table asks, then acts.
 */
import type { Grant } from './grant-model';

/** A removal this close to a grant's end, or to an earlier firewalld timer of the same rule, is firewalld's timer. */
export const TIMER_SLACK_MS = 2000;

export type RemovalVerdict =
  /** The rule is still there: a stale signal, or ours (a refresh). Nothing changes. */
  | 'present'
  /** We were removing it: done. */
  | 'closed'
  /** firewalld's timeout of this grant. */
  | 'expired'
  /** firewalld's timer of an earlier grant of the same rule (old versions' orphan timers): not the admin; put back. */
  | 'stale-timer'
  /** Someone removed it: the grant ends and nothing brings it back. */
  | 'by-hand'
  /** Not confirmed in firewalld yet: the add under way decides. */
  | 'not-yet';

export function judgeRemoval(g: Grant, present: boolean, now: number, staleTimerDue: boolean): RemovalVerdict {
  if (present) return 'present';
  if (g.state === 'closing') return 'closed';
  if (g.state === 'opening') return 'not-yet';
  if (g.expiry === 'firewalld' && g.expiresAt > 0 && now >= g.expiresAt - TIMER_SLACK_MS) return 'expired';
  if (staleTimerDue) return 'stale-timer';
  return 'by-hand';
}

/**
 * When firewalld's timers of each rule fire, as far as we caused them: old
 * timer code keys a timer by (zone, text) as passed and cancels it only on a
 * removal with the same zone and text. A rule an admin removed with another
 * spelling keeps its timer, which removes the rule again at the old expiry if
 * it was re-added since. Bounded: at most `max` keys, each entry dropped once
 * past.
 */
export class FirewalldTimers {
  private readonly due = new Map<string, number[]>();

  constructor(private readonly max = 10_000) {}

  /** A timed add of `key` was confirmed: firewalld removes it at `at`. */
  add(key: string, at: number): void {
    if (!this.due.has(key) && this.due.size >= this.max) this.due.delete(this.due.keys().next().value as string);
    this.due.set(key, [...(this.due.get(key) ?? []), at]);
  }

  /** A removal with the same zone and text as the add: firewalld cancelled the timer(s). */
  cancel(key: string): void {
    this.due.delete(key);
  }

  /** firewalld restarted: its timers died with it. */
  clear(): void {
    this.due.clear();
  }

  /** Is a timer of `key` due about `now`, before `before` (the grant's own end)? Past entries are dropped. */
  dueAt(key: string, now: number, before: number): boolean {
    const list = (this.due.get(key) ?? []).filter((t) => t > now - 2 * TIMER_SLACK_MS);
    if (list.length === 0) this.due.delete(key);
    else this.due.set(key, list);
    return list.some((t) => Math.abs(now - t) <= TIMER_SLACK_MS && (before === 0 || t < before - TIMER_SLACK_MS));
  }
}
