/**
 * Recognise the `firewall-cmd --add-rich-rule=…` / `--remove-rich-rule=…`
 * command lines that knockd tutorials put in Start_Command / Stop_Command, so
 * the daemon can do the same thing natively over D-Bus instead of forking a
 * shell and a Python interpreter per knock.
 *
 * Recognition is deliberately narrow: exactly one firewall-cmd invocation, a
 * few known options, no shell syntax beyond quoting, and a rich rule this
 * module fully understands. Anything else yields `undefined`, and the daemon
 * runs the command through /bin/sh as knockd would. Never guess.
 *
 * Two parsers are involved, mirroring what really happens:
 *  1. /bin/sh splits and unquotes the command line into argv words
 *     (`shellWords`). The tutorial's
 *       --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"
 *     is, for the shell, ONE word with the inner quotes removed:
 *       --add-rich-rule=rule family=ipv4 source address=%IP% service name=ssh accept
 *  2. firewalld parses that rule text (shlex split, then a small state
 *     machine: firewall/core/rich.py) and prints it back in canonical form
 *     (`normalizeRichRule`), which is what `--list-rich-rules` shows and what
 *     identifies the rule:
 *       rule family="ipv4" source address="%IP%" service name="ssh" accept
 *
 * `%IP%` stays a literal placeholder; it is accepted only as a whole address
 * value (source/destination address, forward-port to-addr) and substituted by
 * the daemon with the knocker's address later.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { IP_PLACEHOLDER, type FirewalldDoor } from '../model';
import { MAX_TIMEOUT_SECONDS } from './seconds';
import { isZoneName } from './zone';

/** What a recognised command does, in firewalld terms. */
export type NativeAction =
  | { kind: 'add'; zone?: string; rule: string; timeout: number /* s, 0 none */ }
  | { kind: 'remove'; zone?: string; rule: string };

const PROGRAMS = new Set(['firewall-cmd', '/bin/firewall-cmd', '/usr/bin/firewall-cmd']);

/** The placeholder knockd replaces with the knocker's address. */
const IP_TOKEN = IP_PLACEHOLDER;

/**
 * Characters allowed outside quotes. Everything else — `; & | < > ( ) $ \``,
 * glob characters `* ? [ ]`, `{ }` (bash brace expansion: /bin/sh is bash on
 * Fedora/RHEL), `~`, `#`, `!`, newline — makes the command "not ours".
 */
const UNQUOTED_SAFE = /^[A-Za-z0-9_\-./:=%+,@]$/;

/**
 * Split a command line into words the way POSIX sh would, for the simple
 * subset we accept: blanks separate words; single quotes are literal; double
 * quotes keep everything but `\` before `$ \` " \`; a backslash outside quotes
 * quotes the next character; adjacent parts form one word.
 * Returns undefined for anything that would make the shell do more than that
 * (expansions, operators, redirections, globbing, comments, newlines), for
 * unterminated quotes, and for characters outside printable ASCII.
 */
export function shellWords(command: string): string[] | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  const n = command.length;
  for (let i = 0; i < n; i++) {
    const c = command[i];
    if (c !== '\t' && (c < ' ' || c > '~')) return undefined; // controls, newline, DEL, non-ASCII
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\') {
      // Backslash outside quotes: the next character, whatever it is, is literal.
      const next = command[i + 1];
      if (next === undefined || next === '\t' || next < ' ' || next > '~') return undefined;
      word += next;
      i++;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) return undefined;
      word += command.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        const d = command[j];
        if (d === undefined) return undefined; // unterminated
        if (d === '"') break;
        if (d === '$' || d === '`') return undefined; // expansion inside double quotes
        if (d === '\\') {
          const next = command[j + 1];
          if (next === undefined) return undefined;
          if (next === '$' || next === '`' || next === '"' || next === '\\') {
            word += next;
            j += 2;
            continue;
          }
          // Any other backslash stays, as in sh.
        }
        word += d;
        j++;
      }
      i = j;
    } else if (UNQUOTED_SAFE.test(c)) {
      word += c;
    } else {
      return undefined;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** firewalld takes a rule's timeout as a D-Bus int32 of seconds (about 68 years): the same bound as knockd.conf's. */
export const MAX_FIREWALLD_TIMEOUT = MAX_TIMEOUT_SECONDS;

/**
 * firewall-cmd's `--timeout` value in seconds: `30`, `30s`, `5m`, `1h` (unit
 * case-insensitive), as firewall-cmd parses it. undefined if invalid or beyond
 * the D-Bus int32 firewalld takes.
 */
export function parseFirewallTimeout(value: string): number | undefined {
  const m = /^([0-9]+)([smhSMH]?)$/.exec(value);
  if (!m) return undefined;
  const mult = { '': 1, s: 1, m: 60, h: 3600 }[m[2].toLowerCase() as '' | 's' | 'm' | 'h'];
  const seconds = Number(m[1]) * mult;
  return seconds <= MAX_FIREWALLD_TIMEOUT ? seconds : undefined;
}

/**
 * Recognise a Start_Command / Stop_Command that is exactly one
 * `firewall-cmd [--zone=Z] --add-rich-rule=R [--timeout=T]` or
 * `firewall-cmd [--zone=Z] --remove-rich-rule=R` (options in any order,
 * `--opt=value` or `--opt value`). The rule comes back in firewalld's
 * canonical text with `%IP%` kept as a placeholder.
 */
export function recognizeFirewallCmd(command: string): NativeAction | undefined {
  const words = shellWords(command);
  if (!words || words.length < 2 || !PROGRAMS.has(words[0])) return undefined;

  const seen = new Map<string, string>();
  for (let i = 1; i < words.length; i++) {
    const w = words[i];
    const m = /^(--zone|--add-rich-rule|--remove-rich-rule|--timeout)(?:=([^]*))?$/.exec(w);
    if (!m) return undefined; // any other option or argument (incl. --permanent, abbreviations)
    const opt = m[1];
    let value = m[2];
    if (value === undefined) {
      // `--opt value`: argparse takes the next word unless it looks like an option.
      value = words[++i];
      if (value === undefined || value.startsWith('-')) return undefined;
    }
    if (seen.has(opt)) return undefined; // repeated option (firewall-cmd would take several rules)
    seen.set(opt, value);
  }

  const add = seen.get('--add-rich-rule');
  const remove = seen.get('--remove-rich-rule');
  if ((add === undefined) === (remove === undefined)) return undefined; // need exactly one

  const zone = seen.get('--zone');
  if (zone !== undefined && !isZoneName(zone)) return undefined; // also rejects empty and %IP%

  const timeoutText = seen.get('--timeout');
  let timeout = 0;
  if (timeoutText !== undefined) {
    if (remove !== undefined) return undefined; // firewall-cmd: "Wrong --timeout usage"
    const t = parseFirewallTimeout(timeoutText);
    if (t === undefined) return undefined;
    timeout = t;
  }

  const rule = normalizeRichRule((add ?? remove)!);
  if (rule === undefined) return undefined;
  const z = zone !== undefined ? { zone } : {};
  return add !== undefined ? { kind: 'add', ...z, rule, timeout } : { kind: 'remove', ...z, rule };
}

// ---------------------------------------------------------------- rich rules

type Token = { kind: 'element'; name: string } | { kind: 'attr'; name: string; value: string };

/**
 * firewalld's rich-rule lexer: shlex (POSIX) split, then `name=value` words are
 * attributes and other words elements. Stricter than shlex on purpose: no
 * backslashes, no control or non-ASCII characters (firewalld silently deletes
 * control characters, tabs included), no quote characters inside values.
 */
function lexRule(rule: string): Token[] | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < rule.length; i++) {
    const c = rule[i];
    if (c < ' ' || c > '~' || c === '\\') return undefined;
    if (c === ' ') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === '"' || c === "'") {
      const end = rule.indexOf(c, i + 1);
      if (end < 0) return undefined;
      word += rule.slice(i + 1, end);
      inWord = true;
      i = end;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);

  const tokens: Token[] = [];
  for (const w of words) {
    if (w.includes('"') || w.includes("'")) return undefined;
    if (!w.includes('=')) {
      tokens.push({ kind: 'element', name: w });
      continue;
    }
    const parts = w.split('=');
    // firewalld: exactly one '=', non-empty name and value.
    if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
    tokens.push({ kind: 'attr', name: parts[0], value: parts[1] });
  }
  return tokens;
}

type Slot = 'source' | 'destination' | 'element' | 'log' | 'audit' | 'action';

interface ElementSpec {
  slot: Slot;
  /** Attributes the element takes. */
  attrs: readonly string[];
  /** Exactly one attribute, right after the element name (`service name=…`). */
  single?: boolean;
  /** Accepts a nested `limit value=…` (log, audit, actions). */
  limit?: boolean;
}

/** The elements we understand (firewalld 1.x also has nflog and tcp-mss-clamp: not ours, rule goes to the shell). */
const ELEMENTS: Readonly<Record<string, ElementSpec>> = {
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
interface Clause {
  name: string;
  attrs: Map<string, string>;
  /** Normalised limit value (`1/m`), when given. */
  limit?: string;
}

interface ParsedRule {
  priority: number;
  family?: 'ipv4' | 'ipv6';
  clauses: Partial<Record<Slot, Clause>>;
}

/** `limit value=…` as firewalld stores it: long units shortened (`1/minute` → `1/m`). */
function normalizeLimit(value: string): string {
  const parts = value.split('/');
  if (parts.length === 2 && ['second', 'minute', 'hour', 'day'].includes(parts[1]))
    return `${parts[0]}/${parts[1].slice(0, 1)}`;
  return value;
}

/** Rich_Limit.check(): `N/s|m|h|d`, N ≥ 1, and not `1/d`. */
function limitOk(value: string): boolean {
  const m = /^([0-9]+)\/([smhd])$/.exec(value);
  if (!m) return false;
  const rate = Number(m[1]);
  return rate >= 1 && !(rate === 1 && m[2] === 'd');
}

/**
 * Tokens → elements, following firewalld's parser: `rule` first; `family=` and
 * `priority=` anywhere at rule level; elements in any order, each at most once
 * per slot; an element with several attributes ends at the first token that is
 * not one of them. Stricter than firewalld where firewalld's behaviour is
 * surprising (repeated attributes silently overwrite; a `limit` at rule level
 * silently attaches to the action): those give undefined.
 */
function parseRule(tokens: Token[]): ParsedRule | undefined {
  const first = tokens[0];
  if (!first || first.kind !== 'element' || first.name !== 'rule') return undefined;
  const parsed: ParsedRule = { priority: 0, clauses: {} };
  let prioritySet = false;
  let i = 1;
  while (i < tokens.length) {
    const t = tokens[i];
    if (t.kind === 'attr') {
      if (t.name === 'family' && parsed.family === undefined) {
        if (t.value !== 'ipv4' && t.value !== 'ipv6') return undefined;
        parsed.family = t.value;
      } else if (t.name === 'priority' && !prioritySet) {
        if (!/^-?[0-9]+$/.test(t.value)) return undefined;
        const p = Number(t.value);
        if (p < -32768 || p > 32767) return undefined;
        parsed.priority = p === 0 ? 0 : p; // -0 → 0
        prioritySet = true;
      } else {
        return undefined;
      }
      i++;
      continue;
    }
    const spec = ELEMENTS[t.name];
    if (!spec || parsed.clauses[spec.slot]) return undefined;
    const clause: Clause = { name: t.name, attrs: new Map() };
    i++;
    if (spec.single) {
      const a = tokens[i];
      if (!a || a.kind !== 'attr' || a.name !== spec.attrs[0]) return undefined;
      clause.attrs.set(a.name, a.value);
      i++;
    } else {
      for (; i < tokens.length; i++) {
        const a = tokens[i];
        if (a.kind === 'attr' && spec.attrs.includes(a.name)) {
          if (clause.attrs.has(a.name)) return undefined;
          clause.attrs.set(a.name, a.value);
        } else if (a.kind === 'element' && spec.limit && a.name === 'limit') {
          const v = tokens[i + 1];
          if (clause.limit !== undefined || !v || v.kind !== 'attr' || v.name !== 'value') return undefined;
          clause.limit = normalizeLimit(v.value);
          i++;
        } else {
          break; // not ours: back to rule level
        }
      }
    }
    parsed.clauses[spec.slot] = clause;
  }
  return parsed;
}

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
function checkRule(r: ParsedRule): boolean {
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
function attrText(c: Clause, names: readonly string[]): string {
  return names.map((n) => (c.attrs.has(n) ? ` ${n}="${c.attrs.get(n)}"` : '')).join('');
}

function limitText(c: Clause): string {
  return c.limit !== undefined ? ` limit value="${c.limit}"` : '';
}

/** Rich_Rule.__str__ and friends. */
function printRule(r: ParsedRule): string {
  const { source, destination, element, log, audit, action } = r.clauses;
  let out = 'rule';
  if (r.priority !== 0) out += ` priority="${r.priority}"`;
  if (r.family) out += ` family="${r.family}"`;
  if (source) out += ` source${attrText(source, ['address'])}`;
  if (destination) out += ` destination${attrText(destination, ['address'])}`;
  if (element) {
    out += ` ${element.name}`;
    switch (element.name) {
      case 'service':
      case 'icmp-block':
      case 'icmp-type':
        out += attrText(element, ['name']);
        break;
      case 'protocol':
        out += attrText(element, ['value']);
        break;
      case 'port':
      case 'source-port':
        out += attrText(element, ['port', 'protocol']);
        break;
      case 'forward-port':
        out += attrText(element, ['port', 'protocol', 'to-port', 'to-addr']);
        break;
    }
  }
  if (log) out += ` log${attrText(log, ['prefix', 'level'])}${limitText(log)}`;
  if (audit) out += ` audit${limitText(audit)}`;
  if (action) {
    out += ` ${action.name}`;
    if (action.name === 'reject') out += attrText(action, ['type']);
    // firewalld prints the mark unquoted.
    if (action.name === 'mark') out += ` set=${action.attrs.get('set')}`;
    out += limitText(action);
  }
  return out;
}

/**
 * A rich rule in firewalld's canonical text (what `firewall-cmd
 * --list-rich-rules` prints), or undefined if the rule uses anything this
 * module does not fully understand or that firewalld would refuse.
 * `%IP%` is accepted as a whole address value and kept as is.
 */
export function normalizeRichRule(rule: string): string | undefined {
  const tokens = lexRule(rule);
  if (!tokens) return undefined;
  const parsed = parseRule(tokens);
  if (!parsed || !checkRule(parsed)) return undefined;
  return printRule(parsed);
}

// ------------------------------------------------- command lines → firewalld doors

/** The command directives of a door, as knockd.conf gives them (undefined: not written). */
export interface DoorCommands {
  startCommand?: string;
  startCommand6?: string;
  stopCommand?: string;
  stopCommand6?: string;
  /** knockd's Cmd_Timeout: seconds from the start command to the stop command. */
  cmdTimeout: number;
}

/** `source address="%IP%"`: the rule is the knocker's own, so each knocker gets a grant of their own. */
const KNOCKER_SOURCE = `source address="${IP_TOKEN}"`;

/**
 * Turn a door whose commands are all recognised firewall-cmd lines into a
 * firewalld door, so it takes the same path as `firewalld_*` doors (the
 * grant table over D-Bus) instead of the shell. knockd's meaning is kept:
 *  - IPv6 knockers use the `_6` forms, falling back to the IPv4 ones; an
 *    empty value means "do nothing" (no rule for that family).
 *  - Start adds rule R (optionally `--timeout=T`), Stop removes the same R in
 *    the same zone `Cmd_Timeout` seconds later: an open door whose rule
 *    firewalld itself removes after min(T, Cmd_Timeout) (T alone without a Stop).
 *  - Start removes R, no Stop: a close door.
 * Anything else (a command that is not firewall-cmd, a Stop that does not undo
 * its Start, a rule that is not the knocker's `source address="%IP%"`,
 * `Cmd_Timeout = 0` with a Stop, a remove with a Stop) gives undefined and the
 * door keeps running its commands through the shell, exactly as knockd would.
 */
export function commandDoor(c: DoorCommands): FirewalldDoor | undefined {
  const start4 = c.startCommand;
  const start6 = c.startCommand6 ?? c.startCommand;
  const stop4 = c.stopCommand;
  const stop6 = c.stopCommand6 ?? c.stopCommand;
  if (start4 === undefined && start6 === undefined) return undefined;

  type Family = { start?: NativeAction; stop?: NativeAction };
  const read = (cmd: string | undefined): NativeAction | 'empty' | 'foreign' => {
    if (cmd === undefined || cmd === '') return 'empty';
    const a = recognizeFirewallCmd(cmd);
    if (a === undefined || !a.rule.includes(KNOCKER_SOURCE)) return 'foreign';
    return a;
  };
  const families: Family[] = [];
  for (const [start, stop] of [
    [start4, stop4],
    [start6, stop6],
  ] as const) {
    const s = read(start);
    const t = read(stop);
    if (s === 'foreign' || t === 'foreign') return undefined;
    // knockd runs no stop command when there is no start command.
    families.push(s === 'empty' ? {} : { start: s, ...(t !== 'empty' ? { stop: t } : {}) });
  }
  const kinds = new Set(families.flatMap((f) => (f.start ? [f.start.kind] : [])));
  if (kinds.size !== 1) return undefined; // nothing to do at all, or add for one family and remove for the other
  const action = kinds.has('add') ? 'open' : 'close';

  const rules: FirewalldDoor['rules'] = { 4: [], 6: [] };
  for (const [i, f] of families.entries()) {
    if (!f.start) continue;
    const zone = f.start.zone !== undefined ? { zone: f.start.zone } : {};
    if (f.start.kind === 'remove') {
      if (f.stop) return undefined; // a close that re-opens later: not a door we model
      rules[i === 0 ? 4 : 6].push({ ...zone, rule: f.start.rule, timeout: 0 });
      continue;
    }
    let timeout = f.start.timeout;
    if (f.stop) {
      // The stop must undo exactly this start, or the shell keeps the door.
      if (f.stop.kind !== 'remove' || f.stop.rule !== f.start.rule || f.stop.zone !== f.start.zone) return undefined;
      if (c.cmdTimeout <= 0) return undefined; // knockd: open and at once close again
      timeout = timeout > 0 ? Math.min(timeout, c.cmdTimeout) : c.cmdTimeout;
    }
    rules[i === 0 ? 4 : 6].push({ ...zone, rule: f.start.rule, timeout });
  }
  return { action, services: [], ports: [], rules, from: 'commands' };
}
