/**
 * The checks firewalld applies to a parsed rich rule (Rich_Rule.check() and
 * the value checks it calls): families, addresses, ports, protocols, ICMP
 * reject types, log levels, limits. A rule that passes is one firewalld takes.
 */

import { isIPv4, isIPv6 } from 'node:net';
import { IP_PLACEHOLDER } from '../model';
import { limitOk, type ParsedRule } from './rich-rule-model';

/** The placeholder knockd replaces with the knocker's address. */
const IP_TOKEN = IP_PLACEHOLDER;

const REJECT_TYPES: Readonly<Record<'ipv4' | 'ipv6', readonly string[]>> = {
  ipv4: [
    'icmp-host-prohibited',
    'host-prohib',
    'icmp-net-unreachable',
    'net-unreach',
    'icmp-host-unreachable',
    'host-unreach',
    'icmp-port-unreachable',
    'port-unreach',
    'icmp-proto-unreachable',
    'proto-unreach',
    'icmp-net-prohibited',
    'net-prohib',
    'tcp-reset',
    'tcp-rst',
    'icmp-admin-prohibited',
    'admin-prohib',
  ],
  ipv6: [
    'icmp6-adm-prohibited',
    'adm-prohibited',
    'icmp6-no-route',
    'no-route',
    'icmp6-addr-unreachable',
    'addr-unreach',
    'icmp6-port-unreachable',
    'port-unreach',
    'tcp-reset',
  ],
};

const LOG_LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'];

/** Port protocols firewalld accepts in port / source-port / forward-port. */
const PORT_PROTOCOLS = ['tcp', 'udp', 'sctp', 'dccp'];

/**
 * `protocol value=` names we accept: standard /etc/protocols names (firewalld
 * looks names up with getprotobyname, so an exotic one is left to the shell).
 */
const PROTOCOL_NAMES = [
  'ip',
  'icmp',
  'igmp',
  'ggp',
  'ipencap',
  'st',
  'tcp',
  'egp',
  'igp',
  'pup',
  'udp',
  'hmp',
  'xns-idp',
  'rdp',
  'iso-tp4',
  'dccp',
  'xtp',
  'ddp',
  'idpr-cmtp',
  'ipv6',
  'ipv6-route',
  'ipv6-frag',
  'idrp',
  'rsvp',
  'gre',
  'esp',
  'ah',
  'skip',
  'ipv6-icmp',
  'ipv6-nonxt',
  'ipv6-opts',
  'rspf',
  'vmtp',
  'eigrp',
  'ospf',
  'ax.25',
  'ipip',
  'etherip',
  'encap',
  'pim',
  'ipcomp',
  'vrrp',
  'l2tp',
  'isis',
  'sctp',
  'fc',
  'mobility-header',
  'udplite',
  'mpls-in-ip',
  'manet',
  'hip',
  'shim6',
  'wesp',
  'rohc',
  'ethernet',
];

function digitsUpTo(s: string, max: number): boolean {
  return /^[0-9]{1,10}$/.test(s) && Number(s) <= max;
}

/** functions.check_port, numbers only: `N` or `N-M` (named ports are left to the shell). */
function portOk(p: string | undefined): boolean {
  if (p === undefined) return false;
  const parts = p.split('-');
  return parts.length <= 2 && parts.every((x) => digitsUpTo(x, 65535));
}

/** An IPv4 literal as inet_pton takes it (Node's check agrees: no leading zeros). */
function ipv4Ok(s: string): boolean {
  return /^[0-9.]+$/.test(s) && isIPv4(s);
}

/** An IPv6 literal; no zone index (`%…`), no brackets. */
function ipv6Ok(s: string): boolean {
  return /^[0-9A-Fa-f:.]+$/.test(s) && isIPv6(s);
}

/** functions.check_address: address with optional /prefix (IPv4 also /dotted.mask), or the %IP% placeholder. */
function addressOk(family: 'ipv4' | 'ipv6', value: string): boolean {
  if (value === IP_TOKEN) return true;
  const slash = value.indexOf('/');
  const addr = slash < 0 ? value : value.slice(0, slash);
  const mask = slash < 0 ? undefined : value.slice(slash + 1);
  if (family === 'ipv4') {
    if (!ipv4Ok(addr)) return false;
    return mask === undefined || (mask.includes('.') ? ipv4Ok(mask) : digitsUpTo(mask, 32));
  }
  return ipv6Ok(addr) && (mask === undefined || digitsUpTo(mask, 128));
}

/** functions.check_single_address (forward-port to-addr), or the placeholder. */
function singleAddressOk(family: 'ipv4' | 'ipv6', value: string): boolean {
  return value === IP_TOKEN || (family === 'ipv4' ? ipv4Ok(value) : ipv6Ok(value));
}

/** functions.checkUINT32 on the forms we accept: decimal or 0x hex. */
function uint32Ok(s: string): boolean {
  if (!/^(0|[1-9][0-9]{0,9}|0[xX][0-9a-fA-F]{1,8})$/.test(s)) return false;
  return Number(s) <= 0xffffffff;
}

/**
 * Rich_Rule.check(): the combinations firewalld refuses, so that we never
 * claim a rule firewall-cmd would reject. Returns false to give up.
 */
export function checkRule(r: ParsedRule): boolean {
  const { family, priority } = r;
  const { source, destination, element, log, audit, action } = r.clauses;

  // No value may carry the placeholder except whole addresses (checked below).
  for (const c of Object.values(r.clauses)) {
    for (const [name, value] of c.attrs) {
      if (value.includes(IP_TOKEN) && !(value === IP_TOKEN && (name === 'address' || name === 'to-addr'))) return false;
    }
    if (c.limit !== undefined && !limitOk(c.limit)) return false;
  }

  if (family === undefined && (source?.attrs.has('address') || destination || element?.name === 'forward-port'))
    return false;
  if (!element && (!log || priority === 0)) {
    if (!action) return false;
    if (!source && !destination && priority === 0) return false;
  }
  if (!['icmp-block', 'forward-port', 'masquerade'].includes(element?.name ?? '') && !log && !audit && !action)
    return false;

  // Every rule of ours is for one knocker: a source address (the placeholder, or the knocker's own).
  const addr = source?.attrs.get('address');
  if (addr === undefined || !addressOk(family!, addr)) return false;
  if (destination) {
    const dst = destination.attrs.get('address');
    if (dst === undefined || !addressOk(family!, dst)) return false;
  }

  if (element) {
    const a = element.attrs;
    switch (element.name) {
      case 'service':
      case 'icmp-block':
      case 'icmp-type':
        // Existence is checked by firewalld itself; keep to plausible names.
        if (!/^[A-Za-z0-9_.+-]+$/.test(a.get('name')!)) return false;
        if (element.name === 'icmp-block' && action) return false;
        break;
      case 'protocol': {
        const v = a.get('value')!;
        if (!(digitsUpTo(v, 255) || PROTOCOL_NAMES.includes(v))) return false;
        break;
      }
      case 'port':
      case 'source-port':
        if (!portOk(a.get('port')) || !PORT_PROTOCOLS.includes(a.get('protocol') ?? '')) return false;
        break;
      case 'forward-port': {
        if (!portOk(a.get('port')) || !PORT_PROTOCOLS.includes(a.get('protocol') ?? '')) return false;
        const toPort = a.get('to-port');
        const toAddr = a.get('to-addr');
        if (toPort === undefined && toAddr === undefined) return false;
        if (toPort !== undefined && !portOk(toPort)) return false;
        if (toAddr !== undefined && !singleAddressOk(family!, toAddr)) return false;
        if (action) return false;
        break;
      }
      case 'masquerade':
        if (action) return false;
        break;
    }
  }

  if (log) {
    const prefix = log.attrs.get('prefix');
    const level = log.attrs.get('level');
    if (prefix !== undefined && prefix.length > 127) return false;
    if (level !== undefined && !LOG_LEVELS.includes(level)) return false;
  }
  if (audit && !['accept', 'reject', 'drop'].includes(action?.name ?? '')) return false;
  if (action?.name === 'reject') {
    const type = action.attrs.get('type');
    if (type !== undefined && (family === undefined || !REJECT_TYPES[family].includes(type))) return false;
  }
  if (action?.name === 'mark') {
    const set = action.attrs.get('set');
    if (set === undefined) return false;
    const parts = set.split('/');
    if (parts.length > 2 || !parts.every(uint32Ok)) return false;
  }
  return true;
}

/** ` name="value"` for each attribute present, in the given order. */
