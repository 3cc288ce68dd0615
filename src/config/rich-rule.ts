/**
 * firewalld's rich-rule language, as far as this daemon needs it: lexer,
 * parser and printer, giving a rule in firewalld's canonical text (what
 * `firewall-cmd --list-rich-rules` prints). The checks are in
 * rich-rule-check.ts, the parsed form in rich-rule-model.ts.
 */

import { checkRule } from './rich-rule-check';
import { ELEMENTS, normalizeLimit, type Clause, type ParsedRule } from './rich-rule-model';

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
