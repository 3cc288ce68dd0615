/**
 * Policy for an authenticated SPA message (fwknopd's access.c and the tail of
 * incoming_spa.c): source, age, allow IP, message type, ports, timeout.
 * Pure; the clock is a parameter.
 */
import { canonicalAddress, parseAddress } from '../decode/address';
import type { SpaDoor, SpaPortSpec } from '../model';
import { cidrText, sourceAllowed } from './cidr';
import { refuse } from './types';
import type { SpaGrant, SpaMessage, SpaRefusal } from './types';

/** fwknopd's MAX_SPA_PACKET_AGE: largest |now − timestamp|, seconds, in both directions. */
export const SPA_MAX_PACKET_AGE = 120;

export type SpaAccessResult = { ok: true; grant: SpaGrant } | SpaRefusal;

/** Requested ports in `proto/port` form, for messages. */
function portsText(list: readonly { proto: string; port: number }[]): string {
  return list.map((p) => `${p.proto}/${p.port}`).join(',');
}

/**
 * Decides what an authenticated message from `source` may open through `door`.
 * @param source the packet's source address (IPv4 or IPv6 text)
 * @param nowMs  current Unix time in milliseconds (injectable clock)
 * @param maxAge seconds (default 120)
 */
export function checkSpaAccess(
  msg: SpaMessage,
  source: string,
  door: SpaDoor,
  nowMs: number,
  maxAge = SPA_MAX_PACKET_AGE,
): SpaAccessResult {
  if (!sourceAllowed(door.sources, source)) {
    return refuse('source', `source ${source} is not in spa_source (${door.sources.map(cidrText).join(',')})`);
  }

  const skew = Math.floor(nowMs / 1000) - msg.timestamp;
  if (skew > maxAge)
    return refuse(
      'stale',
      `SPA packet is ${skew} s old (at most ${maxAge} s; replayed, or the client's clock is behind)`,
    );
  if (-skew > maxAge)
    return refuse(
      'future',
      `SPA packet is timestamped ${-skew} s in the future (at most ${maxAge} s; the client's clock is ahead)`,
    );

  if (msg.kind === 'nat')
    return refuse(
      'nat',
      `NAT access message (type ${msg.type}, fwknop -N/--nat-local) is not supported; nothing opened`,
    );
  if (msg.kind === 'command')
    return refuse('command', 'command message (fwknop --server-cmd) is not supported; nothing opened');

  let address: string;
  if (msg.allowIp === '0.0.0.0') {
    if (door.requireSourceAddress) {
      return refuse(
        'require-source',
        'allow IP 0.0.0.0 (fwknop -s) is refused by spa_require_source_address; use fwknop -a <IP>',
      );
    }
    const canon = canonicalAddress(source);
    if (canon === undefined) return refuse('source', `source "${source}" is not an IP address`);
    address = canon;
  } else {
    address = msg.allowIp;
  }
  const family = (parseAddress(address) as { family: 4 | 6 }).family;

  const ports: SpaPortSpec[] = [];
  for (const want of msg.access) {
    const allowed = door.openPorts.some((p) => p.proto === want.proto && p.port === want.port);
    if (!allowed) {
      return refuse(
        'port',
        `${want.proto}/${want.port} is not in spa_open_ports (${portsText(door.openPorts)}); nothing of ${portsText(msg.access)} opened`,
      );
    }
    if (!ports.some((p) => p.proto === want.proto && p.port === want.port))
      ports.push({ proto: want.proto as SpaPortSpec['proto'], port: want.port });
  }

  const timeout =
    msg.clientTimeout !== undefined && msg.clientTimeout > 0
      ? Math.min(msg.clientTimeout, door.maxTimeout)
      : door.defaultTimeout;
  return { ok: true, grant: { door: door.name, address, family, ports, timeout } };
}
