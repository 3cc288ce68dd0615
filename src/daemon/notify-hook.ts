/**
 * `notify_command`: a shell command run beside a firewalld or SPA door when
 * one of its grants opens, is closed by a knock, or expires. It never holds
 * up a grant: it is started after the grant's outcome is known and not
 * waited for (fire and forget). Bounded: each run is killed (its whole
 * process group) after NOTIFY_TIMEOUT_MS; at most NOTIFY_MAX_RUNNING run at
 * once, an event beyond that is dropped, counted (--status) and logged at
 * most once per NOTIFY_DROP_LOG_MS. How each run ended (exit code, signal,
 * stderr tail) is logged by execShell (command-exec.ts), as for Start_Command.
 *
 * %IP%, %DOOR% and %EVENT% are replaced by text that has no meaning to the
 * shell in any context (unquoted, '...' or "..."): the address is canonical
 * (digits, hex, '.', ':', '/'), the event one of three words, and a door
 * name with any other character has each such character replaced by '_'.
 * So a substitution can never add a command, whatever the quoting around it.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { execShell, killGroup } from './command-exec';

/** A run still going after this long is killed (SIGKILL to its process group). */
export const NOTIFY_TIMEOUT_MS = 10_000;
/** At most this many notify commands run at once; an event beyond it is dropped and counted. */
export const NOTIFY_MAX_RUNNING = 4;
/** Dropped events are logged at most once per this many ms (with the count since the last line). */
export const NOTIFY_DROP_LOG_MS = 60_000;

export type NotifyEvent = 'open' | 'close' | 'expire';

/** Characters a substituted value keeps; anything else becomes '_'. */
const SAFE = /[^A-Za-z0-9._:@+,/-]/g;

/** `s` with every character that could mean something to the shell replaced by '_'. */
export function shellSafe(s: string): string {
  return s.replace(SAFE, '_');
}

/** The command with %IP%, %DOOR%, %EVENT% replaced (each by shell-inert text, see above). */
export function substitute(command: string, ip: string, door: string, event: NotifyEvent): string {
  return command.replace(/%(IP|DOOR|EVENT)%/g, (_m, k: string) =>
    shellSafe(k === 'IP' ? ip : k === 'DOOR' ? door : event),
  );
}

export interface NotifyOptions {
  shell?: string;
  timeoutMs?: number;
  maxRunning?: number;
  now?: () => number;
}

export class NotifyHook {
  readonly timeoutMs: number;
  readonly maxRunning: number;
  private readonly shell: string;
  private readonly now: () => number;
  private readonly running = new Set<ChildProcess>();
  private starting = 0;
  private droppedSince = 0;
  private dropLoggedAt = -Infinity;
  /** For --status. */
  readonly counts = { run: 0, dropped: 0, failed: 0, timedOut: 0 };

  constructor(
    private readonly log: Logger,
    o: NotifyOptions = {},
  ) {
    this.shell = o.shell ?? '/bin/sh';
    this.timeoutMs = o.timeoutMs ?? NOTIFY_TIMEOUT_MS;
    this.maxRunning = o.maxRunning ?? NOTIFY_MAX_RUNNING;
    this.now = o.now ?? Date.now;
  }

  /** How many runs are going now. */
  get active(): number {
    return this.starting;
  }

  /**
   * Run `command` for `event` of `door` and `ip` (canonical address or network). Returns at once; the
   * promise (tests) resolves when the run has ended, or at once when the event was dropped.
   */
  fire(command: string, ip: string, door: string, event: NotifyEvent): Promise<void> {
    if (this.starting >= this.maxRunning) {
      this.drop(ip, door, event);
      return Promise.resolve();
    }
    this.starting++;
    this.counts.run++;
    const text = substitute(command, ip, door, event);
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const who = `${ip}: ${door}`;
    return execShell(
      { kind: 'start', door, src: ip, family: ip.includes(':') ? 6 : 4, command: text },
      {
        log: this.log,
        shell: this.shell,
        spawned: (child) => {
          this.running.add(child);
          timer = setTimeout(() => {
            timedOut = true;
            this.counts.timedOut++;
            this.log.warn(
              { src: ip, door, event },
              `${who}: notify_command (${event}) still running after ${this.timeoutMs / 1000} s (bound ${this.timeoutMs} ms): killed`,
            );
            killGroup(child);
          }, this.timeoutMs);
          timer.unref();
        },
        started: () => undefined,
        ended: (child) => {
          clearTimeout(timer);
          this.running.delete(child);
        },
        aborted: () => false,
      },
    ).then((r) => {
      clearTimeout(timer);
      this.starting--;
      if (timedOut || r.error || r.signal || r.code !== 0) this.counts.failed++;
    });
  }

  /** Kill every run still going (shutdown). */
  stop(): void {
    for (const c of this.running) killGroup(c);
  }

  private drop(ip: string, door: string, event: NotifyEvent): void {
    this.counts.dropped++;
    this.droppedSince++;
    const now = this.now();
    if (now - this.dropLoggedAt < NOTIFY_DROP_LOG_MS) return;
    this.log.warn(
      { src: ip, door, event },
      `${ip}: ${door}: notify_command (${event}) not run: ${this.maxRunning} already running (bound ${this.maxRunning}); ${this.droppedSince} event(s) dropped since the last such line. Logged at most every ${NOTIFY_DROP_LOG_MS / 1000} s`,
    );
    this.dropLoggedAt = now;
    this.droppedSince = 0;
  }
}
