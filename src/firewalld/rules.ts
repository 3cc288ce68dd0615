/**
 * Rich-rule text for a grant. The text is exactly what firewalld prints back
 * in `firewall-cmd --list-rich-rules`, so it doubles as the rule's identity
 * (firewalld keys its own timeouts by it).
 */
import type { FirewalldDoor } from '../model';

export type RuleTarget = { service: string } | { port: string; proto: string };

/** `rule family="ipv4" source address="IP" service name="ssh" accept` (or `port port="22" protocol="tcp"`). */
export function richRule(family: 4 | 6, source: string, target: RuleTarget): string {
  const what = 'service' in target ? `service name="${target.service}"` : `port port="${target.port}" protocol="${target.proto}"`;
  return `rule family="ipv${family}" source address="${source}" ${what} accept`;
}

/** Every rule target a firewalld door names: one per service, then one per port. */
export function ruleTargets(door: FirewalldDoor): RuleTarget[] {
  return [...door.services.map((service) => ({ service })), ...door.ports.map((p) => ({ port: p.port, proto: p.proto }))];
}
