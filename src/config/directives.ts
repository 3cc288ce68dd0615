/**
 * The directive table: one entry per knockd.conf directive, saying how it is
 * spelt (the man page's spelling, and knockd's aliases) and how its value is
 * read into the options or into the door being built. Keys are compared
 * case-insensitively; a directive's canonical key (DoorConfig.lines) is its
 * name in upper case.
 *
 * To add a door directive: add one entry to DOOR_DIRECTIVES (and its field to
 * DoorConfig or DoorBuilder). Checks that span several directives of a door
 * go in door-checks.ts.
 */

import { FAMILY_BITS, WIDE_PREFIX } from '../decode/network';
import { typographyWarnings } from './hints';
import { parseSeconds } from './seconds';
import { parseSequence } from './sequence';
import { SPA_DIRECTIVES } from './spa';
import { clip } from './text';
import type { DoorBuilder } from './door-builder';
import type { DoorConfig, Options } from './types';
import { checkAddress, parseFirewalldPorts, parseServices, parseTcpFlags } from './values';
import { parseYesNo, YES_NO_WORDS } from './yesno';
import { isZoneName, ZONE_NAME_FORM } from './zone';

/** One `key = value` line, as a directive's reader gets it. */
export interface DirectiveLine {
  /** Trimmed, otherwise as written. */
  value: string;
  /** The key as written (an alias, odd case...), for messages. */
  written: string;
  line: number;
  /** Reports an error (or a warning) on this line, for this door. */
  err: (message: string) => void;
  warn: (message: string) => void;
}

export interface DoorDirective {
  /** The man page's spelling; upper-cased, the canonical key. */
  name: string;
  /** Other spellings knockd 0.8 takes for the same directive. */
  aliases?: readonly string[];
  read(b: DoorBuilder, l: DirectiveLine): void;
}

export interface OptionDirective {
  name: string;
  /** `value` undefined: the bare word (only UseSyslog may be written without `= value`). */
  read(o: Options, value: string | undefined, l: Omit<DirectiveLine, 'value'>): void;
}

type CommandField = 'startCommand' | 'startCommand6' | 'stopCommand' | 'stopCommand6' | 'notifyCommand';

/** A shell command directive: kept as written, with warnings for typographic characters that break it. */
function command(name: string, field: CommandField, aliases?: readonly string[]): DoorDirective {
  return {
    name,
    ...(aliases ? { aliases } : {}),
    read(b, l) {
      b.door[field] = l.value;
      for (const w of typographyWarnings(l.value)) l.warn(`${l.written}: ${w}`);
    },
  };
}

/** A seconds directive (Seq_Timeout, Cmd_Timeout). */
function seconds(name: string, min: number, set: (d: DoorConfig, n: number) => void, aliases?: readonly string[]) {
  return {
    name,
    ...(aliases ? { aliases } : {}),
    read(b: DoorBuilder, l: DirectiveLine) {
      const n = parseSeconds(l.value, l.written, { min });
      if (typeof n === 'string') l.err(n);
      else set(b.door, n);
    },
  };
}

/** firewalld_source_prefix(6): the rule's source is the knocker's network of that many bits (decode/network.ts). */
function sourcePrefix(name: string, family: 4 | 6): DoorDirective {
  return {
    name,
    read(b, l) {
      const max = FAMILY_BITS[family];
      if (!/^[0-9]{1,3}$/.test(l.value) || Number(l.value) < 1 || Number(l.value) > max) {
        l.err(`${l.written} must be a prefix length from 1 to ${max}, got "${clip(l.value)}"`);
        return;
      }
      const n = Number(l.value);
      b.door.sourcePrefix = { ...b.door.sourcePrefix, [family]: n };
      if (n < WIDE_PREFIX[family])
        l.warn(
          `${l.written} = ${n} opens the door for every address of a /${n} (${family === 4 ? 2 ** (32 - n) : `2^${128 - n}`} addresses) on one knock: keep it at /${WIDE_PREFIX[family]} or narrower`,
        );
    },
  };
}

export const DOOR_DIRECTIVES: readonly DoorDirective[] = [
  {
    name: 'Sequence',
    read(b, l) {
      const r = parseSequence(l.value);
      r.errors.forEach(l.err);
      b.door.sequence = r.errors.length === 0 ? r.ports : [];
    },
  },
  {
    name: 'One_Time_Sequences',
    read(b, l) {
      // The file is opened and read by the door runtime, not here.
      if (l.value === '') l.err('One_Time_Sequences needs the path of a one-time sequences file');
      else b.door.oneTimeSequences = l.value;
    },
  },
  seconds('Seq_Timeout', 1, (d, n) => (d.seqTimeout = n), ['Timeout']),
  {
    name: 'Strict_Repeats',
    read(b, l) {
      const yes = parseYesNo(l.value);
      if (yes === undefined) l.err(`Strict_Repeats expects ${YES_NO_WORDS}, got "${clip(l.value)}"`);
      else b.door.strictRepeats = yes;
    },
  },
  {
    name: 'TCPFlags',
    read(b, l) {
      const r = parseTcpFlags(l.value);
      r.errors.forEach(l.err);
      if (r.errors.length === 0) b.door.tcpFlags = r.rule;
    },
  },
  seconds('Refresh_Interval', 0, (d, n) => (d.refreshInterval = n)),
  seconds('Cmd_Timeout', 0, (d, n) => {
    d.cmdTimeout = n;
    d.cmdTimeoutSet = true;
  }),
  {
    name: 'Target',
    read(b, l) {
      const problem = checkAddress(l.value);
      if (problem !== undefined) l.err(`Target ${problem}`);
      else b.door.target = l.value;
    },
  },
  command('Start_Command', 'startCommand', ['Command']),
  command('Start_Command_6', 'startCommand6', ['Command_6']),
  command('Stop_Command', 'stopCommand'),
  command('Stop_Command_6', 'stopCommand6'),
  // Beside a firewalld or SPA door (door-checks.ts says so otherwise); %IP% %DOOR% %EVENT%.
  command('notify_command', 'notifyCommand'),
  {
    name: 'firewalld_action',
    read(b, l) {
      const v = l.value.toLowerCase();
      if (v === 'open' || v === 'close') b.fw.action = v;
      else l.err(`firewalld_action must be "open" or "close", got "${clip(l.value)}"`);
    },
  },
  {
    name: 'firewalld_zone',
    read(b, l) {
      if (isZoneName(l.value)) b.fw.zone = l.value;
      else if (l.value === '')
        l.err('firewalld_zone is empty: name a zone (e.g. public), or leave the line out to use the default zone');
      else l.err(`invalid firewalld_zone "${clip(l.value)}": ${ZONE_NAME_FORM}`);
    },
  },
  {
    name: 'firewalld_service',
    read(b, l) {
      const r = parseServices(l.value);
      r.errors.forEach(l.err);
      if (r.errors.length === 0) b.fw.services = r.services;
    },
  },
  {
    name: 'firewalld_port',
    read(b, l) {
      const r = parseFirewalldPorts(l.value);
      r.errors.forEach(l.err);
      if (r.errors.length === 0) b.fw.ports = r.ports;
    },
  },
  sourcePrefix('firewalld_source_prefix', 4),
  sourcePrefix('firewalld_source_prefix6', 6),
  // Collected as written; validateSpaDoor() reads them together once the door is complete.
  ...SPA_DIRECTIVES.map((name): DoorDirective => ({
    name,
    read(b, l) {
      b.spa[name] = { value: l.value, line: l.line };
    },
  })),
];

export const OPTION_DIRECTIVES: readonly OptionDirective[] = [
  { name: 'LogFile', read: (o, v) => void (o.logFile = v || undefined) },
  {
    name: 'UseSyslog',
    read(o, v, l) {
      if (v === undefined) {
        o.useSyslog = true;
        return;
      }
      const yes = parseYesNo(v);
      if (yes !== undefined) o.useSyslog = yes;
      else l.err(`UseSyslog expects ${YES_NO_WORDS}, got "${clip(v)}"`);
    },
  },
  { name: 'PidFile', read: (o, v) => void (o.pidFile = v || undefined) },
  { name: 'Interface', read: (o, v) => void (o.interface = v || undefined) },
];

/** Canonical keys of the four shell command directives. */
export const COMMAND_KEYS = ['START_COMMAND', 'START_COMMAND_6', 'STOP_COMMAND', 'STOP_COMMAND_6'] as const;

const DOORS = new Map<string, DoorDirective>();
for (const d of DOOR_DIRECTIVES) DOORS.set(d.name.toUpperCase(), d);
for (const d of DOOR_DIRECTIVES) for (const a of d.aliases ?? []) DOORS.set(a.toUpperCase(), d);
const OPTIONS = new Map(OPTION_DIRECTIVES.map((o) => [o.name.toUpperCase(), o]));

/** The door directive spelt `upper` (upper case; aliases included). */
export function doorDirective(upper: string): DoorDirective | undefined {
  return DOORS.get(upper);
}

/** The global option spelt `upper` (upper case). */
export function optionDirective(upper: string): OptionDirective | undefined {
  return OPTIONS.get(upper);
}

/** How a canonical key is spelt in messages. */
export function directiveName(key: string): string {
  return (DOORS.get(key) ?? OPTIONS.get(key))?.name ?? key;
}

/** Every spelling we know, for "did you mean" suggestions: door names, their aliases, options. */
export const KNOWN_SPELLINGS: readonly string[] = [
  ...DOOR_DIRECTIVES.map((d) => d.name),
  ...DOOR_DIRECTIVES.flatMap((d) => d.aliases ?? []),
  ...OPTION_DIRECTIVES.map((o) => o.name),
];

/** The canonical spelling of a known key (upper-case), if it is one. */
export function spellingOf(upper: string): string | undefined {
  return KNOWN_SPELLINGS.find((s) => s.toUpperCase() === upper);
}
