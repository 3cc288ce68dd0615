/**
 * Logging: pino underneath, knockd-style text lines on top.
 *
 * Every record is a pino record (level, time, msg, and structured fields such
 * as `src`, `door`, `zone`, `rule`). Each destination renders it either as
 * JSON (`--log-format=json`) or, by default, as the line knockd 0.8 writes:
 *
 *     [2026-11-21 05:40:12] 10.99.0.2: openSSH: Stage 1
 *
 * so the greps admins already have (`Stage 1`, `OPEN SESAME`, `sequence
 * timeout`) keep working on the log file and in the journal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import pino, { type Logger, type DestinationStream, type Level } from 'pino';

/** pino's own file/fd writer (SonicBoom). */
type SonicBoom = ReturnType<typeof pino.destination>;

export type { Logger };
export type LogFormat = 'text' | 'json';

export interface LogSetup {
  /** Minimum level on stdout/stderr (`info` by default, `debug` with -D). */
  level: Level;
  format: LogFormat;
  /** knockd's LogFile: gets every record at `info` and above. */
  logFile?: string;
  /** Where console lines go; stdout by default. */
  console?: 'stdout' | 'stderr' | 'none';
  /** knockd's UseSyslog: every record at info and above also goes to the system log (facility user, tag knockd). */
  syslog?: boolean;
  /** Syslog socket (default /dev/log); for tests. */
  syslogSocket?: string;
}

export interface LogHandle {
  logger: Logger;
  /** Reopen the log file (logrotate: SIGHUP / SIGUSR1). */
  reopen(): void;
  /** Flush pending writes (before exit). */
  flush(): void;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warning',
  50: 'error',
  60: 'fatal',
};

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `[YYYY-MM-DD HH:MM:SS]` in local time, like knockd's log lines (which stop at minutes). */
export function knockdTimestamp(ms: number): string {
  const d = new Date(ms);
  return `[${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}]`;
}

interface Rec {
  level: number;
  time: number;
  msg?: string;
  err?: { message?: string };
}

/** Render one pino JSON record as a knockd text line. Warnings and errors carry their level. */
export function formatLine(json: string): string {
  let rec: Rec;
  try {
    rec = JSON.parse(json) as Rec;
  } catch {
    return json;
  }
  const level = rec.level >= 40 ? `${LEVEL_NAMES[rec.level] ?? 'error'}: ` : '';
  let msg = rec.msg ?? '';
  if (rec.err?.message && !msg.includes(rec.err.message)) msg += `: ${rec.err.message}`;
  return `${knockdTimestamp(rec.time)} ${level}${msg}\n`;
}

/** A pino destination that writes text lines (or passes JSON through) to a SonicBoom. */
function render(boom: SonicBoom, format: LogFormat): DestinationStream {
  return {
    write(line: string): void {
      boom.write(format === 'json' ? line : formatLine(line));
    },
  };
}

/** syslog severities by pino level. */
const SEVERITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/**
 * UseSyslog: one long-lived `logger` (util-linux) reads our lines on stdin and
 * sends each to the system log with its own priority (`--prio-prefix`); Node
 * has no Unix datagram sockets of its own. If it dies it is started again on
 * the next line.
 */
class SyslogStream implements DestinationStream {
  private child: ChildProcess | undefined;

  constructor(private readonly socket: string | undefined) {}

  private proc(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.stdin?.writable) return this.child;
    const args = ['--prio-prefix', '-t', 'knockd', `--id=${process.pid}`, ...(this.socket ? ['-u', this.socket] : [])];
    const child = spawn('logger', args, { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', () => undefined);
    child.stdin?.on('error', () => undefined);
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.child = child;
    return child;
  }

  write(line: string): void {
    let rec: Rec;
    try {
      rec = JSON.parse(line) as Rec;
    } catch {
      return;
    }
    const pri = 8 /* facility user */ + (SEVERITY[rec.level] ?? 6);
    const msg = (rec.msg ?? '').replace(/\n/g, ' ');
    this.proc().stdin?.write(`<${pri}>${msg}\n`);
  }
}

export function createLogger(setup: LogSetup): LogHandle {
  const streams: pino.StreamEntry[] = [];
  const booms: SonicBoom[] = [];
  if (setup.console !== 'none') {
    const boom = pino.destination({ dest: setup.console === 'stderr' ? 2 : 1, sync: true });
    booms.push(boom);
    streams.push({ level: setup.level, stream: render(boom, setup.format) });
  }
  let fileBoom: SonicBoom | undefined;
  if (setup.logFile) {
    fileBoom = pino.destination({ dest: setup.logFile, sync: false, mkdir: true, append: true });
    // A log file that cannot be written must not bring the daemon down (knockd only warns).
    fileBoom.on('error', (err: Error) => process.stderr.write(`warning: log file ${setup.logFile}: ${err.message}\n`));
    booms.push(fileBoom);
    streams.push({
      level: setup.level === 'debug' || setup.level === 'trace' ? setup.level : 'info',
      stream: render(fileBoom, setup.format),
    });
  }
  if (setup.syslog) streams.push({ level: 'info', stream: new SyslogStream(setup.syslogSocket) });
  const minLevel = streams.some((s) => s.level === 'debug' || s.level === 'trace') ? setup.level : 'info';
  const logger = pino({ level: minLevel, base: undefined }, pino.multistream(streams));
  return {
    logger,
    reopen: () => fileBoom?.reopen(),
    flush: () => {
      for (const b of booms) {
        try {
          b.flushSync();
        } catch {
          /* not ready yet or closed: nothing to flush */
        }
      }
    },
  };
}
