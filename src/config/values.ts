/**
 * Value parsers of the door directives other than the shared grammars
 * (sequence.ts, seconds.ts, zone.ts, yesno.ts): TCPFlags, Target,
 * firewalld_service, firewalld_port. Pure; they return error messages
 * rather than throwing, at most one per line (see ListProblems).
 */

import { canonicalAddress } from '../decode/address';
import { TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TH_URG } from '../decode/types';
import { clip, ListProblems, trimAscii } from './text';
import type { FirewalldDoor, TcpFlagRule } from './types';

const TCP_FLAGS = new Map<string, number>([
  ['FIN', TH_FIN],
  ['SYN', TH_SYN],
  ['RST', TH_RST],
  ['PSH', TH_PSH],
  ['ACK', TH_ACK],
  ['URG', TH_URG],
]);

const SERVICE_RE = /^[A-Za-z0-9_.\-+]+$/;
const FW_PORT_RE = /^(\d+)(?:-(\d+))?\/([A-Za-z]+)$/;
type FwProto = FirewalldDoor['ports'][number]['proto'];
const FW_PROTOS = new Set<FwProto>(['tcp', 'udp', 'sctp', 'dccp']);

/** `syn,!ack,...`, case-insensitive. */
export function parseTcpFlags(value: string): { rule: TcpFlagRule; errors: string[] } {
  const rule: TcpFlagRule = { set: 0, clear: 0 };
  const expected = '(expected fin, syn, rst, psh, ack, urg, each optionally with !)';
  if (value === '') return { rule, errors: [`TCPFlags is empty ${expected}; leave the line out to accept any flags`] };

  const bad = new ListProblems();
  const both = new Set<string>();
  for (const raw of value.split(',')) {
    const item = trimAscii(raw);
    if (item === '') {
      bad.add(`empty item in TCPFlags "${clip(value)}" (a stray comma?)`);
      continue;
    }
    const negated = item.startsWith('!');
    const flagName = negated ? item.slice(1) : item;
    const bit = TCP_FLAGS.get(flagName.toUpperCase());
    if (bit === undefined) {
      bad.add(`unknown TCP flag "${clip(flagName)}" ${expected}`);
      continue;
    }
    if (negated) rule.clear |= bit;
    else rule.set |= bit;
    if (rule.set & rule.clear & bit) both.add(flagName.toLowerCase());
  }
  for (const f of both) bad.add(`TCP flag "${f}" is both required and excluded ("${f}" and "!${f}"): keep one`);
  return { rule, errors: bad.errors() };
}

/**
 * Returns why `value` is not a usable IP address, or undefined if it is one.
 * Uses the decoder's strict inet_pton grammar, so that a Target that passes
 * here is one the packet path can compare against.
 */
export function checkAddress(value: string): string | undefined {
  if (value === '') return 'is empty: give an IPv4 or IPv6 address';
  if (value.includes('%')) return `"${clip(value)}" has a zone index (%...); give the plain address`;
  if (canonicalAddress(value) === undefined)
    return `"${clip(value)}" is not an IPv4 or IPv6 address (host names and prefixes are not accepted)`;
  return undefined;
}

/** `ssh,http,...`: firewalld service names. */
export function parseServices(value: string): { services: string[]; errors: string[] } {
  const services: string[] = [];
  if (value === '') return { services, errors: ['firewalld_service is empty: name a firewalld service, e.g. ssh'] };
  const bad = new ListProblems();
  for (const raw of value.split(',')) {
    const s = trimAscii(raw);
    if (s === '') bad.add(`empty item in firewalld_service "${clip(value)}" (a stray comma?)`);
    else if (!SERVICE_RE.test(s))
      bad.add(`invalid firewalld service name "${clip(s)}": use letters, digits, ".", "_", "-" or "+"`);
    else services.push(s);
  }
  return { services, errors: bad.errors() };
}

/** `22/tcp,60000-61000/udp,...`: firewalld's port syntax. */
export function parseFirewalldPorts(value: string): { ports: FirewalldDoor['ports']; errors: string[] } {
  const ports: FirewalldDoor['ports'] = [];
  const form = 'expected PORT/PROTO or FROM-TO/PROTO, e.g. 22/tcp or 60000-61000/udp';
  if (value === '') return { ports, errors: [`firewalld_port is empty (${form})`] };
  const bad = new ListProblems();
  for (const raw of value.split(',')) {
    const item = trimAscii(raw);
    if (item === '') {
      bad.add(`empty item in firewalld_port "${clip(value)}" (a stray comma?)`);
      continue;
    }
    const m = FW_PORT_RE.exec(item);
    if (m === null) {
      bad.add(`invalid firewalld_port "${clip(item)}" (${form})`);
      continue;
    }
    const from = Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : undefined;
    const proto = (m[3] ?? '').toLowerCase();
    const badPort = [from, to].find((p) => p !== undefined && (p < 1 || p > 65535));
    if (badPort !== undefined) {
      bad.add(`port ${clip(String(badPort))} in firewalld_port "${clip(item)}" is out of range (1-65535)`);
      continue;
    }
    if (to !== undefined && to < from) {
      bad.add(`port range ${from}-${to} in firewalld_port "${clip(item)}" is not ascending: write ${to}-${from}`);
      continue;
    }
    if (!isFwProto(proto)) {
      bad.add(
        `unknown protocol "${clip(m[3] ?? '')}" in firewalld_port "${clip(item)}" (expected tcp, udp, sctp or dccp)`,
      );
      continue;
    }
    ports.push({ port: to !== undefined ? `${from}-${to}` : `${from}`, proto });
  }
  return { ports, errors: bad.errors() };
}

function isFwProto(p: string): p is FwProto {
  return FW_PROTOS.has(p as FwProto);
}
