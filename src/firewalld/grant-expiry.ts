/**
 * A grant's end: knockd removes the rule when it owns the expiry; otherwise
 * firewalld's timer does, believed once firewalld says the rule is gone (at
 * the latest FIREWALLD_LATE_MS late, knockd removes it itself).
 */
import type { GrantCore } from './grant-core';
import { grantKey as key, type Grant } from './grant-model';

/** firewalld's timer fires in whole-second ticks: a rule may leave this late. After that, the daemon removes it. */
export const FIREWALLD_LATE_MS = 3000;

/** The grant's end came: knockd's to remove, or firewalld's, believed once firewalld says the rule is gone. */
export async function expireGrant(core: GrantCore, g: Grant): Promise<void> {
  const k = key(g.zone, g.rule);
  if (core.get(k) !== g || g.state !== 'open') return;
  if (core.now() < g.expiresAt) return core.armExpiry(k, g, g.expiresAt); // refreshed meanwhile
  const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
  if (g.expiry === 'knockd') {
    core.log.info(ctx, `${g.src}: ${g.door}: grant ended (knockd removes the rule): zone ${g.zone}: ${g.rule}`);
    g.state = 'closing';
    core.track(k, g);
    return core.remove(g);
  }
  let present: boolean;
  try {
    present = await core.fw.queryRichRule(g.zone, g.rule);
  } catch {
    return core.armExpiry(k, g, core.now() + 1000);
  }
  if (!present) {
    core.untrack(k);
    core.log.info(ctx, `${g.src}: ${g.door}: firewalld timeout: rule expired in zone ${g.zone}: ${g.rule}`);
    return core.ended(g, 'expire');
  }
  if (core.now() < g.expiresAt + FIREWALLD_LATE_MS) return core.armExpiry(k, g, core.now() + 500);
  core.log.warn(
    ctx,
    `${g.src}: ${g.door}: firewalld did not remove ${g.rule} at its timeout (${FIREWALLD_LATE_MS / 1000} s late); knockd removes it`,
  );
  g.state = 'closing';
  core.track(k, g);
  return core.remove(g);
}
