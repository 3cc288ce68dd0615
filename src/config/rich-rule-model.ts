/**
 * The parsed form of a firewalld rich rule, shared by the parser, the checks
 * and the printer (rich-rule.ts, rich-rule-check.ts): the elements a rule
 * may hold, by slot, with their attributes, and the `limit value=` grammar.
 */

export type Slot = 'source' | 'destination' | 'element' | 'log' | 'audit' | 'action';

export interface ElementSpec {
  slot: Slot;
  /** Attributes the element takes. */
  attrs: readonly string[];
  /** Exactly one attribute, right after the element name (`service name=…`). */
  single?: boolean;
  /** Accepts a nested `limit value=…` (log, audit, actions). */
  limit?: boolean;
}

/** The elements we understand (firewalld 1.x also has nflog and tcp-mss-clamp: not ours, rule goes to the shell). */
export const ELEMENTS: Readonly<Record<string, ElementSpec>> = {
  // Only what a door can make: its rules are for the knocker's own source address
  // (no mac, no ipset, no `not`), so a rule without one is not ours (the shell runs it).
  source: { slot: 'source', attrs: ['address'] },
  destination: { slot: 'destination', attrs: ['address'] },
  service: { slot: 'element', attrs: ['name'], single: true },
  protocol: { slot: 'element', attrs: ['value'], single: true },
  'icmp-block': { slot: 'element', attrs: ['name'], single: true },
  'icmp-type': { slot: 'element', attrs: ['name'], single: true },
  port: { slot: 'element', attrs: ['port', 'protocol'] },
  'source-port': { slot: 'element', attrs: ['port', 'protocol'] },
  'forward-port': { slot: 'element', attrs: ['port', 'protocol', 'to-port', 'to-addr'] },
  masquerade: { slot: 'element', attrs: [] },
  log: { slot: 'log', attrs: ['prefix', 'level'], limit: true },
  audit: { slot: 'audit', attrs: [], limit: true },
  accept: { slot: 'action', attrs: [], limit: true },
  drop: { slot: 'action', attrs: [], limit: true },
  reject: { slot: 'action', attrs: ['type'], limit: true },
  mark: { slot: 'action', attrs: ['set'], limit: true },
};

/** One parsed element with its attributes. */
export interface Clause {
  name: string;
  attrs: Map<string, string>;
  /** Normalised limit value (`1/m`), when given. */
  limit?: string;
}

export interface ParsedRule {
  priority: number;
  family?: 'ipv4' | 'ipv6';
  clauses: Partial<Record<Slot, Clause>>;
}

/** `limit value=…` as firewalld stores it: long units shortened (`1/minute` → `1/m`). */
export function normalizeLimit(value: string): string {
  const parts = value.split('/');
  if (parts.length === 2 && ['second', 'minute', 'hour', 'day'].includes(parts[1]))
    return `${parts[0]}/${parts[1].slice(0, 1)}`;
  return value;
}

/** Rich_Limit.check(): `N/s|m|h|d`, N ≥ 1, and not `1/d`. */
export function limitOk(value: string): boolean {
  const m = /^([0-9]+)\/([smhd])$/.exec(value);
  if (!m) return false;
  const rate = Number(m[1]);
  return rate >= 1 && !(rate === 1 && m[2] === 'd');
}
