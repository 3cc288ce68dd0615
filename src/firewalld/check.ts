/**
 * `knockd --check` with firewalld reachable: what a config gets wrong about
 * this machine's firewalld — a zone or service that does not exist, and knock
 * ports that the zone already opens (a knock there completes a real
 * connection, and anyone scanning sees the port answer).
 */
import { ruleTemplates } from '../model';
import type { FirewalldClient } from './client';
import type { Config, ConfigIssue, DoorConfig } from '../config/types';
import { IPPROTO_TCP } from '../decode/types';

function portIn(range: string, port: number): boolean {
  const [a, b] = range.split('-').map(Number);
  return b === undefined ? a === port : port >= a && port <= b;
}

/** Zones a door's rules go to (firewalld directives, or converted firewall-cmd command lines). */
export function doorZones(d: DoorConfig, defaultZone: string): string[] {
  const f = d.firewalld;
  return f ? [...new Set(ruleTemplates(f).map((r) => r.zone ?? defaultZone))] : [];
}

export async function firewalldWarnings(config: Config, fw: FirewalldClient): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const warn = (d: DoorConfig, key: string, message: string): void => {
    issues.push({ severity: 'warning', file: config.file, line: d.lines[key] ?? d.line, door: d.name, message });
  };
  const defaultZone = await fw.getDefaultZone();
  const zones = new Set(await fw.getZones());
  const services = new Set(await fw.listServices());
  const openPorts = new Map<string, [string, string][]>();
  const portsOf = async (zone: string): Promise<[string, string][]> => {
    let p = openPorts.get(zone);
    if (p === undefined) {
      p = [...(await fw.getPorts(zone))];
      for (const s of await fw.getServices(zone)) p.push(...(await fw.getServicePorts(s).catch(() => [])));
      openPorts.set(zone, p);
    }
    return p;
  };
  for (const d of config.doors) {
    for (const s of d.firewalld?.services ?? []) {
      if (!services.has(s))
        warn(
          d,
          'FIREWALLD_SERVICE',
          `firewalld has no service "${s}" (see "firewall-cmd --get-services"); the daemon will refuse to start`,
        );
    }
    for (const zone of doorZones(d, defaultZone)) {
      if (!zones.has(zone)) {
        warn(
          d,
          d.firewalld?.from === 'directives' ? 'FIREWALLD_ZONE' : 'START_COMMAND',
          `firewalld has no zone "${zone}" (zones: ${[...zones].join(', ')})`,
        );
        continue;
      }
      const open = await portsOf(zone);
      for (const k of d.sequence) {
        const proto = k.proto === IPPROTO_TCP ? 'tcp' : 'udp';
        if (open.some(([range, p]) => p === proto && portIn(range, k.port))) {
          warn(
            d,
            'SEQUENCE',
            `knock port ${k.port}/${proto} is open in zone ${zone}: knocks there reach a service, and scanners see it answer; pick closed ports`,
          );
        }
      }
    }
  }
  return issues;
}
