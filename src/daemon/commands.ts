/**
 * knockd's Start_Command / Stop_Command runner.
 *
 * Behaviour of knockd 0.8 (process_attempt, parse_cmd, exec_cmd) kept here:
 *  - IPv6 knockers use `Start_Command_6` / `Stop_Command_6`, falling back to the
 *    IPv4 form when the `_6` directive is absent; an empty value means "do nothing"
 *    (an explicitly empty `_6` form does not fall back).
 *  - Nothing at all runs when the selected start command is empty: knockd only
 *    schedules the stop command from inside "if there is a start command".
 *  - Every `%IP%` is replaced by the knocker's address, then the command is handed
 *    byte for byte to `/bin/sh -c` (knockd uses system()).
 *  - The child runs in its own session (knockd forks and calls setsid()).
 *  - Log lines `SRC: DOOR: running command: CMD` and `SRC: DOOR: command timeout`,
 *    and `command returned non-zero status code (N)` on failure.
 *
 * Differences, on purpose:
 *  - Nothing blocks: commands are spawned asynchronously and awaited in the
 *    background; stdout/stderr/exit status are logged when the command ends.
 *  - The stop command is due `cmdTimeout` seconds after the door was opened (the
 *    start command launched, or queued), not after the start command *finished*
 *    plus the timeout as in knockd (which sleeps after system() returns). It
 *    still never starts before the start command for the same (door, source)
 *    has finished: commands of one (door, source) run strictly one after the
 *    other, so a slow `firewall-cmd --add-…` can never be overtaken by its own
 *    `--remove-…` (which would leave the rule open for good).
 *  - A knock that reopens a door whose stop command is still pending runs the
 *    start command again and pushes the single pending stop back (knockd would
 *    fork a second child and run the stop command twice).
 *  - At most `maxConcurrent` commands run at once (32 by default); the rest
 *    wait in FIFO order, so a knock storm cannot fork-bomb the host; and at
 *    most `maxPending` (--max-pending-commands, 1024) are pending in all,
 *    stop commands waiting plus commands queued or running: beyond it a new
 *    open runs nothing (logged at most once a second, with the count), so a
 *    sniffed sequence replayed from spoofed sources cannot grow the queue
 *    without end. A source already pending may re-knock.
 *  - The command text (`%IP%`, the `_6` forms) is command-text.ts; running
 *    one through the shell, command-exec.ts; the slots, command-slots.ts;
 *    commands.json, command-state.ts.
 *  - On shutdown (`flush()`) pending stop commands run at once instead of being
 *    lost with the daemon.
 *  - knockd refuses commands longer than PATH_MAX after substitution; we do
 *    not (the kernel's own argument limit applies and shows up as a spawn error).
 */
import type { ChildProcess } from 'node:child_process';
import { StateWriter, type StateDoc } from '../state/statefile';
import { selectCommands, substituteIp, type CommandDoor, type CommandInfo, type CommandResult } from './command-text';
import { execShell, killGroup } from './command-exec';
import { CommandSlots } from './command-slots';
import type { PersistedStop } from './command-state';
import { setLongTimer, type SetTimer, type TimerHandle } from '../util/timers';
import type { Logger } from 'pino';

export { selectCommands, substituteIp, type CommandDoor, type CommandInfo, type CommandResult } from './command-text';
export { loadPendingStops, type PersistedStop } from './command-state';

/** Optional observers (metrics, tests). They must not throw. */
export interface CommandEvents {
  /** The shell has been spawned. */
  started?(info: CommandInfo): void;
  /** The command ended (or will never run: `aborted`). */
  finished?(result: CommandResult): void;
}

export interface CommandRunnerOptions {
  /** Shell used as `[shell, '-c', command]`; /bin/sh by default, as system() does. */
  shell?: string;
  /** Clock for due times (ms since the epoch); Date.now by default. */
  now?: () => number;
  /** Timer for scheduled stop commands; setTimeout by default (long delays are chained). */
  setTimer?: SetTimer;
  /** If set, pending stop commands are kept in this JSON file (written atomically). */
  stateFile?: string;
  /** Commands running at once; the rest are queued. Default 32. */
  maxConcurrent?: number;
  /** Bound on pending work: stop commands waiting plus commands queued or running (default DEFAULT_MAX_PENDING_COMMANDS). */
  maxPending?: number;
  /** flush(): how long to wait before killing what still runs. Default 10 000 ms. */
  flushTimeoutMs?: number;
  events?: CommandEvents;
}

interface WaitingStop extends PersistedStop {
  timer: TimerHandle;
}

interface Job extends CommandInfo {
  key: string;
}

/** Default bound on pending commands (knockd.8: --max-pending-commands). */
export const DEFAULT_MAX_PENDING_COMMANDS = 1024;

function keyOf(door: string, src: string): string {
  return `${door}\u0000${src}`;
}

export class CommandRunner {
  private readonly shell: string;
  private readonly now: () => number;
  private readonly setTimer: SetTimer;
  private readonly slots: CommandSlots;
  readonly maxPending: number;
  /** Opens refused because the pending bound was reached, all time; and when that was last logged. */
  refusedFull = 0;
  private refusedLoggedAt = -Infinity;
  private refusedSinceLog = 0;
  private readonly flushTimeoutMs: number;
  private readonly events: CommandEvents;

  /** Stop commands waiting for their due time, by (door, src). */
  private readonly waiting = new Map<string, WaitingStop>();
  /** Stop commands that fired but have not finished yet (still persisted: they may not have run). */
  private readonly firing = new Set<PersistedStop>();
  /** Tail of each (door, src)'s command chain: its commands run one after the other. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Every queued or running job. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Live children, to kill them when flush() times out. */
  private readonly children = new Set<ChildProcess>();

  /** flush() started: no new opens. */
  private closing = false;
  /** flush() timed out or dispose(): queued jobs are dropped, not run. */
  private aborted = false;
  private disposed = false;

  /** State-file writer (one write at a time, coalescing changes made meanwhile). */
  private readonly state: StateWriter | undefined;

  constructor(
    private readonly log: Logger,
    opts: CommandRunnerOptions = {},
  ) {
    this.shell = opts.shell ?? '/bin/sh';
    this.now = opts.now ?? Date.now;
    this.setTimer = opts.setTimer ?? setLongTimer;

    this.state = opts.stateFile !== undefined ? new StateWriter(opts.stateFile, () => this.snapshot(), log) : undefined;
    this.slots = new CommandSlots(Math.max(1, Math.floor(opts.maxConcurrent ?? 32)));
    this.maxPending = Math.max(1, Math.floor(opts.maxPending ?? DEFAULT_MAX_PENDING_COMMANDS));
    this.flushTimeoutMs = opts.flushTimeoutMs ?? 10_000;
    this.events = opts.events ?? {};
  }

  /**
   * Door opened by `src` (family 4|6): run the start command now and, if there
   * is a stop command, schedule it `cmdTimeout` seconds from now.
   * Throws (before running anything) if `src` is not an IP address literal.
   */
  open(door: CommandDoor, src: string, family: 4 | 6): void {
    const { start, stop } = selectCommands(door, family);
    // knockd: no start command, no stop command either.
    if (start === undefined) return;
    // Substitute both first (throws on a bad address), like knockd which runs
    // neither command if either cannot be built.
    const startCommand = substituteIp(start, src);
    const stopCommand = stop !== undefined ? substituteIp(stop, src) : undefined;
    if (this.closing || this.disposed) {
      this.log.warn({ src, door: door.name }, `${src}: ${door.name}: shutting down, command not run: ${startCommand}`);
      return;
    }
    const key = keyOf(door.name, src);
    if (this.pendingCount >= this.maxPending && !this.waiting.has(key)) {
      this.refuseFull(door.name, src);
      return;
    }
    void this.enqueue({ key, kind: 'start', door: door.name, src, family, command: startCommand });
    if (stopCommand === undefined) return;

    // One pending stop per (door, src): a repeated open pushes it back.
    this.waiting.get(key)?.timer.cancel();
    const delayMs = Number.isFinite(door.cmdTimeout) && door.cmdTimeout > 0 ? door.cmdTimeout * 1000 : 0;
    this.schedule({ door: door.name, src, family, stopCommand, dueAt: this.now() + delayMs });
  }

  /**
   * Reschedule stop commands saved by a previous run (see loadPendingStops);
   * overdue ones run at once. An entry already pending for the same (door, src)
   * is kept.
   */
  restore(stops: readonly PersistedStop[]): void {
    if (this.closing || this.disposed) return;
    for (const s of stops) {
      if (!this.waiting.has(keyOf(s.door, s.src))) this.schedule({ ...s });
    }
  }

  /** The state file on disk could not be read: never overwrite it. */
  holdState(reason: string): void {
    this.state?.hold(reason);
  }

  /** Pending stop commands (door, src, due time), soonest first — for status output. */
  pending(): { door: string; src: string; dueAt: number }[] {
    return [...this.waiting.values()]
      .map((w) => ({ door: w.door, src: w.src, dueAt: w.dueAt }))
      .sort((a, b) => a.dueAt - b.dueAt);
  }

  /** Stop commands waiting plus commands queued or running: what --max-pending-commands bounds. */
  get pendingCount(): number {
    return this.waiting.size + this.inFlight.size;
  }

  /** The bound is reached: no command, logged at most once a second with the count. */
  private refuseFull(door: string, src: string): void {
    this.refusedFull++;
    this.refusedSinceLog++;
    const now = this.now();
    if (now - this.refusedLoggedAt < 1000) return;
    this.log.warn(
      { src, door },
      `${src}: ${door}: command not run: ${this.pendingCount} commands pending, the bound (--max-pending-commands ${this.maxPending}); ${this.refusedSinceLog} refused since the last such line`,
    );
    this.refusedLoggedAt = now;
    this.refusedSinceLog = 0;
  }

  /** Resolves once no command is queued or running and the state file is written. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.state?.settled();
  }

  /**
   * Shutdown: run every pending stop command now (within the concurrency cap),
   * wait for every command to finish, but at most `flushTimeoutMs` (10 s): then
   * kill what still runs and drop what is still queued. Stop commands that did
   * not complete stay in the state file for the next run.
   */
  async flush(): Promise<void> {
    if (this.disposed) return;
    this.closing = true;
    for (const [key, w] of [...this.waiting]) {
      w.timer.cancel();
      this.waiting.delete(key);
      this.log.info({ src: w.src, door: w.door }, `${w.src}: ${w.door}: shutting down: running stop command now`);
      this.fire(key, w);
    }

    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.idle().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.flushTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.aborted = true;
      this.log.error(
        `commands still running after ${this.flushTimeoutMs / 1000} s: killing ${this.children.size}, dropping ${this.slots.waiting} queued`,
      );
      for (const child of this.children) killGroup(child);
      // Queued jobs wake up, see `aborted` and return at once.
      this.slots.refuseAll();
      await this.idle();
    }
  }

  /** Forget timers and queued jobs without running them (tests). Running children are left alone. */
  dispose(): void {
    this.disposed = true;
    this.aborted = true;
    for (const w of this.waiting.values()) w.timer.cancel();
    this.waiting.clear();
    this.slots.refuseAll();
  }

  // ---------------------------------------------------------------- internals

  private schedule(s: PersistedStop): void {
    const key = keyOf(s.door, s.src);
    const entry: WaitingStop = {
      ...s,
      timer: this.setTimer(
        () => {
          if (this.waiting.get(key) !== entry) return;
          this.waiting.delete(key);
          this.log.info({ src: s.src, door: s.door }, `${s.src}: ${s.door}: command timeout`);
          this.fire(key, entry);
        },
        Math.max(0, s.dueAt - this.now()),
      ),
    };
    this.waiting.set(key, entry);
    this.persist();
  }

  /** Queue a due stop command; it leaves the state file once it has run. */
  private fire(key: string, w: PersistedStop): void {
    const saved: PersistedStop = {
      door: w.door,
      src: w.src,
      family: w.family,
      stopCommand: w.stopCommand,
      dueAt: w.dueAt,
    };
    this.firing.add(saved);
    this.persist();
    void this.enqueue({ key, kind: 'stop', door: w.door, src: w.src, family: w.family, command: w.stopCommand }).then(
      (result) => {
        // Keep it for the next run only if shutdown prevented it from running to the end.
        if (!result.aborted) {
          this.firing.delete(saved);
          this.persist();
        }
      },
    );
  }

  /** Append a job to its (door, src) chain; resolves with its result, never rejects. */
  private enqueue(job: Job): Promise<CommandResult> {
    const prev = this.chains.get(job.key) ?? Promise.resolve();
    const result = prev.then(() => this.runInSlot(job));
    const done = result.then(() => undefined);
    this.chains.set(job.key, done);
    this.inFlight.add(done);
    void done.then(() => {
      this.inFlight.delete(done);
      if (this.chains.get(job.key) === done) this.chains.delete(job.key);
    });
    return result;
  }

  private async runInSlot(job: Job): Promise<CommandResult> {
    let hasSlot = false;
    // A finishing job hands its slot over directly (command-slots.ts), so the cap holds.
    if (!this.aborted) hasSlot = this.slots.tryTake() || (await this.slots.wait());
    if (this.aborted) {
      if (hasSlot) this.slots.release();
      const result: CommandResult = {
        ...info(job),
        code: null,
        signal: null,
        stdout: '',
        stderr: '',
        aborted: true,
        durationMs: 0,
      };
      this.log.error(
        { src: job.src, door: job.door },
        `${job.src}: ${job.door}: shutting down, command not run: ${job.command}`,
      );
      this.notify(result);
      return result;
    }
    try {
      const result = await execShell(info(job), {
        log: this.log,
        shell: this.shell,
        spawned: (child) => this.children.add(child),
        started: () => {
          try {
            this.events.started?.(info(job));
          } catch (err) {
            this.log.error({ err }, `command observer failed: ${(err as Error).message}`);
          }
        },
        ended: (child) => this.children.delete(child),
        aborted: () => this.aborted,
      });
      this.notify(result);
      return result;
    } finally {
      this.slots.release();
    }
  }

  private notify(r: CommandResult): void {
    try {
      this.events.finished?.(r);
    } catch (err) {
      this.log.error({ err }, `command observer failed: ${(err as Error).message}`);
    }
  }

  /** The state file's content: waiting stops, then fired ones that have not completed. */
  private snapshot(): StateDoc {
    const strip = (w: PersistedStop): PersistedStop => ({
      door: w.door,
      src: w.src,
      family: w.family,
      stopCommand: w.stopCommand,
      dueAt: w.dueAt,
    });
    return {
      version: 2,
      key: 'stops',
      entries: [...[...this.waiting.values()].map(strip), ...[...this.firing].map(strip)],
    };
  }

  /** Note that the set changed; (re)write the state file in the background. */
  private persist(): void {
    if (this.disposed) return;
    this.state?.mark();
  }
}

function info(job: Job): CommandInfo {
  return { kind: job.kind, door: job.door, src: job.src, family: job.family, command: job.command };
}
