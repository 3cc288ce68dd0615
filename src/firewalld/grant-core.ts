/**
 * What the grant table's parts (grant-io.ts, grant-reconcile.ts,
 * grant-signals.ts, grant-expiry.ts) need of the table itself (grants.ts):
 * its clock, its firewalld, and its bookkeeping. Types only: the parts import
 * this file, never grants.ts, so there is no import cycle.
 */
import type { Logger } from 'pino';
import type { SetTimer } from '../util/timers';
import type { FirewalldError } from './client';
import type { Grant, GrantsFirewall } from './grant-model';
import type { FirewalldTimers } from './removal';
import type { VersionPolicy } from './versions';

/** What the grant table needs of the firewalld health watcher (health.ts). */
export interface GrantsHealth {
  judge(zone: string, err: FirewalldError): boolean;
  knowZones(zones: Iterable<string>): void;
  readonly broken: string;
  on(event: 'healed', listener: () => void): unknown;
}

/** Why a rule is added: see `addGrant` (grant-io.ts). */
export type AddWhy = 'new' | 'refresh' | 'reset' | 'restore' | 'retry';

/** Counters for --status. */
export interface GrantCounts {
  refusedFull: number;
  staleSignals: number;
  putBack: number;
  endedByHand: number;
}

/** Why a grant ended, for GrantsOptions.onEnd (notify_command's %EVENT%). */
export type GrantEnd = 'expire' | 'close' | 'removed';

/** The grant table as its parts see it. */
export interface GrantCore {
  readonly fw: GrantsFirewall;
  readonly log: Logger;
  readonly now: () => number;
  readonly setTimer: SetTimer;
  /** Backoff between retries, ms (last one repeats). */
  readonly retryDelays: readonly number[];
  readonly health: GrantsHealth | undefined;
  /** firewalld's own timers of each rule, as far as we caused them. */
  readonly timers: FirewalldTimers;
  readonly counts: GrantCounts;
  /** The version policy in force, if firewalld's version has been read. */
  policy(): VersionPolicy | undefined;
  readPolicy(): Promise<VersionPolicy>;
  /** The grant held under key `k`. */
  get(k: string): Grant | undefined;
  list(): Grant[];
  /** Hold `grant` (and persist it); arms its expiry timer when it is open with an end. */
  track(k: string, grant: Grant): void;
  /** Forget the grant of `k` (and persist that). */
  untrack(k: string): void;
  /** Run `op` after every earlier operation on the same rule has finished. */
  serial(k: string, op: () => Promise<void>): Promise<void>;
  armExpiry(k: string, g: Grant, at: number): void;
  /** Try again later what firewalld has not confirmed. */
  scheduleRetry(): void;
  /** firewalld confirmed something: the retry backoff starts over. */
  confirmed(): void;
  add(g: Grant, seconds: number, why: AddWhy, byDoor?: string): Promise<void>;
  remove(g: Grant, byDoor?: string): Promise<void>;
  /** `g` left the table for good: tell GrantsOptions.onEnd. */
  ended(g: Grant, why: GrantEnd): void;
}
