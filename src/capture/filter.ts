/**
 * The kernel BPF filter (pcap-filter syntax) built from the doors, so the
 * daemon only wakes for packets that can be knocks: TCP/UDP to a knock port,
 * addressed to this host (or to a door's Target). TCP flags are checked in the
 * matcher, because libpcap cannot test TCP header bytes behind an IPv6 header.
 */
import type { KnockPort } from '../model';
import { IPPROTO_TCP } from '../decode/types';

export interface FilterDoor {
  sequence: readonly KnockPort[];
  target?: string;
}

function portClause(ports: readonly KnockPort[]): string {
  const tcp = [...new Set(ports.filter((p) => p.proto === IPPROTO_TCP).map((p) => p.port))].sort((a, b) => a - b);
  const udp = [...new Set(ports.filter((p) => p.proto !== IPPROTO_TCP).map((p) => p.port))].sort((a, b) => a - b);
  const parts: string[] = [];
  if (tcp.length) parts.push(`(tcp dst port ${tcp.join(' or ')})`);
  if (udp.length) parts.push(`(udp dst port ${udp.join(' or ')})`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(' or ')})`;
}

function hostClause(addrs: readonly string[]): string {
  return `(dst host ${addrs.join(' or ')})`;
}

/**
 * `localAddrs` are the interface's own addresses. When it has none yet, the
 * port clause alone is used for doors without a Target (the matcher checks
 * the destination anyway).
 */
export function buildFilter(
  doors: readonly FilterDoor[],
  localAddrs: readonly string[],
  spaPorts: readonly number[] = [],
): string {
  const local = doors.filter((d) => d.target === undefined).flatMap((d) => d.sequence);
  const groups: string[] = [];
  if (local.length)
    groups.push(localAddrs.length ? `(${hostClause(localAddrs)} and ${portClause(local)})` : portClause(local));
  const byTarget = new Map<string, KnockPort[]>();
  for (const d of doors) {
    if (d.target === undefined) continue;
    byTarget.set(d.target, [...(byTarget.get(d.target) ?? []), ...d.sequence]);
  }
  for (const [target, ports] of byTarget) groups.push(`(${hostClause([target])} and ${portClause(ports)})`);
  if (spaPorts.length) {
    // SPA: only UDP lengths an SPA packet can have (payload 140..399, UDP length 148..407) reach the process.
    // libpcap takes udp[] only over IPv4; over IPv6 (no extension headers) the payload length is ip6[4:2].
    const ports = [...new Set(spaPorts)].sort((a, b) => a - b).join(' or ');
    const spa = `((ip and udp dst port ${ports} and udp[4:2] >= 148 and udp[4:2] <= 407) or (ip6 and ip6[6] = 17 and udp dst port ${ports} and ip6[4:2] >= 148 and ip6[4:2] <= 407))`;
    groups.push(localAddrs.length ? `(${hostClause(localAddrs)} and ${spa})` : spa);
  }
  return groups.join(' or ');
}
