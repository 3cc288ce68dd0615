/**
 * What a grant is, shared by the grant table, its state-file reader and the
 * status output (no imports but types: no cycles).
 */
import type { ExpiryOwner } from './versions';

/** opening: firewalld has not confirmed the add yet; open: in firewalld; closing: removal not confirmed yet. */
export type GrantState = 'opening' | 'open' | 'closing';

/**
 * One rule the daemon holds, with its own identity as added: door, source,
 * zone and rule text. Closes and expiry use these, never text re-derived
 * from the config running now (a SIGHUP may have changed the door since).
 */
export interface Grant {
  zone: string;
  rule: string;
  /** Knocker address and door, for logs and status. */
  src: string;
  door: string;
  /** Requested duration in seconds (0: none). */
  timeout: number;
  /** Wall-clock ms when the grant ends (measured from firewalld's confirmation of the add); 0 when it has no end. */
  expiresAt: number;
  state: GrantState;
  /** The firewalld instance (pid/bus name) the rule was last confirmed in; '' unknown. */
  firewalld: string;
  /** Who removes the rule at `expiresAt`: firewalld (a timed rule) or knockd (an untimed rule). */
  expiry: ExpiryOwner;
  /** The door whose close knock is removing it (logs name it); the grant's own door stays as added. */
  closedBy?: string;
}

/** What the grant table needs of firewalld (FirewalldClient; a fake in unit tests). */
export interface GrantsFirewall {
  addRichRule(zone: string, rule: string, timeout: number): Promise<void>;
  removeRichRule(zone: string, rule: string): Promise<void>;
  queryRichRule(zone: string, rule: string): Promise<boolean>;
  getDefaultZone(): Promise<string>;
  /** firewalld's `version` property. */
  version(): Promise<string>;
  /** Which firewalld process answers now; changes when firewalld restarts. */
  identity(): Promise<string>;
  on(event: 'up' | 'reloaded' | 'reconnected', listener: () => void): unknown;
  /** RichRuleRemoved as firewalld sent it: the caller's zone ('' for the default) and rule text, verbatim. */
  on(event: 'ruleRemoved', listener: (zone: string, rule: string) => void): unknown;
}

/** The table's key of a grant: its zone and canonical rule text. */
export const grantKey = (zone: string, rule: string): string => `${zone}\u0000${rule}`;

/** Whole seconds left of a grant's time at `now` (0: it has no end). */
export const secondsLeft = (g: Grant, now: number): number =>
  g.expiresAt > 0 ? Math.ceil((g.expiresAt - now) / 1000) : 0;
