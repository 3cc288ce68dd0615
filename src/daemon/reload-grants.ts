/**
 * What a reload does to the grants held: a grant stays only while the new
 * config would make it again, exactly as it was added (same door name, same
 * rule for the knocker's address, same zone, or any zone for a door without
 * `firewalld_zone`: such a door's rules follow firewalld's default zone). Every
 * other grant (its door removed, its rules or zone changed, or the door no
 * longer opens firewalld rules) is closed at the reload, in the zone it was
 * added to: no knock of the new config could close it, and a grant nobody can
 * close is a door without an end. A grant already closing is left to finish.
 *
 * Timeouts are not compared: a kept grant expires as it was added.
 */
import { IP_PLACEHOLDER } from '../model';
import type { Grant } from '../firewalld/grants';
import type { RuntimeDoor } from './doors';

/** The part of a grant this decision reads. */
export type HeldGrant = Pick<Grant, 'zone' | 'rule' | 'src' | 'door' | 'state'>;

/** Why the new config would not make `g` again, or undefined when it would. */
export function whyNotMade(g: HeldGrant, doors: readonly RuntimeDoor[]): string | undefined {
  const door = doors.find((d) => d.name === g.door);
  if (door === undefined) return `door ${g.door} is no longer in the config`;
  const c = door.config;
  if (c.spa !== undefined) {
    return c.spaZone !== undefined && c.spaZone !== g.zone
      ? `door ${g.door} now opens in zone ${c.spaZone}, not ${g.zone}`
      : undefined;
  }
  const fwd = c.firewalld;
  if (fwd === undefined || fwd.action !== 'open') return `door ${g.door} no longer opens firewalld rules`;
  const family = g.rule.startsWith('rule family="ipv6"') ? 6 : 4;
  const made = fwd.rules[family].some(
    (t) => t.rule.split(IP_PLACEHOLDER).join(g.src) === g.rule && (t.zone === undefined || t.zone === g.zone),
  );
  return made ? undefined : `door ${g.door} no longer makes this rule in zone ${g.zone}`;
}

/** The grants a reload to `doors` closes, each with why. */
export function grantsToClose<G extends HeldGrant>(
  grants: readonly G[],
  doors: readonly RuntimeDoor[],
): { grant: G; why: string }[] {
  const out: { grant: G; why: string }[] = [];
  for (const g of grants) {
    if (g.state === 'closing') continue;
    const why = whyNotMade(g, doors);
    if (why !== undefined) out.push({ grant: g, why });
  }
  return out;
}
