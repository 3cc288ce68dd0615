/**
 * The knockd.conf parser: reads the file line by line (lines.ts), keeps track
 * of the section, hands each `key = value` to its entry in the directive
 * table (directives.ts), then runs the whole-door and cross-door checks.
 *
 * Sections: `[options]` (any case) holds global options, any other name is a
 * door. Directives before any header (as printed in many tutorials) are
 * accepted with a warning: options go to the options, door directives to a
 * header-less door named door1, door2... (each `Sequence` line starts one).
 */

import {
  doorDirective,
  KNOWN_SPELLINGS,
  optionDirective,
  spellingOf,
  type DirectiveLine,
  type DoorDirective,
  type OptionDirective,
} from './directives';
import { checkDoor, endlessRuleWarnings } from './door-checks';
import { newDoor, type DoorBuilder } from './door-builder';
import { hiddenSpaceHint, suggestion } from './hints';
import { IssueLog } from './issues';
import { headerNames, readLine, splitLines } from './lines';
import { overlapWarnings } from './overlap';
import { clip, trimAscii } from './text';
import type { Config, ConfigIssue, Options } from './types';

export interface ParseResult {
  /** The parsed config; undefined when there is at least one error. */
  config?: Config;
  /** All errors, sorted by line. */
  errors: ConfigIssue[];
  /** All warnings, sorted by line (also in `config.warnings` when there is a config). */
  warnings: ConfigIssue[];
}

type Section = { kind: 'none' } | { kind: 'options' } | { kind: 'door'; b: DoorBuilder };

export class Parser {
  private readonly log: IssueLog;
  private readonly options: Options = { useSyslog: false };
  /** Line of each option directive seen, by canonical key (for "given twice"). */
  private readonly optionLines = new Map<string, number>();
  private readonly builders: DoorBuilder[] = [];
  /** Door name → line of its header (or first header-less line). */
  private readonly doorNames = new Map<string, number>();
  /** Names written in `[...]` headers anywhere in the file, so header-less doors avoid them. */
  private headerNames = new Set<string>();
  private section: Section = { kind: 'none' };
  /** The header-less door currently collecting directives (before any header). */
  private implicitDoor: DoorBuilder | undefined;
  private implicitCount = 0;
  private headerlessOptionsWarned = false;

  constructor(private readonly file: string) {
    this.log = new IssueLog(file);
  }

  scan(text: string): void {
    const { lines, bom } = splitLines(text);
    if (bom)
      this.log.warn(
        1,
        'the file starts with a UTF-8 byte-order mark (BOM); knockd 0.8 rejects the first line. Save the file without BOM.',
      );
    // First pass: the names of all [sections], so header-less doors get free names.
    this.headerNames = headerNames(lines);
    // Stop at the first error past MAX_ERRORS: the file is rejected anyway.
    for (let idx = 0; idx < lines.length && !this.log.stopped; idx++) this.line(lines[idx], idx + 1);
  }

  private line(l: string, lineNo: number): void {
    const r = readLine(l);
    switch (r.kind) {
      case 'comment':
        return;
      case 'header':
        this.header(r.name, lineNo);
        return;
      case 'bad-header':
        this.log.error(
          lineNo,
          `malformed section header "${clip(l)}": a header line must end with "]" (no trailing comment)`,
        );
        return;
      case 'bare':
        this.bareWord(r.text, lineNo);
        return;
      case 'no-key':
        this.log.error(lineNo, `missing directive name before "=" in "${clip(l)}"`, this.currentDoorName());
        return;
      case 'directive':
        this.directive(r.key, r.value, lineNo);
        return;
    }
  }

  /** A `[name]` line. */
  private header(name: string, lineNo: number): void {
    this.implicitDoor = undefined;
    if (name === '') {
      this.log.error(lineNo, 'empty section name "[]": write [options] or a door name such as [openSSH]');
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
      this.log.error(
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
    const useSyslog = optionDirective('USESYSLOG');
    if (upper === 'USESYSLOG' && useSyslog !== undefined) {
      if (this.section.kind === 'none') this.headerlessOption(lineNo);
      else if (this.section.kind === 'door')
        // knockd accepts a bare UseSyslog anywhere and applies it globally.
        this.log.warn(
          lineNo,
          'UseSyslog is a global option: it applies to every door, but belongs in the [options] section',
          this.section.b.door.name,
        );
      this.setOption(useSyslog, l, undefined, lineNo);
      return;
    }
    const door = this.currentDoorName();
    // The line is trimmed, so its first word runs up to the first space or tab.
    const firstWord = /^[^ \t]*/.exec(l)?.[0] ?? '';
    const known = spellingOf(firstWord.toUpperCase());
    if (known !== undefined && firstWord.length < l.length) {
      const rest = trimAscii(l.slice(firstWord.length));
      this.log.error(lineNo, `"${clip(l)}" is missing "=": write "${known} = ${clip(rest)}"`, door);
    } else if (known !== undefined) {
      this.log.error(lineNo, `${known} needs a value: write "${known} = ..."`, door);
    } else {
      this.log.error(lineNo, `syntax error: "${clip(l)}" is neither "key = value" nor a [section] header`, door);
    }
  }

  private currentDoorName(): string | undefined {
    if (this.section.kind === 'door') return this.section.b.door.name || undefined;
    return this.implicitDoor?.door.name;
  }

  /** A `key = value` line. */
  private directive(key: string, value: string, lineNo: number): void {
    const upper = key.toUpperCase();
    const option = optionDirective(upper);
    const door = doorDirective(upper);
    const unknown = (): string =>
      `unknown directive "${clip(key)}"${suggestion(key, KNOWN_SPELLINGS)}${hiddenSpaceHint(key)}`;

    switch (this.section.kind) {
      case 'options':
        if (option !== undefined) this.setOption(option, key, value, lineNo);
        else if (door !== undefined)
          this.log.error(
            lineNo,
            `"${clip(key)}" is a door directive and cannot be used in [options]; put it under a door header such as [openSSH]`,
          );
        else
          this.log.error(
            lineNo,
            `unknown option "${clip(key)}" in [options] (expected LogFile, UseSyslog, PidFile or Interface)${suggestion(key, KNOWN_SPELLINGS)}`,
          );
        return;

      case 'door': {
        const name = this.section.b.door.name || undefined;
        if (door !== undefined) this.setDoor(this.section.b, door, key, value, lineNo);
        else if (option !== undefined)
          this.log.error(
            lineNo,
            `"${clip(key)}" is a global option and cannot be used in a door; move it to the [options] section`,
            name,
          );
        else this.log.error(lineNo, unknown(), name);
        return;
      }

      case 'none':
        if (option !== undefined) {
          this.headerlessOption(lineNo);
          this.setOption(option, key, value, lineNo);
        } else if (door !== undefined) {
          this.setDoor(this.headerlessDoor(door, lineNo), door, key, value, lineNo);
        } else {
          this.log.error(lineNo, unknown(), this.implicitDoor?.door.name);
        }
        return;
    }
  }

  /** Warns (once) that global options appear before any header. */
  private headerlessOption(lineNo: number): void {
    if (this.headerlessOptionsWarned) return;
    this.headerlessOptionsWarned = true;
    this.log.warn(
      lineNo,
      `directives outside any [section]; knockd 0.8 rejects this file. Add a header line "[options]" above line ${lineNo}.`,
    );
  }

  /**
   * The door a header-less door directive belongs to. Every `Sequence` (or
   * `One_Time_Sequences`) line starts a new door, unless the current
   * header-less door has no sequence yet (its directives came first).
   */
  private headerlessDoor(directive: DoorDirective, lineNo: number): DoorBuilder {
    const cur = this.implicitDoor;
    const key = directive.name.toUpperCase();
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
    this.log.warn(
      lineNo,
      `directives outside any [section]; knockd 0.8 rejects this file. Add a header line such as "[${name}]" above line ${lineNo}.`,
      name,
    );
    return b;
  }

  /** `value` undefined: the bare word `UseSyslog`. */
  private setOption(option: OptionDirective, written: string, value: string | undefined, lineNo: number): void {
    const key = option.name.toUpperCase();
    const prev = this.optionLines.get(key);
    if (prev !== undefined) {
      this.log.warn(lineNo, `${option.name} is given twice (lines ${prev} and ${lineNo}); the last one wins`);
    }
    this.optionLines.set(key, lineNo);
    option.read(this.options, value, {
      written,
      line: lineNo,
      err: (m) => this.log.error(lineNo, m),
      warn: (m) => this.log.warn(lineNo, m),
    });
  }

  private setDoor(b: DoorBuilder, directive: DoorDirective, written: string, value: string, lineNo: number): void {
    const d = b.door;
    const name = d.name || undefined;
    const key = directive.name.toUpperCase();
    const prev = d.lines[key];
    if (prev !== undefined) {
      const alias = written.toUpperCase() !== key ? ` (alias of ${directive.name})` : '';
      this.log.warn(
        lineNo,
        `${written}${alias} repeats ${directive.name} from line ${prev}; the last one (line ${lineNo}) wins, as in knockd`,
        name,
      );
    }
    d.lines[key] = lineNo;
    const l: DirectiveLine = {
      value,
      written,
      line: lineNo,
      err: (m) => this.log.error(lineNo, m, name),
      warn: (m) => this.log.warn(lineNo, m, name),
    };
    directive.read(b, l);
  }

  /** After the last line: the whole-door and cross-door checks, then the result. */
  finish(): ParseResult {
    // After too many errors the scan stopped part way: checks of whole doors
    // would only report more of the same.
    if (!this.log.stopped) {
      for (const b of this.builders) checkDoor(b, this.log);
      overlapWarnings(this.builders, this.log);
      endlessRuleWarnings(
        this.builders.map((b) => b.door),
        this.log,
      );
    }
    this.log.close();
    const { errors, warnings } = this.log;
    const result: ParseResult = { errors, warnings };
    if (errors.length === 0) {
      result.config = { file: this.file, options: this.options, doors: this.builders.map((b) => b.door), warnings };
    }
    return result;
  }
}
