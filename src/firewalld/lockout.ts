/**
 * Lock-out safety, the part firewalld answers (issue #19, item 2), with the
 * config-only part (src/config/lockout.ts) in front: `knockd --check` prints
 * them, the daemon logs them once at start (`logLockoutWarnings`).
 *
 * What is asked of firewalld (read only, over D-Bus): the default zone; per
 * zone a door opens in, the services and ports it opens to everyone at
 * runtime (getServices, getPorts) and in its permanent configuration
 * (config.getZoneByName, then config.zone getServices and getPorts), and the
 * ports of those services (getServiceSettings2).
 *
 *  - the service or port an open door grants is already open to everyone in
 *    its zone: the knock protects nothing (the tutorials' first step, "take
 *    ssh out of the zone", was forgotten);
 *  - a shell command uses iptables/ip6tables while firewalld runs: every
 *    firewalld reload flushes those rules (and a knock may open nothing).
 */
import { doorCommands, lockoutConfigWarnings } from '../config/lockout';
import { formatIssue } from '../config/issues';
import type { Config, ConfigIssue, DoorConfig } from '../config/types';
import { ruleTemplates } from '../model';
import type { FirewalldClient } from './client';
import { doorZones } from './check';

/** What one open door grants in a zone, from its directives or its rule templates. */
interface Grant {
  services: string[];
  ports: { port: string; proto: string }[];
}

function granted(d: DoorConfig): Grant {
  const f = d.firewalld!;
  const g: Grant = { services: [...f.services], ports: f.ports.map((p) => ({ port: p.port, proto: p.proto })) };
  if (f.from === 'commands') {
    for (const r of ruleTemplates(f)) {
      const s = /\bservice name="([^"]+)"/.exec(r.rule);
      if (s) g.services.push(s[1]);
      const p = /\bport port="([\d-]+)" protocol="(\w+)"/.exec(r.rule);
      if (p) g.ports.push({ port: p[1], proto: p[2] });
    }
  }
  return { services: [...new Set(g.services)], ports: g.ports };
}

const within = (range: string, port: string): boolean => {
  const [a, b = a] = range.split('-').map(Number);
  const [x, y = x] = port.split('-').map(Number);
  return x >= a && y <= b;
};

/** A shell command that runs iptables, ip6tables (or their -legacy/-nft/-restore forms). */
const IPTABLES = /(?:^|[\s;&|/(`])ip6?tables(?:-legacy|-nft)?(?:-restore)?(?=\s|$)/;

interface ZoneView {
  runtime: { services: string[]; ports: [string, string][] };
  permanent: { services: string[]; ports: [string, string][] } | undefined;
}

export async function lockoutFirewalldWarnings(config: Config, fw: FirewalldClient): Promise<ConfigIssue[]> {
  const out: ConfigIssue[] = [];
  const warn = (d: DoorConfig, key: string, message: string): void => {
    out.push({ severity: 'warning', file: config.file, line: d.lines[key] ?? d.line, door: d.name, message });
  };
  const defaultZone = await fw.getDefaultZone();
  const zones = new Map<string, ZoneView>();
  const servicePorts = new Map<string, [string, string][]>();
  const portsOf = async (s: string): Promise<[string, string][]> => {
    let p = servicePorts.get(s);
    if (p === undefined) servicePorts.set(s, (p = await fw.getServicePorts(s).catch(() => [])));
    return p;
  };
  const zone = async (z: string): Promise<ZoneView> => {
    let v = zones.get(z);
    if (v === undefined) {
      v = {
        runtime: { services: await fw.getServices(z), ports: await fw.getPorts(z) },
        permanent: await fw.getPermanentZone(z).catch(() => undefined),
      };
      zones.set(z, v);
    }
    return v;
  };
  /** Where `what` is open to everyone in zone z: 'runtime', 'permanent', both, or ''. */
  const openIn = async (
    v: ZoneView,
    test: (services: string[], ports: [string, string][]) => boolean | Promise<boolean>,
  ): Promise<string> => {
    const rt = await test(v.runtime.services, v.runtime.ports);
    const pm = v.permanent !== undefined && (await test(v.permanent.services, v.permanent.ports));
    return rt && pm ? 'runtime and permanent' : rt ? 'runtime' : pm ? 'permanent' : '';
  };
  const fix = (where: string, z: string, what: string): string =>
    (where.includes('runtime') ? `firewall-cmd --zone=${z} --remove-${what}` : '') +
    (where === 'runtime and permanent' ? ' and ' : '') +
    (where.includes('permanent') ? `firewall-cmd --permanent --zone=${z} --remove-${what}` : '');

  for (const d of config.doors) {
    const f = d.firewalld;
    if (f?.action === 'open') {
      const g = granted(d);
      const key =
        f.from === 'directives' ? (g.services.length ? 'FIREWALLD_SERVICE' : 'FIREWALLD_PORT') : 'START_COMMAND';
      for (const z of doorZones(d, defaultZone)) {
        const v = await zone(z).catch(() => undefined);
        if (v === undefined) continue; // a zone that does not exist: check.ts says so
        for (const s of g.services) {
          const where = await openIn(v, (services) => services.includes(s));
          if (where)
            warn(
              d,
              key,
              `service "${s}" is already open to everyone in zone ${z} (${where}): the knock protects nothing. ` +
                `Fix: ${fix(where, z, `service=${s}`)}`,
            );
        }
        for (const p of g.ports) {
          const where = await openIn(v, async (services, ports) => {
            if (ports.some(([port, proto]) => proto === p.proto && within(port, p.port))) return true;
            for (const s of services)
              if ((await portsOf(s)).some(([port, proto]) => proto === p.proto && within(port, p.port))) return true;
            return false;
          });
          if (where)
            warn(
              d,
              key,
              `port ${p.port}/${p.proto} is already open to everyone in zone ${z} (${where}, as a port or through a service): ` +
                `the knock protects nothing. Fix: remove it from the zone (firewall-cmd ${where.includes('permanent') ? '--permanent ' : ''}--zone=${z} --list-all shows what opens it)`,
            );
        }
      }
    }
    for (const [k, cmd] of doorCommands(d)) {
      if (IPTABLES.test(cmd))
        warn(
          d,
          k,
          'this command runs iptables/ip6tables on a host where firewalld runs: every firewalld reload (and restart) ' +
            "flushes such rules, and firewalld's own chains may decide first. Fix: use firewalld_service / firewalld_port, " +
            'or firewall-cmd --add-rich-rule lines (carried out natively)',
        );
    }
  }
  return out;
}

/** Everything: the config-only warnings, and firewalld's when it answers (`fw` undefined or failing: config only). */
export async function lockoutWarnings(config: Config, fw: FirewalldClient | undefined): Promise<ConfigIssue[]> {
  const out = lockoutConfigWarnings(config);
  if (fw !== undefined) out.push(...(await lockoutFirewalldWarnings(config, fw).catch(() => [])));
  return out.sort((a, b) => a.line - b.line);
}

/** The daemon at start: the same warnings, each logged once. */
export async function logLockoutWarnings(
  log: { warn(msg: string): void },
  config: Config,
  fw: FirewalldClient | undefined,
): Promise<void> {
  for (const i of await lockoutWarnings(config, fw)) log.warn(`lock-out check: ${formatIssue(i)}`);
}
