/**
 * Runs the capture process (worker.ts) and keeps it running: if libpcap
 * loses the interface (link down, interface deleted: the capture process
 * reports it and exits) or cannot open it yet, the process is started again
 * with a short backoff, so capture resumes within a few seconds of the
 * interface coming back, without restarting the daemon. A new process is
 * the only way to reopen the socket: the capture process drops its
 * privileges right after opening it.
 *
 * Everything the capture process says is untrusted (validate.ts): a message
 * that fails the checks is logged and dropped. Once it reports `listening`,
 * its /proc status must show it unprivileged, or it is killed.
 *
 * A capture process being replaced is told to go (its channel closed, then
 * SIGTERM) and, if it is still there KILL_GRACE_MS later (stopped, or taken
 * over and ignoring both), SIGKILL. The next one starts only once the old
 * one has exited (its exit seen by the daemon): two capture processes never
 * run side by side. Signalling a process of another uid needs CAP_KILL,
 * which knockd.service grants for this alone.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LinkType } from '../decode/types';
import {
  SNAPLEN,
  type CaptureSetup,
  type CaptureStats,
  type ToCapture,
  type WireDoor,
  type WireEvent,
  type WireSpaDoor,
} from './protocol';
import { captureUser } from './user';
import { LogBudget } from './log-budget';
import { MessageGate } from './validate';
import { privilegeProblem } from './privileges';
import { endProcess } from './end-process';

export interface SupervisorEvents {
  event: [WireEvent];
  /** Capture is open on an interface (first time, or again after a failure). */
  listening: [string, LinkType, boolean];
  suppressed: [{ count: number; timeouts: number; evicted: number; inFlight: number }];
}

const BACKOFF_MS = [250, 500, 1000, 2000, 3000];

/** Lines a second the daemon writes for the capture process's `error` messages (an interface lost); the rest are counted. */
export const CAPTURE_ERROR_LOG_PER_SECOND = 5;

/** What the daemon passes in; the capture user is looked up at each start. */
export type SupervisorSetup = Omit<CaptureSetup, 'user'>;

export class CaptureSupervisor extends EventEmitter<SupervisorEvents> {
  private child: ChildProcess | undefined;
  /** Capture processes told to go that have not exited yet, with their escalation timer. */
  private readonly ending = new Map<ChildProcess, NodeJS.Timeout>();
  /** A start waits for `ending` to empty. */
  private spawnPending = false;
  private setup: SupervisorSetup | undefined;
  /** The doors the capture process may name: the ones it has, and the ones before the last change (events in flight). */
  private doorNames = new Map<string, WireDoor | WireSpaDoor>();
  private readonly gate: MessageGate;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Interfaces capturing now, with their link type. */
  private readonly listeningOn = new Map<string, LinkType>();
  /** The interfaces the running capture process was started with. */
  private childIfaces: string[] = [];
  /** The filter it was started with: locked in it (SO_LOCK_FILTER), so a new filter means a new capture process. */
  private childFilter = '';
  /** Of those, the ones it no longer has a socket for (lost, or closed on our word): only a new process can open them. */
  private readonly childClosed = new Set<string>();
  /**
   * Interfaces lost again and again (each new process could not keep them):
   * how many times in a row, and not to be reopened before when (ms since
   * the epoch). Every reopen is a new capture process, which starts with an
   * empty attempt table, so a link that keeps failing must not cost the
   * other interfaces their knocks in flight every two seconds.
   */
  private readonly reopenBackoff = new Map<string, { losses: number; notBefore: number }>();
  private readonly everListened = new Set<string>();
  /** Why an interface is not capturing (it failed to open). */
  private readonly ifaceErrors = new Map<string, string>();
  private lastError = '';
  private statsWaiters: ((s: CaptureStats | undefined) => void)[] = [];
  /** The capture process's counters as last reported (it sends them once a second). */
  private lastStats: CaptureStats | undefined;

  /** The lines its `error` messages make the daemon write: a budget on the daemon's side (CAPTURE_ERROR_LOG_PER_SECOND). */
  readonly errorLines: LogBudget;

  constructor(
    private readonly log: Logger,
    now: () => number = Date.now,
  ) {
    super();
    this.gate = new MessageGate((line) => this.log.error(line));
    this.errorLines = new LogBudget(
      CAPTURE_ERROR_LOG_PER_SECOND,
      (n) =>
        this.log.warn(
          `${n} interface-error line(s) from the capture process suppressed (daemon log budget ${CAPTURE_ERROR_LOG_PER_SECOND} a second)`,
        ),
      now,
    );
  }

  /** Capturing on at least one interface. */
  get listening(): boolean {
    return this.listeningOn.size > 0;
  }

  /** The interfaces capturing now, in the order of the setup, with their link types. */
  get interfaces(): { iface: string; link: LinkType }[] {
    return (this.setup?.ifaces ?? []).flatMap((iface) => {
      const link = this.listeningOn.get(iface);
      return link !== undefined ? [{ iface, link }] : [];
    });
  }

  /** Why an interface of the setup is not capturing ('' if it is, or nothing is known). */
  problemOf(iface: string): string {
    return this.ifaceErrors.get(iface) ?? '';
  }

  /** Snaplen of the capture running (or last started). */
  get snaplen(): number {
    return this.setup?.snaplen ?? SNAPLEN;
  }

  get running(): boolean {
    return this.setup !== undefined;
  }

  /** Why capture is not open, when it is not. */
  get problem(): string {
    return this.lastError;
  }

  start(setup: SupervisorSetup): void {
    this.setup = setup;
    this.knowDoors(setup.doors, setup.spa);
    if (!this.child && !this.restartTimer) this.spawn();
  }

  private knowDoors(doors: readonly WireDoor[], spa: readonly WireSpaDoor[]): void {
    const next = new Map<string, WireDoor | WireSpaDoor>(
      [...(this.setup?.doors ?? []), ...(this.setup?.spa ?? [])].map((d) => [d.name, d]),
    );
    for (const d of [...doors, ...spa]) next.set(d.name, d);
    this.doorNames = next;
  }

  private scheduleRestart(): void {
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.spawn();
    }, delay);
  }

  private spawn(): void {
    const base = this.setup;
    if (!base) return;
    if (this.ending.size > 0) {
      // Never two capture processes at once: this one starts when the last one has exited.
      this.spawnPending = true;
      return;
    }
    this.spawnPending = false;
    let setup: CaptureSetup;
    try {
      setup = { ...base, user: captureUser() };
    } catch (err) {
      this.lastError = `capture on ${base.ifaces.join(', ')} cannot start: ${(err as Error).message}`;
      if (this.failures === 0) this.log.error(this.lastError);
      this.scheduleRestart();
      return;
    }
    // A small heap: the attempt table is typed arrays outside it (table.ts), and
    // nothing else grows, so a leak shows up as a restart, not as hundreds of MB.
    // A config reload copies the attempts in flight (~100 bytes each) through it.
    const heapMB = Math.max(48, 32 + Math.ceil((setup.maxAttempts * 100) / 1e6));
    // No NOTIFY_SOCKET: the capture process has nothing to tell systemd (see
    // NotifyAccess= in knockd.service). Its stdout goes nowhere: it writes no log.
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    // Never passed on: the sandbox probe is for a test harness that forks worker.js itself, and libuv's io_uring
    // (off by default since Node 20.11.1; the sandbox refuses it) would keep a ring made with root's credentials.
    // (libuv 1.49+, a distribution's Node.js linked with it, sets up a ring for epoll_ctl whatever this
    // variable says: knockd.service refuses io_uring_setup, so it falls back to epoll_ctl.)
    delete env.KNOCKD_SANDBOX_PROBE;
    delete env.UV_USE_IO_URING;
    const child = fork(join(__dirname, 'worker.js'), [], {
      env,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // The daemon's own node flags (--cpu-prof, --trace-gc ...) apply here too; the heap caps win.
      execArgv: [...process.execArgv, `--max-old-space-size=${heapMB}`, '--max-semi-space-size=4'],
    });
    this.child = child;
    this.childIfaces = setup.ifaces;
    this.childFilter = setup.filter;
    this.childClosed.clear();
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.on('message', (m: unknown) => this.onMessage(child, m));
    // kill() of a capture process of another uid without CAP_KILL: EPERM (see endChild()).
    child.on('error', (err) => this.log.debug(`capture process ${String(child.pid)}: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.ending.has(child)) {
        clearTimeout(this.ending.get(child));
        this.ending.delete(child);
        if (this.ending.size === 0 && this.spawnPending && !this.restartTimer) this.spawn();
      }
      if (this.child !== child) return;
      this.child = undefined;
      const wasListening = this.listeningOn.size > 0;
      this.listeningOn.clear();
      this.flushStats(undefined);
      if (!this.setup) return; // stopped on purpose
      const why = signal ? `killed by ${signal}` : code === 3 ? this.lastError : `exited with status ${code}`;
      const detail = stderr
        .trim()
        .split('\n')
        .filter((l) => !/^Warning: .*This may not actually work/.test(l))
        .pop();
      if (signal || code !== 3) this.lastError = `capture on ${setup.ifaces.join(', ')} failed: ${why}`;
      if (wasListening || this.failures === 0) {
        this.log.warn(
          `${this.lastError}${detail && signal ? ` (${detail})` : ''}; retrying (every ${BACKOFF_MS[BACKOFF_MS.length - 1] / 1000} s at most)`,
        );
      }
      this.scheduleRestart();
    });
    this.send({ t: 'start', setup });
  }

  private send(msg: ToCapture): void {
    if (this.child?.connected) this.child.send(msg);
  }

  private onMessage(child: ChildProcess, raw: unknown): void {
    if (child !== this.child) return;
    const m = this.gate.admit(raw, this.doorNames, this.setup?.ipv4Only ?? false, this.childIfaces);
    if (m === undefined) return;
    switch (m.t) {
      case 'listening': {
        // It must have dropped everything before it reads a packet: check, from outside.
        const problem = privilegeProblem(child.pid);
        if (problem !== undefined) {
          this.lastError = `capture process kept privileges (${problem}); killed`;
          this.log.error(this.lastError);
          // Its messages are ignored from now on; the next one starts after the backoff and once this one has exited.
          this.endChild('SIGKILL');
          this.scheduleRestart();
          return;
        }
        const again = this.everListened.has(m.iface);
        this.listeningOn.set(m.iface, m.link);
        this.everListened.add(m.iface);
        this.ifaceErrors.delete(m.iface);
        this.reopenBackoff.delete(m.iface);
        this.failures = 0;
        this.lastError = '';
        this.emit('listening', m.iface, m.link, again);
        return;
      }
      case 'error':
        this.lastError = m.message;
        this.ifaceErrors.set(m.iface, m.message);
        this.childClosed.add(m.iface);
        this.noteLoss(m.iface);
        // The capture process cannot open it again (it holds no privilege): the daemon restarts it once the interface is back.
        if (this.listeningOn.delete(m.iface) && this.listeningOn.size > 0 && this.errorLines.admit())
          this.log.warn(`${m.message}; the other interfaces capture meanwhile, and capture restarts when it is back`);
        return;
      case 'event':
        this.emit('event', m.e);
        return;
      case 'suppressed':
        this.emit('suppressed', { count: m.count, timeouts: m.timeouts, evicted: m.evicted, inFlight: m.inFlight });
        return;
      case 'stats':
        this.lastStats = m.stats;
        this.flushStats(m.stats);
        return;
    }
  }

  private noteLoss(iface: string): void {
    const losses = (this.reopenBackoff.get(iface)?.losses ?? 0) + 1;
    // The first loss (a link flap) may be reopened as soon as the link is back; after that 2, 4, 8 ... 30 s.
    const delay = losses === 1 ? 0 : Math.min(30_000, 1000 * 2 ** (losses - 1));
    this.reopenBackoff.set(iface, { losses, notBefore: Date.now() + delay });
  }

  /**
   * Of `ifaces` (the interfaces the daemon finds ready), the ones the running
   * capture process has lost and that may be reopened now. libpcap may see a
   * link go down and come back between two of the daemon's looks at the
   * interfaces: the daemon then sees no change, and asks this.
   */
  lost(ifaces: readonly string[], now = Date.now()): string[] {
    if (!this.child) return []; // none running: its own restart (with backoff) opens them all
    return ifaces.filter((i) => this.childClosed.has(i) && (this.reopenBackoff.get(i)?.notBefore ?? 0) <= now);
  }

  private flushStats(s: CaptureStats | undefined): void {
    const w = this.statsWaiters;
    this.statsWaiters = [];
    for (const f of w) f(s);
  }

  setDoors(doors: WireDoor[], spa: WireSpaDoor[], filter: string): void {
    if (!this.setup) return;
    this.knowDoors(doors, spa);
    this.setup = { ...this.setup, doors, spa, filter };
    if (this.child && filter !== this.childFilter) {
      this.log.info(
        'capture restarts with the new doors: the capture filter changed, and it is locked in each capture process',
      );
      this.replaceChild();
      return;
    }
    this.send({ t: 'doors', doors, spa, filter });
  }

  /** New addresses, or a new set of interfaces to capture on. */
  setLocal(local: string[], filter: string, ifaces: string[]): void {
    if (!this.setup) return;
    const had = this.childIfaces;
    this.setup = { ...this.setup, local, filter, ifaces };
    for (const i of [...this.listeningOn.keys()]) if (!ifaces.includes(i)) this.listeningOn.delete(i);
    // An interface the capture process has no socket for (new, back after a link loss, or one it could not open):
    // it cannot open one (it holds no privilege), so a new capture process opens them all.
    const missing = ifaces.filter((i) => !had.includes(i) || this.childClosed.has(i));
    for (const i of had) if (!ifaces.includes(i)) this.childClosed.add(i); // it closes them now
    for (const i of [...this.ifaceErrors.keys()]) if (!ifaces.includes(i)) this.ifaceErrors.delete(i);
    if (this.child && missing.length > 0) {
      this.log.info(`capture restarts to open ${missing.join(', ')} (the capture process cannot open a socket itself)`);
      this.replaceChild();
      return;
    }
    if (this.child && filter !== this.childFilter) {
      this.log.info(
        'capture restarts with the new addresses: the capture filter changed, and it is locked in each capture process',
      );
      this.replaceChild();
      return;
    }
    this.send({ t: 'local', local, filter, ifaces });
  }

  /** End the capture process and start a new one with the current setup, now. */
  private replaceChild(): void {
    this.endChild();
    this.spawn();
  }

  /**
   * End the capture process (if any) and forget what it had; no restart is
   * scheduled (a start waits until it has exited: see spawn()). It is told
   * to go by closing its channel (it exits on 'disconnect') and SIGTERM;
   * KILL_GRACE_MS later, if it has not exited (stopped, or ignoring both),
   * SIGKILL, again every KILL_RETRY_MS. It runs as another user by then:
   * the signals need CAP_KILL (knockd.service grants it); without it they
   * fail with EPERM, which is logged once, and no new capture process starts
   * while this one lives. It dies with the daemon in any case
   * (PR_SET_PDEATHSIG).
   */
  private endChild(first: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.listeningOn.clear();
    this.ifaceErrors.clear();
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    endProcess(child, first, this.ending, this.log);
  }

  /**
   * Counters from the capture process (undefined when it is not running):
   * fresh ones if it answers within 200 ms, else the ones it sent last (at
   * most about a second old; a busy capture process reads no requests).
   */
  stats(): Promise<CaptureStats | undefined> {
    if (!this.child?.connected) return Promise.resolve(undefined);
    return new Promise((res) => {
      const timer = setTimeout(() => {
        this.statsWaiters = this.statsWaiters.filter((w) => w !== waiter);
        res(this.lastStats);
      }, 200);
      const waiter = (s: CaptureStats | undefined): void => {
        clearTimeout(timer);
        res(s);
      };
      this.statsWaiters.push(waiter);
      this.send({ t: 'stats' });
    });
  }

  stop(): void {
    this.setup = undefined;
    this.spawnPending = false;
    this.endChild();
    this.flushStats(undefined);
  }

  /** Capture processes told to go that have not exited yet (for --status and tests). */
  get endingCount(): number {
    return this.ending.size;
  }
}
