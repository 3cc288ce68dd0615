/**
 * One entry of grants.json, validated as hostile input: the state file decides
 * what rule the daemon may later remove, so an entry is only taken when it is
 * exactly a rule a door of ours could have made — firewalld's canonical text,
 * for the entry's own knocker address — in a plausible zone.
 */

import { MAX_FIREWALLD_TIMEOUT, normalizeRichRule } from '../config/firewallcmd';
import { isZoneName } from '../config/zone';
import { isCanonicalSource } from '../decode/network';
import type { Grant, GrantState } from './grant-model';
import type { ExpiryOwner } from './versions';

const STATES: readonly GrantState[] = ['opening', 'open', 'closing'];

/**
 * The grant, or why the entry is refused. Takes version 1 entries (`applied`
 * instead of `state`) and version 1-2 entries without `expiry` (all were
 * timed rules then: firewalld owned their expiry).
 */
export function validGrantEntry(raw: unknown): Grant | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not an object';
  const e = raw as Record<string, unknown>;
  const { zone, rule, src, door, timeout, expiresAt } = e;
  if (typeof zone !== 'string' || !isZoneName(zone)) return 'zone is not a zone name';
  if (typeof src !== 'string' || !isCanonicalSource(src))
    return 'src is not a canonical IP address or network (firewalld_source_prefix)';
  if (typeof rule !== 'string' || rule.length > 2048 || normalizeRichRule(rule) !== rule)
    return "rule is not a rich rule in firewalld's canonical text";
  if (!rule.includes(`source address="${src}"`)) return "rule is not for the entry's own src address";
  if (typeof door !== 'string' || door.length === 0 || door.length > 256) return 'door is not a door name';
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > MAX_FIREWALLD_TIMEOUT)
    return 'timeout is not a number of seconds';
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt < 0) return 'expiresAt is not a time';
  let state: GrantState;
  if (e.state !== undefined) {
    if (!STATES.includes(e.state as GrantState)) return 'state is not opening, open or closing';
    state = e.state as GrantState;
  } else if (typeof e.applied === 'boolean') {
    state = e.applied ? 'open' : 'opening'; // version 1
  } else {
    return 'no state';
  }
  let expiry: ExpiryOwner = 'firewalld';
  if (e.expiry !== undefined) {
    if (e.expiry !== 'firewalld' && e.expiry !== 'knockd') return 'expiry is not firewalld or knockd';
    expiry = e.expiry;
  }
  const firewalld = typeof e.firewalld === 'string' && e.firewalld.length <= 256 ? e.firewalld : '';
  const closedBy =
    typeof e.closedBy === 'string' && e.closedBy.length > 0 && e.closedBy.length <= 256 ? { closedBy: e.closedBy } : {};
  return { zone, rule, src, door, timeout, expiresAt, state, firewalld, expiry, ...closedBy };
}
