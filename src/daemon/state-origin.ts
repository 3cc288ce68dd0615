/**
 * Which persisted entries a door of the current configuration could have
 * made (the EntryOrigin hooks of src/state/origin.ts). commands.json makes the
 * daemon run shell commands as root, grants.json makes it hold and later
 * remove rich rules: an entry no door of knockd.conf describes is refused at
 * start, logged with the file and the entry, and never acted on — a stop
 * command is not run, a rule is neither added nor removed (knockd cannot prove
 * it added it: when in doubt, the firewall is left alone).
 *
 * Only what is read from disk is checked. A stop command pending in memory
 * across a SIGHUP was made by a door of the config running when its knock
 * came (or checked at start), and runs as made; grants held across a reload
 * are handled by reload-grants.ts.
 */
import type { DoorConfig } from '../config/types';
import type { Grant } from '../firewalld/grant-model';
import { IP_PLACEHOLDER, knockerRule } from '../model';
import { FAMILY_BITS, sourcePrefix } from '../decode/network';
import type { EntryOrigin } from '../state/origin';
import { selectCommands, substituteIp } from './command-text';
import type { PersistedStop } from './command-state';

/** A pending stop is taken only if its door is a shell-command door whose stop command for the entry's source is exactly the entry's command. */
export function stopOrigin(doors: readonly DoorConfig[]): EntryOrigin<PersistedStop> {
  return (e) => {
    const door = doors.find((d) => d.name === e.door);
    if (door === undefined) return `door ${e.door} is not in the config`;
    if (door.firewalld !== undefined || door.spa !== undefined)
      return `door ${e.door} runs no shell commands (it opens firewalld rules)`;
    const { stop } = selectCommands(door, e.family);
    if (stop === undefined) return `door ${e.door} has no stop command for IPv${e.family}`;
    let made: string;
    try {
      made = substituteIp(stop, e.src);
    } catch (err) {
      return (err as Error).message;
    }
    return made === e.stopCommand ? undefined : `door ${e.door}'s stop command for ${e.src} is not this command`;
  };
}

/** The part of a grant this decision reads. */
export type GrantOriginEntry = Pick<Grant, 'zone' | 'rule' | 'src' | 'door'>;

/**
 * Why no door of `doors` could have made grant `g`, or undefined when one
 * could: a firewalld open door with a rule template that, with the entry's
 * src, is the entry's rule, in the template's zone (a zone-less template: any
 * zone, firewalld's default zone may have changed since); or an SPA door, the
 * rule one port of its spa_open_ports for that src, in its firewalld_zone
 * (none: any zone).
 */
export function whyNoDoorMade(g: GrantOriginEntry, doors: readonly DoorConfig[]): string | undefined {
  const door = doors.find((d) => d.name === g.door);
  if (door === undefined) return `door ${g.door} is not in the config`;
  const family = g.rule.startsWith('rule family="ipv6"') ? 6 : 4;
  // A network source (firewalld_source_prefix(6)) only from a door with that very prefix; SPA doors grant addresses.
  const prefix = door.spa === undefined ? (door.sourcePrefix?.[family] ?? FAMILY_BITS[family]) : FAMILY_BITS[family];
  if (sourcePrefix(g.src) !== prefix)
    return `door ${g.door} grants ${prefix === FAMILY_BITS[family] ? 'single addresses' : `/${prefix} networks`}, not ${g.src}`;
  if (door.spa !== undefined) {
    if (door.spaZone !== undefined && door.spaZone !== g.zone)
      return `SPA door ${g.door} opens in zone ${door.spaZone}, not ${g.zone}`;
    const made = door.spa.openPorts.some(
      (p) => knockerRule(family, g.src, `port port="${p.port}" protocol="${p.proto}"`) === g.rule,
    );
    return made ? undefined : `SPA door ${g.door} makes no such rule for ${g.src} (spa_open_ports)`;
  }
  const fwd = door.firewalld;
  if (fwd === undefined || fwd.action !== 'open') return `door ${g.door} opens no firewalld rules`;
  const made = fwd.rules[family].some(
    (t) => t.rule.split(IP_PLACEHOLDER).join(g.src) === g.rule && (t.zone === undefined || t.zone === g.zone),
  );
  return made ? undefined : `door ${g.door} makes no such rule for ${g.src} in zone ${g.zone}`;
}

/** grants.json's origin check; a refused entry's rule is left as it is in firewalld (say so in the log). */
export function grantOrigin(doors: readonly DoorConfig[]): EntryOrigin<GrantOriginEntry> {
  return (g) => {
    const why = whyNoDoorMade(g, doors);
    return why === undefined
      ? undefined
      : `${why}; its rule is left as it is in firewalld, neither added nor removed: knockd cannot prove it added it`;
  };
}
