/**
 * The kernel BPF filter (pcap-filter syntax) built from the doors, so the
 * daemon only wakes for packets that can be knocks: TCP/UDP to a knock port
 * (to a door's Target only, for a door that has one). TCP flags are checked in the
 * matcher, because libpcap cannot test TCP header bytes behind an IPv6 header.
 */
import type { KnockPort } from '../model';
import { IPPROTO_TCP } from '../decode/types';

export interface FilterDoor {
  sequence: readonly KnockPort[];
  /** More ports to take for this door (a one-time door's later sequences). */
  filterPorts?: readonly KnockPort[];
  target?: string;
}

const portsOf = (d: FilterDoor): readonly KnockPort[] =>
  d.filterPorts ? [...d.sequence, ...d.filterPorts] : d.sequence;

function portClause(ports: readonly KnockPort[]): string {
  const tcp = [...new Set(ports.filter((p) => p.proto === IPPROTO_TCP).map((p) => p.port))].sort((a, b) => a - b);
  const udp = [...new Set(ports.filter((p) => p.proto !== IPPROTO_TCP).map((p) => p.port))].sort((a, b) => a - b);
  const parts: string[] = [];
  if (tcp.length) parts.push(`(tcp dst port ${tcp.join(' or ')})`);
  if (udp.length) parts.push(`(udp dst port ${udp.join(' or ')})`);
  return parts.length === 1 ? parts[0] : `(${parts.join(' or ')})`;
}

function hostClause(addrs: readonly string[]): string {
  return `(dst host ${addrs.join(' or ')})`;
}

/**
 * The interface's own addresses are not in the filter: the filter is locked
 * in each capture process (SO_LOCK_FILTER, issue 18.9), so a filter that
 * followed the addresses would need a new capture process at every address
 * change, or when one of several interfaces goes down, and knocks on the
 * others would be lost meanwhile. Doors without a Target take every packet
 * to their ports, and the matcher checks the destination against the local
 * addresses it is sent (`_localAddrs` is kept for the caller's signature).
 * A door's Target is fixed by the config, so it stays in.
 */
export function buildFilter(
  doors: readonly FilterDoor[],
  _localAddrs: readonly string[],
  spaPorts: readonly number[] = [],
): string {
  const local = doors.filter((d) => d.target === undefined).flatMap(portsOf);
  const groups: string[] = [];
  if (local.length) groups.push(portClause(local));
  const byTarget = new Map<string, KnockPort[]>();
  for (const d of doors) {
    if (d.target === undefined) continue;
    byTarget.set(d.target, [...(byTarget.get(d.target) ?? []), ...portsOf(d)]);
  }
  for (const [target, ports] of byTarget) groups.push(`(${hostClause([target])} and ${portClause(ports)})`);
  if (spaPorts.length) {
    // SPA: only UDP lengths an SPA packet can have (payload 140..399, UDP length 148..407) reach the process.
    // libpcap takes udp[] only over IPv4; over IPv6 (no extension headers) the payload length is ip6[4:2].
    const ports = [...new Set(spaPorts)].sort((a, b) => a - b).join(' or ');
    groups.push(
      `((ip and udp dst port ${ports} and udp[4:2] >= 148 and udp[4:2] <= 407) or (ip6 and ip6[6] = 17 and udp dst port ${ports} and ip6[4:2] >= 148 and ip6[4:2] <= 407))`,
    );
  }
  return groups.join(' or ');
}
