/**
 * The text of knockd's commands: which template a knocker's family uses, and
 * `%IP%` substitution (knockd 0.8's parse_cmd), plus the bounded capture of a
 * command's output for the log.
 */
import { isIP } from 'node:net';

export type CommandKind = 'start' | 'stop';

/** One command about to run (after `%IP%` substitution). */
export interface CommandInfo {
  kind: CommandKind;
  door: string;
  src: string;
  family: 4 | 6;
  command: string;
}

/** How a command ended. */
export interface CommandResult extends CommandInfo {
  /** Exit status, or null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the shell could not be started at all (e.g. ENOENT). */
  error?: Error;
  /** Trimmed, capped at 4 KiB. */
  stdout: string;
  stderr: string;
  /** Set when the command was not run, or killed, because of shutdown. */
  aborted?: boolean;
  durationMs: number;
}

/** The parts of a door this runner needs (a subset of DoorConfig). */
export interface CommandDoor {
  name: string;
  startCommand?: string;
  startCommand6?: string;
  stopCommand?: string;
  stopCommand6?: string;
  /** Seconds between the start and the stop command (knockd's Cmd_Timeout). */
  cmdTimeout: number;
}

/**
 * Replace every `%IP%` in `command` with `ip`, as knockd's parse_cmd does.
 *
 * `ip` must be a plain IPv4 or IPv6 literal (no zone index, no brackets): it
 * is pasted into a shell command line, so anything else is refused with an
 * exception rather than risk shell syntax reaching /bin/sh.
 */
export function substituteIp(command: string, ip: string): string {
  // net.isIP() alone accepts IPv6 zone indexes (`fe80::1%eth0`), whose text is
  // free-form: also insist on the characters an address literal is made of.
  if (isIP(ip) === 0 || !/^[0-9A-Fa-f:.]+$/.test(ip)) {
    throw new Error(`refusing to substitute %IP% with ${JSON.stringify(ip)}: not an IPv4/IPv6 address`);
  }
  return command.split('%IP%').join(ip);
}

/**
 * The start and stop command templates for a knocker of `family`.
 * IPv6 uses the `_6` forms, falling back to the IPv4 form only when the `_6`
 * form is absent; an empty command means "nothing" and is left out.
 */
export function selectCommands(door: CommandDoor, family: 4 | 6): { start?: string; stop?: string } {
  const start = family === 6 ? (door.startCommand6 ?? door.startCommand) : door.startCommand;
  const stop = family === 6 ? (door.stopCommand6 ?? door.stopCommand) : door.stopCommand;
  const out: { start?: string; stop?: string } = {};
  if (start) out.start = start;
  if (stop) out.stop = stop;
  return out;
}

/** Captured output per stream; more is read (so the child never blocks) but dropped. */
const OUTPUT_CAP = 4096;
/** Collects up to OUTPUT_CAP bytes of a stream. */
export class OutputCapture {
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  add(chunk: Buffer): void {
    if (this.size >= OUTPUT_CAP) {
      this.truncated = true;
      return;
    }
    const part = chunk.length > OUTPUT_CAP - this.size ? chunk.subarray(0, OUTPUT_CAP - this.size) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8').trim();
    return this.truncated ? `${s} […]` : s;
  }
}

/** Multi-line output as one log line. */
export function oneLine(s: string): string {
  return s.replace(/\r?\n/g, ' | ');
}
