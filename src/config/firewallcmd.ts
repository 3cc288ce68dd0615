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
 *     (`normalizeRichRule`, rich-rule.ts), which is what `--list-rich-rules` shows and what
 *     identifies the rule:
 *       rule family="ipv4" source address="%IP%" service name="ssh" accept
 *
 * `%IP%` stays a literal placeholder; it is accepted only as a whole address
 * value (source/destination address, forward-port to-addr) and substituted by
 * the daemon with the knocker's address later.
 */
import { IP_PLACEHOLDER, type FirewalldDoor } from '../model';
import { normalizeRichRule } from './rich-rule';
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

/** The rich-rule grammar (rich-rule.ts), for the readers of grants.json. */
export { normalizeRichRule };

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
