/**
 * Runs the capture process (worker.ts) and keeps it running: if libpcap dies
 * with the interface (link down, interface deleted: `cap` aborts the process)
 * or cannot open it yet, the process is started again with a short backoff,
 * so capture resumes within a few seconds of the interface coming back,
 * without restarting the daemon.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LinkType } from '../decode/types';
import type { CaptureSetup, CaptureStats, FromCapture, ToCapture, WireDoor, WireEvent } from './protocol';

export interface SupervisorEvents {
  event: [WireEvent];
  /** Capture is open on an interface (first time, or again after a failure). */
  listening: [string, LinkType, boolean];
  suppressed: [{ count: number; timeouts: number; evicted: number; inFlight: number }];
}

const BACKOFF_MS = [250, 500, 1000, 2000, 3000];

export class CaptureSupervisor extends EventEmitter<SupervisorEvents> {
  private child: ChildProcess | undefined;
  private setup: CaptureSetup | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Interfaces capturing now, with their link type. */
  private readonly listeningOn = new Map<string, LinkType>();
  private readonly everListened = new Set<string>();
  /** Why an interface is not capturing (it failed to open). */
  private readonly ifaceErrors = new Map<string, string>();
  private lastError = '';
  private statsWaiters: ((s: CaptureStats | undefined) => void)[] = [];
  /** The capture process's counters as last reported (it sends them once a second). */
  private lastStats: CaptureStats | undefined;

  constructor(private readonly log: Logger) {
    super();
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

  get running(): boolean {
    return this.setup !== undefined;
  }

  /** Why capture is not open, when it is not. */
  get problem(): string {
    return this.lastError;
  }

  start(setup: CaptureSetup): void {
    this.setup = setup;
    if (!this.child && !this.restartTimer) this.spawn();
  }

  private spawn(): void {
    const setup = this.setup;
    if (!setup) return;
    // A small heap: the attempt table is typed arrays outside it (table.ts), and
    // nothing else grows, so a leak shows up as a restart, not as hundreds of MB.
    // A config reload copies the attempts in flight (~100 bytes each) through it.
    const heapMB = Math.max(48, 32 + Math.ceil((setup.maxAttempts * 100) / 1e6));
    const child = fork(join(__dirname, 'worker.js'), [], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      // The daemon's own node flags (--cpu-prof, --trace-gc ...) apply here too; the heap caps win.
      execArgv: [...process.execArgv, `--max-old-space-size=${heapMB}`, '--max-semi-space-size=4'],
    });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.on('message', (m: FromCapture) => this.onMessage(m));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      const wasListening = this.listeningOn.size > 0;
      this.listeningOn.clear();
      this.flushStats(undefined);
      if (!this.setup) return; // stopped on purpose
      const why = signal === 'SIGABRT' ? 'libpcap lost the interface (link down or interface removed?)' : signal ? `killed by ${signal}` : code === 3 ? this.lastError : `exited with status ${code}`;
      const detail = stderr.trim().split('\n').filter((l) => !/^Warning: .*This may not actually work/.test(l)).pop();
      if (signal || code !== 3) this.lastError = `capture on ${setup.ifaces.join(', ')} failed: ${why}`;
      const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)]!;
      this.failures++;
      if (wasListening || this.failures === 1) {
        this.log.warn(`${this.lastError}${detail && signal ? ` (${detail})` : ''}; retrying (every ${BACKOFF_MS[BACKOFF_MS.length - 1]! / 1000} s at most)`);
      }
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        this.spawn();
      }, delay);
    });
    this.send({ t: 'start', setup });
  }

  private send(msg: ToCapture): void {
    if (this.child?.connected) this.child.send(msg);
  }

  private onMessage(m: FromCapture): void {
    switch (m.t) {
      case 'listening': {
        const again = this.everListened.has(m.iface);
        this.listeningOn.set(m.iface, m.link);
        this.everListened.add(m.iface);
        this.ifaceErrors.delete(m.iface);
        this.failures = 0;
        this.lastError = '';
        this.emit('listening', m.iface, m.link, again);
        return;
      }
      case 'error':
        this.lastError = m.message;
        this.ifaceErrors.set(m.iface, m.message);
        if (this.listeningOn.delete(m.iface) || this.listeningOn.size > 0) this.log.warn(`${m.message}; retrying every second (the other interfaces capture meanwhile)`);
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

  private flushStats(s: CaptureStats | undefined): void {
    const w = this.statsWaiters;
    this.statsWaiters = [];
    for (const f of w) f(s);
  }

  setDoors(doors: WireDoor[], filter: string): void {
    if (!this.setup) return;
    this.setup = { ...this.setup, doors, filter };
    this.send({ t: 'doors', doors, filter });
  }

  /** New addresses, or a new set of interfaces to capture on. */
  setLocal(local: string[], filter: string, ifaces: string[]): void {
    if (!this.setup) return;
    this.setup = { ...this.setup, local, filter, ifaces };
    for (const i of [...this.listeningOn.keys()]) if (!ifaces.includes(i)) this.listeningOn.delete(i);
    for (const i of [...this.ifaceErrors.keys()]) if (!ifaces.includes(i)) this.ifaceErrors.delete(i);
    this.send({ t: 'local', local, filter, ifaces });
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
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.listeningOn.clear();
    this.ifaceErrors.clear();
    const child = this.child;
    this.child = undefined;
    if (child) {
      child.disconnect();
      child.kill();
    }
    this.flushStats(undefined);
  }
}
