/**
 * knockd.conf parser: a hand-written, line-based scanner that follows knockd
 * 0.8's `parseconfig()` grammar, plus the `firewalld_*` door directives.
 *
 * Grammar (as knockd 0.8 reads it):
 *  - every line is trimmed of ASCII white space (space, tab, CR, LF, VT, FF);
 *  - an empty line, or one whose first character is `#`, is a comment. Nothing
 *    else is ever a comment: `;`, `#`, `=`, quotes and backslashes inside a
 *    value are kept byte for byte;
 *  - `[name]` starts a section: `[options]` (any case) holds global options,
 *    any other name is a door;
 *  - `key = value` is split at the FIRST `=`; the key is compared
 *    case-insensitively, the value is trimmed and otherwise kept as written;
 *  - `UseSyslog` is the only directive that may be written without `=`.
 *
 * Differences from knockd, all on purpose:
 *  - every problem is collected (knockd stops at the first), each with its
 *    file, line and door, and with a message an admin can act on;
 *  - numbers are checked strictly (knockd uses atoi(): `15s` is 15, `abc` 0);
 *  - directives before any `[section]` header (as printed in many tutorials)
 *    are accepted with a warning instead of being rejected;
 *  - duplicate door names, a flag both required and excluded, and similar
 *    contradictions are errors;
 *  - typographic characters that silently break shell commands are warned about.
 */

import { promises as fsp } from 'node:fs';
import { TextDecoder } from 'node:util';

import { IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TH_URG } from '../decode/types';
import { canonicalAddress } from '../decode/address';
import { IP_PLACEHOLDER, knockerRule, ruleTemplates, type RuleTemplate } from '../model';
import { commandDoor } from './firewallcmd';
import { SPA_DIRECTIVES, validateSpaDoor, type SpaDirective, type SpaRawValue } from './spa';
import type { Config, ConfigIssue, DoorConfig, FirewalldDoor, KnockPort, Options, TcpFlagRule } from './types';
import { MAX_TIMEOUT_SECONDS, parseSeconds } from './seconds';
import { parseSequence, SEQ_MAX, sequenceText } from './sequence';
import { clip, codePoint, ListProblems, MAX_QUOTE, trimAscii } from './text';
import { parseYesNo, YES_NO_WORDS } from './yesno';
import { isZoneName, ZONE_NAME_FORM } from './zone';

export { MAX_QUOTE, MAX_TIMEOUT_SECONDS, SEQ_MAX, sequenceText };

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

export interface ParseResult {
  /** The parsed config; undefined when there is at least one error. */
  config?: Config;
  /** All errors, sorted by line. */
  errors: ConfigIssue[];
  /** All warnings, sorted by line (also in `config.warnings` when there is a config). */
  warnings: ConfigIssue[];
}

/**
 * `knockd.conf:12: error: [openSSH] message`. The `[door]` part is left out for
 * issues that belong to no door, the `:line` part for whole-file issues (line 0).
 */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}` : i.file;
  const door = i.door !== undefined ? `[${i.door}] ` : '';
  return `${where}: ${i.severity}: ${door}${i.message}`;
}

/** Knockd's defaults. */
export const DEFAULT_SEQ_TIMEOUT = 25;
export const DEFAULT_CMD_TIMEOUT = 10;

// Bounds on what one file can make the parser report, so that a hostile or
// garbage file (or `knockd --check` on one) gives a bounded amount of output.

/** Errors reported per file; then one final "too many errors" error, and the scan stops. */
export const MAX_ERRORS = 1000;
/** Warnings reported per file (the first ones by line); then one summary warning. */
export const MAX_WARNINGS = 1000;
/** "starts with the whole sequence of door [...]" warnings per file; then one summary warning. */
export const MAX_PREFIX_WARNINGS = 100;
/** Keys longer than this get no "did you mean" suggestion (the longest known key has 17 characters). */
const MAX_SUGGEST_KEY = 40;
/** Typographic-dash warnings per command line; then one summary warning. */
const MAX_DASH_WARNINGS = 10;

/**
 * Parses the text of a knockd.conf. `file` is only used to label issues.
 * Collects every error and warning; `config` is undefined if there is any error.
 */
export function parseConfigText(text: string, file: string): ParseResult {
  const parser = new Parser(file);
  parser.scan(text);
  return parser.finish();
}

/**
 * Reads and parses a config file. An unreadable file gives one error issue at
 * line 0. Bytes that are not UTF-8 are replaced (with a warning naming the line).
 */
export async function loadConfig(path: string): Promise<ParseResult> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(path);
  } catch (err) {
    const issue: ConfigIssue = { severity: 'error', file: path, line: 0, message: readErrorMessage(path, err) };
    return { errors: [issue], warnings: [] };
  }
  const { text, badLine } = decodeUtf8(buf);
  const result = parseConfigText(text, path);
  if (badLine !== undefined) {
    const w: ConfigIssue = {
      severity: 'warning',
      file: path,
      line: badLine,
      message:
        'this line is not valid UTF-8 (Latin-1 or another legacy encoding?); the bad bytes were replaced by U+FFFD, ' +
        'so a command or path containing them will not be what you wrote. Save the file as UTF-8.',
    };
    result.warnings.push(w);
    sortIssues(result.warnings);
    // config.warnings is the same array object as result.warnings.
  }
  return result;
}

// ---------------------------------------------------------------------------
// Directive tables
// ---------------------------------------------------------------------------

/** Global options, by canonical (upper-case) key. */
type OptionKey = 'LOGFILE' | 'USESYSLOG' | 'PIDFILE' | 'INTERFACE';

/** Door directives, by canonical (upper-case) key; aliases map onto these. */
type DoorKey =
  | 'SEQUENCE'
  | 'ONE_TIME_SEQUENCES'
  | 'SEQ_TIMEOUT'
  | 'TCPFLAGS'
  | 'CMD_TIMEOUT'
  | 'TARGET'
  | 'START_COMMAND'
  | 'START_COMMAND_6'
  | 'STOP_COMMAND'
  | 'STOP_COMMAND_6'
  | 'FIREWALLD_ACTION'
  | 'FIREWALLD_ZONE'
  | 'FIREWALLD_SERVICE'
  | 'FIREWALLD_PORT'
  | 'SPA_PORT'
  | 'SPA_KEY_BASE64'
  | 'SPA_HMAC_KEY_BASE64'
  | 'SPA_HMAC_DIGEST_TYPE'
  | 'SPA_SOURCE'
  | 'SPA_OPEN_PORTS'
  | 'SPA_MAX_TIMEOUT'
  | 'SPA_REQUIRE_SOURCE_ADDRESS';

/** How each option is spelled in messages. */
const OPTION_NAMES = new Map<OptionKey, string>([
  ['LOGFILE', 'LogFile'],
  ['USESYSLOG', 'UseSyslog'],
  ['PIDFILE', 'PidFile'],
  ['INTERFACE', 'Interface'],
]);

/** How each door directive is spelled in messages (the man page's spelling). */
const DOOR_NAMES = new Map<DoorKey, string>([
  ['SEQUENCE', 'Sequence'],
  ['ONE_TIME_SEQUENCES', 'One_Time_Sequences'],
  ['SEQ_TIMEOUT', 'Seq_Timeout'],
  ['TCPFLAGS', 'TCPFlags'],
  ['CMD_TIMEOUT', 'Cmd_Timeout'],
  ['TARGET', 'Target'],
  ['START_COMMAND', 'Start_Command'],
  ['START_COMMAND_6', 'Start_Command_6'],
  ['STOP_COMMAND', 'Stop_Command'],
  ['STOP_COMMAND_6', 'Stop_Command_6'],
  ['FIREWALLD_ACTION', 'firewalld_action'],
  ['FIREWALLD_ZONE', 'firewalld_zone'],
  ['FIREWALLD_SERVICE', 'firewalld_service'],
  ['FIREWALLD_PORT', 'firewalld_port'],
  ...SPA_DIRECTIVES.map((k): [DoorKey, string] => [k.toUpperCase() as DoorKey, k]),
]);

/** Upper-case key as written → canonical door key (includes knockd's aliases). */
const DOOR_KEYS = new Map<string, DoorKey>([
  ...[...DOOR_NAMES.keys()].map((k): [string, DoorKey] => [k, k]),
  ['TIMEOUT', 'SEQ_TIMEOUT'],
  ['COMMAND', 'START_COMMAND'],
  ['COMMAND_6', 'START_COMMAND_6'],
]);

/** Every spelling we know, for "did you mean" suggestions. */
const KNOWN_SPELLINGS: string[] = [...DOOR_NAMES.values(), 'Timeout', 'Command', 'Command_6', ...OPTION_NAMES.values()];

const COMMAND_KEYS: DoorKey[] = ['START_COMMAND', 'START_COMMAND_6', 'STOP_COMMAND', 'STOP_COMMAND_6'];

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
const FW_PROTOS = new Set<FirewalldDoor['ports'][number]['proto']>(['tcp', 'udp', 'sctp', 'dccp']);

// ---------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------

/** A door being built, with what the cross-directive checks need. */
interface DoorBuilder {
  door: DoorConfig;
  /** Its name repeats an earlier door's (already reported; left out of cross-door checks). */
  duplicate: boolean;
  /** firewalld directives that parsed cleanly. */
  fw: {
    action?: FirewalldDoor['action'];
    zone?: string;
    services?: string[];
    ports?: FirewalldDoor['ports'];
  };
  /** spa_* directives as written (validated together in checkDoor). */
  spa: Partial<Record<SpaDirective, SpaRawValue>>;
}

type Section = { kind: 'none' } | { kind: 'options' } | { kind: 'door'; b: DoorBuilder };

class Parser {
  private readonly errors: ConfigIssue[] = [];
  private readonly warnings: ConfigIssue[] = [];
  private readonly options: Options = { useSyslog: false };
  /** Line of each option directive seen, by canonical key (for "given twice"). */
  private readonly optionLines = new Map<OptionKey, number>();
  private readonly builders: DoorBuilder[] = [];
  /** Door name → line of its header (or first header-less line). */
  private readonly doorNames = new Map<string, number>();
  /** Names written in `[...]` headers anywhere in the file, so header-less doors avoid them. */
  private readonly headerNames = new Set<string>();
  private section: Section = { kind: 'none' };
  /** The header-less door currently collecting directives (before any header). */
  private implicitDoor: DoorBuilder | undefined;
  private implicitCount = 0;
  private headerlessOptionsWarned = false;
  /** Set (to the line of the first error not reported) once MAX_ERRORS errors have been reported. */
  private stopLine: number | undefined;

  constructor(private readonly file: string) {}

  // -- issue helpers --------------------------------------------------------

  private error(line: number, message: string, door?: string): void {
    if (this.stopLine !== undefined) return;
    if (this.errors.length >= MAX_ERRORS) {
      this.stopLine = line;
      return;
    }
    this.errors.push(issue('error', this.file, line, message, door));
  }

  private warn(line: number, message: string, door?: string): void {
    this.warnings.push(issue('warning', this.file, line, message, door));
  }

  // -- scanning -------------------------------------------------------------

  scan(input: string): void {
    let text = input;
    if (text.startsWith('\uFEFF')) {
      text = text.slice(1);
      this.warn(
        1,
        'the file starts with a UTF-8 byte-order mark (BOM); knockd 0.8 rejects the first line. Save the file without BOM.',
      );
    }
    const lines = text.split('\n').map(trimAscii);

    // First pass: the names of all [sections], so header-less doors get free names.
    for (const l of lines) {
      if (isHeader(l)) this.headerNames.add(trimAscii(l.slice(1, -1)));
    }

    // Stop at the first error past MAX_ERRORS: the file is rejected anyway.
    for (let idx = 0; idx < lines.length && this.stopLine === undefined; idx++)
      this.line(lines[idx] as string, idx + 1);
  }

  private line(l: string, lineNo: number): void {
    if (l === '' || l.startsWith('#')) return;

    if (l.startsWith('[')) {
      if (isHeader(l)) this.header(trimAscii(l.slice(1, -1)), lineNo);
      else
        this.error(
          lineNo,
          `malformed section header "${clip(l)}": a header line must end with "]" (no trailing comment)`,
        );
      return;
    }

    const eq = l.indexOf('=');
    if (eq < 0) {
      this.bareWord(l, lineNo);
      return;
    }
    const key = trimAscii(l.slice(0, eq));
    const value = trimAscii(l.slice(eq + 1));
    if (key === '') {
      this.error(lineNo, `missing directive name before "=" in "${clip(l)}"`, this.currentDoorName());
      return;
    }
    this.directive(key, value, lineNo);
  }

  /** A `[name]` line. */
  private header(name: string, lineNo: number): void {
    this.implicitDoor = undefined;
    if (name === '') {
      this.error(lineNo, 'empty section name "[]": write [options] or a door name such as [openSSH]');
      // Keep reading; directives until the next header would otherwise be
      // reported as header-less. Treat them as an anonymous, unlisted door.
      this.section = { kind: 'door', b: newDoor('', lineNo, true) };
      return;
    }
    if (name.toLowerCase() === 'options') {
      this.section = { kind: 'options' };
      return;
    }
    const prev = this.doorNames.get(name);
    const b = newDoor(name, lineNo, prev !== undefined);
    if (prev !== undefined) {
      this.error(
        lineNo,
        `duplicate door name: [${clip(name)}] is already defined at line ${prev}; give each door its own name`,
        name,
      );
    } else {
      this.doorNames.set(name, lineNo);
    }
    this.builders.push(b);
    this.section = { kind: 'door', b };
  }

  /** A line with no `=`: only `UseSyslog` may be written that way. */
  private bareWord(l: string, lineNo: number): void {
    const upper = l.toUpperCase();
    if (upper === 'USESYSLOG') {
      switch (this.section.kind) {
        case 'options':
          this.setOption('USESYSLOG', l, undefined, lineNo);
          return;
        case 'none':
          this.headerlessOption(lineNo);
          this.setOption('USESYSLOG', l, undefined, lineNo);
          return;
        case 'door':
          // knockd accepts a bare UseSyslog anywhere and applies it globally.
          this.warn(
            lineNo,
            'UseSyslog is a global option: it applies to every door, but belongs in the [options] section',
            this.section.b.door.name,
          );
          this.setOption('USESYSLOG', l, undefined, lineNo);
          return;
      }
    }
    const door = this.currentDoorName();
    // The line is trimmed, so its first word runs up to the first space or tab.
    const firstWord = /^[^ \t]*/.exec(l)?.[0] ?? '';
    const known = spellingOf(firstWord.toUpperCase());
    if (known !== undefined && firstWord.length < l.length) {
      const rest = trimAscii(l.slice(firstWord.length));
      this.error(lineNo, `"${clip(l)}" is missing "=": write "${known} = ${clip(rest)}"`, door);
    } else if (known !== undefined) {
      this.error(lineNo, `${known} needs a value: write "${known} = ..."`, door);
    } else {
      this.error(lineNo, `syntax error: "${clip(l)}" is neither "key = value" nor a [section] header`, door);
    }
  }

  private currentDoorName(): string | undefined {
    if (this.section.kind === 'door') return this.section.b.door.name || undefined;
    return this.implicitDoor?.door.name;
  }

  /** A `key = value` line. */
  private directive(key: string, value: string, lineNo: number): void {
    const upper = key.toUpperCase();
    const optionKey = OPTION_NAMES.has(upper as OptionKey) ? (upper as OptionKey) : undefined;
    const doorKey = DOOR_KEYS.get(upper);

    switch (this.section.kind) {
      case 'options':
        if (optionKey !== undefined) this.setOption(optionKey, key, value, lineNo);
        else if (doorKey !== undefined)
          this.error(
            lineNo,
            `"${clip(key)}" is a door directive and cannot be used in [options]; put it under a door header such as [openSSH]`,
          );
        else
          this.error(
            lineNo,
            `unknown option "${clip(key)}" in [options] (expected LogFile, UseSyslog, PidFile or Interface)${suggestion(key)}`,
          );
        return;

      case 'door': {
        const name = this.section.b.door.name || undefined;
        if (doorKey !== undefined) this.setDoor(this.section.b, doorKey, key, value, lineNo);
        else if (optionKey !== undefined)
          this.error(
            lineNo,
            `"${clip(key)}" is a global option and cannot be used in a door; move it to the [options] section`,
            name,
          );
        else this.error(lineNo, `unknown directive "${clip(key)}"${suggestion(key)}${hiddenSpaceHint(key)}`, name);
        return;
      }

      case 'none':
        if (optionKey !== undefined) {
          this.headerlessOption(lineNo);
          this.setOption(optionKey, key, value, lineNo);
        } else if (doorKey !== undefined) {
          this.setDoor(this.headerlessDoor(doorKey, lineNo), doorKey, key, value, lineNo);
        } else {
          this.error(
            lineNo,
            `unknown directive "${clip(key)}"${suggestion(key)}${hiddenSpaceHint(key)}`,
            this.implicitDoor?.door.name,
          );
        }
        return;
    }
  }

  /** Warns (once) that global options appear before any header. */
  private headerlessOption(lineNo: number): void {
    if (this.headerlessOptionsWarned) return;
    this.headerlessOptionsWarned = true;
    this.warn(
      lineNo,
      `directives outside any [section]; knockd 0.8 rejects this file. Add a header line "[options]" above line ${lineNo}.`,
    );
  }

  /**
   * The door a header-less door directive belongs to. Every `Sequence` (or
   * `One_Time_Sequences`) line starts a new door, unless the current
   * header-less door has no sequence yet (its directives came first).
   */
  private headerlessDoor(key: DoorKey, lineNo: number): DoorBuilder {
    const cur = this.implicitDoor;
    const startsDoor = key === 'SEQUENCE' || key === 'ONE_TIME_SEQUENCES';
    const curHasSequence =
      cur !== undefined && (cur.door.lines.SEQUENCE !== undefined || cur.door.lines.ONE_TIME_SEQUENCES !== undefined);
    if (cur !== undefined && !(startsDoor && curHasSequence)) return cur;

    let name: string;
    do {
      this.implicitCount += 1;
      name = `door${this.implicitCount}`;
    } while (this.headerNames.has(name) || this.doorNames.has(name));

    const b = newDoor(name, lineNo, false);
    this.doorNames.set(name, lineNo);
    this.builders.push(b);
    this.implicitDoor = b;
    this.warn(
      lineNo,
      `directives outside any [section]; knockd 0.8 rejects this file. Add a header line such as "[${name}]" above line ${lineNo}.`,
      name,
    );
    return b;
  }

  // -- [options] ------------------------------------------------------------

  /** `value` undefined: the bare word `UseSyslog`. */
  private setOption(key: OptionKey, written: string, value: string | undefined, lineNo: number): void {
    const prev = this.optionLines.get(key);
    if (prev !== undefined) {
      this.warn(
        lineNo,
        `${OPTION_NAMES.get(key) ?? written} is given twice (lines ${prev} and ${lineNo}); the last one wins`,
      );
    }
    this.optionLines.set(key, lineNo);

    switch (key) {
      case 'LOGFILE':
        this.options.logFile = value || undefined;
        return;
      case 'PIDFILE':
        this.options.pidFile = value || undefined;
        return;
      case 'INTERFACE':
        this.options.interface = value || undefined;
        return;
      case 'USESYSLOG': {
        if (value === undefined) {
          this.options.useSyslog = true;
          return;
        }
        const yes = parseYesNo(value);
        if (yes !== undefined) this.options.useSyslog = yes;
        else this.error(lineNo, `UseSyslog expects ${YES_NO_WORDS}, got "${clip(value)}"`);
        return;
      }
    }
  }

  // -- doors ----------------------------------------------------------------

  private setDoor(b: DoorBuilder, key: DoorKey, written: string, value: string, lineNo: number): void {
    const d = b.door;
    const name = d.name || undefined;
    const display = DOOR_NAMES.get(key) ?? written;
    const err = (message: string): void => this.error(lineNo, message, name);

    const prev = d.lines[key];
    if (prev !== undefined) {
      const alias = written.toUpperCase() !== key ? ` (alias of ${display})` : '';
      this.warn(
        lineNo,
        `${written}${alias} repeats ${display} from line ${prev}; the last one (line ${lineNo}) wins, as in knockd`,
        name,
      );
    }
    d.lines[key] = lineNo;

    switch (key) {
      case 'SEQUENCE': {
        const r = parseSequence(value);
        r.errors.forEach(err);
        d.sequence = r.errors.length === 0 ? r.ports : [];
        return;
      }
      case 'ONE_TIME_SEQUENCES':
        // The file is opened and read by the door runtime, not here.
        if (value === '') err('One_Time_Sequences needs the path of a one-time sequences file');
        else d.oneTimeSequences = value;
        return;
      case 'SEQ_TIMEOUT': {
        const n = parseSeconds(value, written, { min: 1 });
        if (typeof n === 'string') err(n);
        else d.seqTimeout = n;
        return;
      }
      case 'CMD_TIMEOUT': {
        const n = parseSeconds(value, written, { min: 0 });
        if (typeof n === 'string') err(n);
        else {
          d.cmdTimeout = n;
          d.cmdTimeoutSet = true;
        }
        return;
      }
      case 'TCPFLAGS': {
        const r = parseTcpFlags(value);
        r.errors.forEach(err);
        if (r.errors.length === 0) d.tcpFlags = r.rule;
        return;
      }
      case 'TARGET': {
        const problem = checkAddress(value);
        if (problem !== undefined) err(`Target ${problem}`);
        else d.target = value;
        return;
      }
      case 'START_COMMAND':
        d.startCommand = value;
        break;
      case 'START_COMMAND_6':
        d.startCommand6 = value;
        break;
      case 'STOP_COMMAND':
        d.stopCommand = value;
        break;
      case 'STOP_COMMAND_6':
        d.stopCommand6 = value;
        break;
      case 'FIREWALLD_ACTION': {
        const v = value.toLowerCase();
        if (v === 'open' || v === 'close') b.fw.action = v;
        else err(`firewalld_action must be "open" or "close", got "${clip(value)}"`);
        return;
      }
      case 'FIREWALLD_ZONE':
        if (isZoneName(value)) b.fw.zone = value;
        else if (value === '')
          err('firewalld_zone is empty: name a zone (e.g. public), or leave the line out to use the default zone');
        else err(`invalid firewalld_zone "${clip(value)}": ${ZONE_NAME_FORM}`);
        return;
      case 'FIREWALLD_SERVICE': {
        const r = parseServices(value);
        r.errors.forEach(err);
        if (r.errors.length === 0) b.fw.services = r.services;
        return;
      }
      case 'FIREWALLD_PORT': {
        const r = parseFirewalldPorts(value);
        r.errors.forEach(err);
        if (r.errors.length === 0) b.fw.ports = r.ports;
        return;
      }
      case 'SPA_PORT':
      case 'SPA_KEY_BASE64':
      case 'SPA_HMAC_KEY_BASE64':
      case 'SPA_HMAC_DIGEST_TYPE':
      case 'SPA_SOURCE':
      case 'SPA_OPEN_PORTS':
      case 'SPA_MAX_TIMEOUT':
      case 'SPA_REQUIRE_SOURCE_ADDRESS':
        b.spa[key.toLowerCase() as SpaDirective] = { value, line: lineNo };
        return;
    }

    // Only the four command directives get here: look for characters that
    // word processors and blogs substitute and that break shell commands.
    for (const w of typographyWarnings(value)) this.warn(lineNo, `${written}: ${w}`, name);
  }

  // -- after the last line --------------------------------------------------

  finish(): ParseResult {
    // After too many errors the scan stopped part way: checks of whole doors
    // would only report more of the same.
    if (this.stopLine === undefined) {
      for (const b of this.builders) this.checkDoor(b);
      this.crossDoorChecks();
      this.endlessRuleWarnings();
    }

    sortIssues(this.errors);
    sortIssues(this.warnings);
    if (this.stopLine !== undefined) {
      const last = this.errors[this.errors.length - 1]?.line ?? 0;
      const line = Math.max(this.stopLine, last);
      this.errors.push(
        issue(
          'error',
          this.file,
          line,
          `too many errors (more than ${MAX_ERRORS}); stopping at line ${line}: fix the errors above and check again`,
        ),
      );
    }
    if (this.warnings.length > MAX_WARNINGS) {
      // Keep the first ones by line; the summary goes on the first line left out.
      const omitted = this.warnings.length - MAX_WARNINGS;
      const line = (this.warnings[MAX_WARNINGS] as ConfigIssue).line;
      this.warnings.length = MAX_WARNINGS;
      this.warnings.push(
        issue(
          'warning',
          this.file,
          line,
          `too many warnings: ${omitted} more not shown (at most ${MAX_WARNINGS} are reported)`,
        ),
      );
    }
    const result: ParseResult = { errors: this.errors, warnings: this.warnings };
    if (this.errors.length === 0) {
      result.config = {
        file: this.file,
        options: this.options,
        doors: this.builders.map((b) => b.door),
        warnings: this.warnings,
      };
    }
    return result;
  }

  /** Checks that span several directives of one door. */
  private checkDoor(b: DoorBuilder): void {
    const d = b.door;
    const name = d.name;
    const L = d.lines;

    if (Object.keys(b.spa).length > 0) {
      this.checkSpaDoor(b);
      return;
    }
    if (L.SEQUENCE === undefined && L.ONE_TIME_SEQUENCES === undefined) {
      this.error(
        d.line,
        'door has no knock sequence: add "Sequence = port1,port2,..." (or One_Time_Sequences = /path/to/file)',
        name,
      );
    }
    if (L.SEQUENCE !== undefined && L.ONE_TIME_SEQUENCES !== undefined) {
      this.warn(
        Math.max(L.SEQUENCE, L.ONE_TIME_SEQUENCES),
        `both Sequence (line ${L.SEQUENCE}) and One_Time_Sequences (line ${L.ONE_TIME_SEQUENCES}) are given; ` +
          'the one-time sequences file takes the sequence over, so the fixed Sequence is misleading: remove one of them',
        name,
      );
    }

    // firewalld directives.
    const actionLine = L.FIREWALLD_ACTION;
    if (actionLine !== undefined) {
      if (L.FIREWALLD_SERVICE === undefined && L.FIREWALLD_PORT === undefined) {
        this.error(
          actionLine,
          'firewalld_action needs firewalld_service and/or firewalld_port: say what to open or close',
          name,
        );
      }
      for (const k of COMMAND_KEYS) {
        const l = L[k];
        if (l !== undefined) {
          this.error(
            l,
            `${DOOR_NAMES.get(k) ?? k} cannot be combined with firewalld_action (line ${actionLine}) in one door: ` +
              'use either shell commands or firewalld_*, not both',
            name,
          );
        }
      }
      if (b.fw.action === 'close' && d.cmdTimeoutSet) {
        this.warn(L.CMD_TIMEOUT ?? d.line, 'Cmd_Timeout has no effect with firewalld_action = close', name);
      }
      if (b.fw.action !== undefined) {
        const services = b.fw.services ?? [];
        const ports = b.fw.ports ?? [];
        // Cmd_Timeout is the rule's own firewalld timeout; not written, knockd's default (10 s): no door opens for good unasked.
        const timeout = b.fw.action === 'open' ? d.cmdTimeout : 0;
        d.firewalld = {
          action: b.fw.action,
          services,
          ports,
          rules: directiveRules(b.fw.zone, services, ports, timeout),
          from: 'directives',
        };
        if (b.fw.zone !== undefined) d.firewalld.zone = b.fw.zone;
        if (b.fw.action === 'open' && d.cmdTimeoutSet && d.cmdTimeout === 0) {
          this.warn(
            L.CMD_TIMEOUT!,
            'Cmd_Timeout = 0: the rule never expires; it stays until a close knock or a firewalld reload after the grant ends. Give it a timeout (firewalld keeps established sessions after the rule goes)',
            name,
          );
        }
      }
    } else {
      for (const k of ['FIREWALLD_ZONE', 'FIREWALLD_SERVICE', 'FIREWALLD_PORT'] as const) {
        const l = L[k];
        if (l !== undefined) {
          this.error(
            l,
            `${DOOR_NAMES.get(k) ?? k} does nothing without "firewalld_action = open" (or close) in the same door`,
            name,
          );
        }
      }
    }

    // Command lines that are exactly firewall-cmd --add/--remove-rich-rule become a firewalld door now,
    // so they take the grant path (D-Bus, firewalld-side timeout) instead of a shell per knock.
    if (actionLine === undefined) {
      const fwd = commandDoor(d);
      if (fwd !== undefined) d.firewalld = fwd;
    }

    // (A door with firewalld_* but no action has already got an error.)
    const doesSomething =
      actionLine !== undefined ||
      L.FIREWALLD_SERVICE !== undefined ||
      L.FIREWALLD_PORT !== undefined ||
      d.oneTimeSequences !== undefined ||
      [d.startCommand, d.startCommand6, d.stopCommand, d.stopCommand6].some((c) => c !== undefined && c !== '');
    if (!doesSomething) {
      this.warn(
        d.line,
        'door does nothing but log "OPEN SESAME": add Start_Command (or firewalld_action and firewalld_service)',
        name,
      );
    }

    const n = d.sequence.length;
    if (n >= 2 && d.seqTimeout < n - 1) {
      this.warn(
        L.SEQ_TIMEOUT ?? L.SEQUENCE ?? d.line,
        `Seq_Timeout is ${d.seqTimeout} s for a ${n}-port sequence: a client that waits a second between knocks ` +
          `needs ${n - 1} s and will never get in; raise Seq_Timeout`,
        name,
      );
    }
  }

  /** An SPA door (spa_* directives): fwknop's Single Packet Authorization instead of a knock sequence. */
  private checkSpaDoor(b: DoorBuilder): void {
    const d = b.door;
    const L = d.lines;
    for (const k of [
      'SEQUENCE',
      'ONE_TIME_SEQUENCES',
      'TCPFLAGS',
      'SEQ_TIMEOUT',
      'TARGET',
      'FIREWALLD_ACTION',
      'FIREWALLD_SERVICE',
      'FIREWALLD_PORT',
      ...COMMAND_KEYS,
    ] as const) {
      const l = L[k];
      if (l !== undefined) {
        this.error(
          l,
          `${DOOR_NAMES.get(k) ?? k} has no place in an SPA door (spa_* directives): an SPA door opens spa_open_ports for the address its packet names; use a separate door for knocks`,
          d.name,
        );
      }
    }
    const r = validateSpaDoor({
      name: d.name,
      line: d.line,
      directives: b.spa,
      ...(d.cmdTimeoutSet ? { cmdTimeout: { seconds: d.cmdTimeout, line: L.CMD_TIMEOUT ?? d.line } } : {}),
    });
    for (const e of r.errors) this.error(e.line, e.message, d.name);
    for (const w of r.warnings) this.warn(w.line, w.message, d.name);
    if (r.door) {
      d.spa = r.door;
      if (b.fw.zone !== undefined) d.spaZone = b.fw.zone;
    }
  }

  /**
   * A converted firewall-cmd door whose rule has no end: no --timeout, no
   * Stop_Command removing it, and no close door removing it either.
   */
  private endlessRuleWarnings(): void {
    const doors = this.builders.map((b) => b.door);
    const closes = new Set(
      doors.flatMap((d) =>
        d.firewalld?.action === 'close' ? ruleTemplates(d.firewalld).map((r) => `${r.zone ?? ''} ${r.rule}`) : [],
      ),
    );
    for (const d of doors) {
      const f = d.firewalld;
      if (f?.from !== 'commands' || f.action !== 'open') continue;
      if (ruleTemplates(f).some((r) => r.timeout === 0 && !closes.has(`${r.zone ?? ''} ${r.rule}`))) {
        this.warn(
          d.lines.START_COMMAND ?? d.lines.START_COMMAND_6 ?? d.line,
          'firewall-cmd --add-rich-rule with no --timeout, no Stop_Command that removes it and no door that closes it: the rule never expires. ' +
            'Add --timeout=30s, or a Stop_Command with --remove-rich-rule of the same rule',
          d.name,
        );
      }
    }
  }

  /**
   * Doors whose sequences collide: same sequence, or one a prefix of another.
   * TCP knocks with incompatible flag rules (syn vs !syn...) cannot be
   * confused, so such pairs are left out.
   *
   * Near-linear in the number of doors (instead of comparing every pair):
   * the sequences go into a trie, each node holding the doors whose whole
   * sequence ends there, grouped by flag rule (at most 3^6 rules); a door
   * finds the doors with its own sequence, and those whose sequence is a
   * proper prefix of its own, on its path through the trie. A door gets at
   * most one same-sequence warning (naming the first few earlier doors), and
   * the prefix warnings stop after MAX_PREFIX_WARNINGS, with one summary.
   * Warnings on one door's Sequence line come in the order of the other door,
   * as a pairwise check would give them.
   */
  private crossDoorChecks(): void {
    const doors = this.builders
      .filter((b) => !b.duplicate && b.door.sequence.length > 0 && b.door.oneTimeSequences === undefined)
      .map((b) => b.door);
    // The trie: node 0 is the root; edges maps (node, knock) to the child node.
    const edges = new Map<number, number>();
    const edge = (node: number, p: KnockPort): number => node * PORT_KEYS + portKey(p);
    /** By node: the doors whose whole sequence ends there. */
    const groups: (SeqGroup | undefined)[] = [];
    let nodes = 1;
    /** Per door (by index in `doors`): its same-sequence warning, if any, placed by the first door it names. */
    const same: ({ at: number; message: string } | undefined)[] = [];

    // Pass 1 (doors in file order): build the trie; same sequence as earlier doors.
    doors.forEach((d, i) => {
      let node = 0;
      for (const p of d.sequence) {
        const e = edge(node, p);
        let child = edges.get(e);
        if (child === undefined) {
          child = nodes++;
          edges.set(e, child);
        }
        node = child;
      }
      let g = groups[node];
      if (g === undefined) {
        g = newGroup(d.sequence.every((p) => p.proto === IPPROTO_TCP));
        groups[node] = g;
      }
      const earlier = compatibleDoors(g, d.tcpFlags, 3, false);
      if (earlier.count > 0) {
        g.text ??= sequenceText(d);
        same[i] = { at: earlier.first[0] as number, message: sameSequenceMessage(g.text, earlier, doors) };
      }
      addToGroup(g, d.tcpFlags, i);
    });

    // Pass 2 (doors in file order, trie complete): shorter doors whose whole
    // sequence starts this door's sequence.
    let prefixWarnings = 0;
    let prefixOmitted = 0;
    let omittedLine = 0;
    doors.forEach((long, i) => {
      const longLine = long.lines.SEQUENCE ?? long.line;
      // Prefix warnings still allowed; each group below yields at most that many.
      const room = MAX_PREFIX_WARNINGS - prefixWarnings;
      const shorts: number[] = [];
      let total = 0;
      let node: number | undefined = 0;
      for (let k = 0; k < long.sequence.length - 1 && node !== undefined; k++) {
        node = edges.get(edge(node, long.sequence[k] as KnockPort));
        const g = node !== undefined ? groups[node] : undefined;
        if (g === undefined) continue;
        const found = compatibleDoors(g, long.tcpFlags, room, true);
        total += found.count;
        for (const j of found.first) shorts.push(j);
      }
      // The first `room` of the shorter doors, in file order.
      shorts.sort((x, y) => x - y);
      if (shorts.length > room) shorts.length = room;
      prefixWarnings += shorts.length;
      if (total > shorts.length) {
        if (prefixOmitted === 0) omittedLine = longLine;
        prefixOmitted += total - shorts.length;
      }

      const out: { at: number; message: string }[] = shorts.map((j) => {
        const short = doors[j] as DoorConfig;
        const name = clip(short.name);
        return {
          at: j,
          message:
            `the sequence starts with the whole sequence of door [${name}] (line ${short.lines.SEQUENCE ?? short.line}): ` +
            `knocking it also triggers [${name}] after ${short.sequence.length} ports`,
        };
      });
      const s = same[i];
      if (s !== undefined) {
        let n = 0;
        while (n < out.length && (out[n] as { at: number }).at < s.at) n++;
        out.splice(n, 0, s);
      }
      for (const w of out) this.warn(longLine, w.message, long.name);
    });
    if (prefixOmitted > 0) {
      this.warn(
        omittedLine,
        `... and ${prefixOmitted} more cases of a door whose sequence starts with another door's whole sequence ` +
          `(only the first ${MAX_PREFIX_WARNINGS} are listed)`,
      );
    }
  }
}

/** Doors with one exact sequence, by TCP flag rule. */
interface SeqGroup {
  /** Every port is TCP: only then can flag rules keep two doors apart (otherwise one bucket, rule 0). */
  allTcp: boolean;
  /** Per bucket: its packed flag rule (see packRule), and its doors' indices (ascending). */
  rules: number[];
  doors: number[][];
  /** Packed rule → bucket index, once there are more than a few buckets. */
  bucketOf?: Map<number, number>;
  /** Pass 2 only (the group no longer changes): packed rule of the other door → number of compatible doors... */
  counts?: Map<number, number>;
  /** ...or, for a group with many flag rules, subset sums (see compatibleDoors). */
  subsetSums?: Int32Array;
  /** The sequence as text, once needed. */
  text?: string;
}

function newGroup(allTcp: boolean): SeqGroup {
  return { allTcp, rules: [], doors: [] };
}

/** Distinct values of portKey(). */
const PORT_KEYS = 65536 * 2;

function portKey(p: KnockPort): number {
  return p.port * 2 + (p.proto === IPPROTO_UDP ? 1 : 0);
}

/** A flag rule as one number: `set` in bits 0-5, `clear` in bits 6-11. */
function packRule(rule: TcpFlagRule): number {
  return (rule.set & 0x3f) | ((rule.clear & 0x3f) << 6);
}

function addToGroup(g: SeqGroup, rule: TcpFlagRule, index: number): void {
  const packed = g.allTcp ? packRule(rule) : 0;
  const b = g.bucketOf !== undefined ? g.bucketOf.get(packed) : g.rules.indexOf(packed);
  if (b !== undefined && b >= 0) {
    (g.doors[b] as number[]).push(index);
    return;
  }
  g.rules.push(packed);
  g.doors.push([index]);
  if (g.bucketOf !== undefined) g.bucketOf.set(packed, g.rules.length - 1);
  else if (g.rules.length > 8) g.bucketOf = new Map(g.rules.map((r, n) => [r, n]));
}

/**
 * The doors of `g` that a knock matching `rule` could also trigger (see
 * flagsDisjoint): how many, and the first `limit` of them (indices,
 * ascending). With `cache` (only once the group no longer changes), counts are
 * memoised, so that a door whose prefix hits a crowded group costs O(1) once
 * no more doors are to be listed: per rule for a group with few flag rules,
 * and for one with many by a table of subset sums over the 12 bits of the
 * packed rule (a door is compatible with `rule` exactly when its packed rule
 * is a subset of compatibleMask(rule)).
 */
function compatibleDoors(
  g: SeqGroup,
  rule: TcpFlagRule,
  limit: number,
  cache: boolean,
): { count: number; first: number[] } {
  const packed = packRule(rule);
  let known: number | undefined;
  if (cache) {
    if (g.allTcp && g.rules.length > SUBSET_SUM_MIN_RULES)
      known = (g.subsetSums ??= subsetSums(g))[compatibleMask(packed)];
    else known = g.counts?.get(packed);
  }
  if (known !== undefined && (known === 0 || limit <= 0)) return { count: known, first: [] };
  let count = 0;
  const first: number[] = [];
  for (let b = 0; b < g.rules.length; b++) {
    const r = g.rules[b] as number;
    if (g.allTcp && flagsDisjoint(r, packed)) continue;
    const list = g.doors[b] as number[];
    count += list.length;
    // Keep the `limit` smallest indices (each list is ascending).
    for (let n = 0; n < list.length && limit > 0; n++) {
      const j = list[n] as number;
      if (first.length === limit && j >= (first[limit - 1] as number)) break;
      let at = first.length;
      while (at > 0 && (first[at - 1] as number) > j) at--;
      first.splice(at, 0, j);
      if (first.length > limit) first.pop();
    }
  }
  if (cache && known === undefined && g.subsetSums === undefined) (g.counts ??= new Map()).set(packed, count);
  return { count, first };
}

/** Groups with more flag rules than this get a subset-sum table (4096 entries) in pass 2. */
const SUBSET_SUM_MIN_RULES = 32;

/** The packed rules compatible with `packed` are exactly its subsets: set bits not cleared by it, and the reverse. */
function compatibleMask(packed: number): number {
  return (~(packed >> 6) & 0x3f) | ((~packed & 0x3f) << 6);
}

/** sums[M] = number of doors of `g` whose packed rule is a subset of M. */
function subsetSums(g: SeqGroup): Int32Array {
  const sums = new Int32Array(4096);
  g.rules.forEach((r, b) => (sums[r] = (g.doors[b] as number[]).length));
  for (let bit = 1; bit < 4096; bit <<= 1) {
    for (let m = 0; m < 4096; m++) if (m & bit) sums[m] = (sums[m] as number) + (sums[m ^ bit] as number);
  }
  return sums;
}

/** The warning for a door whose sequence earlier doors already use. */
function sameSequenceMessage(text: string, earlier: { count: number; first: number[] }, doors: DoorConfig[]): string {
  const named = earlier.first.map((j) => {
    const o = doors[j] as DoorConfig;
    return `[${clip(o.name)}] (line ${o.lines.SEQUENCE ?? o.line})`;
  });
  if (earlier.count === 1)
    return `same knock sequence (${text}) as door ${named[0] ?? ''}: one knock triggers both doors`;
  const more = earlier.count - named.length;
  const list =
    more > 0
      ? `${named.join(', ')} and ${more} more`
      : `${named.slice(0, -1).join(', ')} and ${named[named.length - 1] ?? ''}`;
  return `same knock sequence (${text}) as doors ${list}: one knock triggers all ${earlier.count + 1} doors`;
}

// ---------------------------------------------------------------------------
// Value parsers (pure; return error messages rather than throwing)
// ---------------------------------------------------------------------------

/** `syn,!ack,...`, case-insensitive. */
function parseTcpFlags(value: string): { rule: TcpFlagRule; errors: string[] } {
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
function checkAddress(value: string): string | undefined {
  if (value === '') return 'is empty: give an IPv4 or IPv6 address';
  if (value.includes('%')) return `"${clip(value)}" has a zone index (%...); give the plain address`;
  if (canonicalAddress(value) === undefined)
    return `"${clip(value)}" is not an IPv4 or IPv6 address (host names and prefixes are not accepted)`;
  return undefined;
}

function parseServices(value: string): { services: string[]; errors: string[] } {
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

function parseFirewalldPorts(value: string): { ports: FirewalldDoor['ports']; errors: string[] } {
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

function isFwProto(p: string): p is FirewalldDoor['ports'][number]['proto'] {
  return FW_PROTOS.has(p as FirewalldDoor['ports'][number]['proto']);
}

/**
 * Characters that blogs and word processors substitute and that silently break
 * a shell command: typographic dashes, curly quotes, non-breaking spaces.
 */
function typographyWarnings(cmd: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let moreDashes = 0;
  for (const m of cmd.matchAll(/[\u2013\u2014](\S*)/g)) {
    const token = m[0];
    if (seen.has(token)) continue;
    seen.add(token);
    if (seen.size > MAX_DASH_WARNINGS) {
      moreDashes += 1;
      continue;
    }
    const rest = m[1] ?? '';
    const code = codePoint(token);
    out.push(
      rest !== ''
        ? `\`${clip(token)}\` looks like \`--${clip(rest)}\` (typographic dash); the command gets the character ${code}, not "--": retype it`
        : `contains a typographic dash "${token}" (${code}); if "-" or "--" was meant, retype it`,
    );
  }
  if (moreDashes > 0)
    out.push(`contains ${moreDashes} more words with a typographic dash (U+2013 or U+2014): retype them with "-"`);
  const quotes = [...new Set(cmd.match(/[\u2018\u2019\u201C\u201D]/g) ?? [])];
  if (quotes.length > 0) {
    out.push(
      `contains typographic quotes ${quotes.join(' ')} (${quotes.map(codePoint).join(', ')}): ` +
        `the shell treats them as ordinary characters, not quotes; use " or ' instead`,
    );
  }
  const spaces = [...new Set(cmd.match(/[\u00A0\u2007\u202F]/g) ?? [])];
  if (spaces.length > 0) {
    out.push(
      `contains a non-breaking space (${spaces.map(codePoint).join(', ')}): the shell does not split words there; ` +
        'retype it as an ordinary space',
    );
  }
  return out;
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** The rule templates of a `firewalld_*` door: one per service, then one per port, for each family. */
function directiveRules(
  zone: string | undefined,
  services: string[],
  ports: FirewalldDoor['ports'],
  timeout: number,
): FirewalldDoor['rules'] {
  const what = [
    ...services.map((name) => `service name="${name}"`),
    ...ports.map((p) => `port port="${p.port}" protocol="${p.proto}"`),
  ];
  const z = zone !== undefined ? { zone } : {};
  const family = (f: 4 | 6): RuleTemplate[] =>
    what.map((w) => ({ ...z, rule: knockerRule(f, IP_PLACEHOLDER, w), timeout }));
  return { 4: family(4), 6: family(6) };
}

function issue(
  severity: ConfigIssue['severity'],
  file: string,
  line: number,
  message: string,
  door?: string,
): ConfigIssue {
  const i: ConfigIssue = { severity, file, line, message };
  if (door !== undefined && door !== '') i.door = door;
  return i;
}

function newDoor(name: string, line: number, duplicate: boolean): DoorBuilder {
  return {
    door: {
      name,
      line,
      sequence: [],
      seqTimeout: DEFAULT_SEQ_TIMEOUT,
      tcpFlags: { set: 0, clear: 0 },
      cmdTimeout: DEFAULT_CMD_TIMEOUT,
      cmdTimeoutSet: false,
      lines: {},
    },
    duplicate,
    fw: {},
    spa: {},
  };
}

function isHeader(l: string): boolean {
  return l.length >= 2 && l.startsWith('[') && l.endsWith(']');
}

/** No TCP packet can satisfy both rules (packed by packRule): one requires a flag the other excludes. */
function flagsDisjoint(a: number, b: number): boolean {
  return ((a & 0x3f & (b >> 6)) | (b & 0x3f & (a >> 6))) !== 0;
}

/** The canonical spelling of a known key (upper-case), if it is one. */
function spellingOf(upper: string): string | undefined {
  return KNOWN_SPELLINGS.find((s) => s.toUpperCase() === upper);
}

/** ` (did you mean Seq_Timeout?)` when `key` is a near miss of a known directive. */
function suggestion(key: string): string {
  // editDistance() is O(key length × spelling length): skip keys far longer than any known one.
  if (key.length > MAX_SUGGEST_KEY) return '';
  const upper = key.toUpperCase();
  const limit = upper.length >= 6 ? 2 : 1;
  let best: string | undefined;
  let bestDist = limit + 1;
  for (const s of KNOWN_SPELLINGS) {
    const dist = editDistance(upper, s.toUpperCase());
    if (dist < bestDist) {
      best = s;
      bestDist = dist;
    }
  }
  return best !== undefined ? ` (did you mean ${best}?)` : '';
}

/** A hint for keys that contain a non-ASCII space (invisible in most editors). */
function hiddenSpaceHint(key: string): string {
  return /[\u00A0\u2007\u202F]/.test(key) ? '; it contains a non-breaking space: retype the line' : '';
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      d[i * cols + j] = v;
    }
  }
  return at(a.length, b.length);
}

function sortIssues(list: ConfigIssue[]): void {
  list.sort((x, y) => x.line - y.line); // Array.prototype.sort is stable.
}

function readErrorMessage(path: string, err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  switch (code) {
    case 'ENOENT':
      return `cannot read config file ${path}: no such file (ENOENT)`;
    case 'EACCES':
    case 'EPERM':
      return `cannot read config file ${path}: permission denied (${code}); run as root or fix the file's permissions`;
    case 'EISDIR':
      return `cannot read config file ${path}: it is a directory (EISDIR)`;
    default:
      return `cannot read config file ${path}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Decodes UTF-8; on invalid bytes, decodes with replacement and reports the first bad line. */
function decodeUtf8(buf: Buffer): { text: string; badLine?: number } {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return { text: strict.decode(buf) };
  } catch {
    // Find the first line holding invalid bytes.
  }
  let line = 1;
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x0a) {
      try {
        strict.decode(buf.subarray(start, i));
      } catch {
        return { text: buf.toString('utf8'), badLine: line };
      }
      line += 1;
      start = i + 1;
    }
  }
  return { text: buf.toString('utf8'), badLine: 0 };
}
