/**
 * Is firewalld itself working? A firewalld can stay on the bus and still be
 * broken: on 2.3.3+/2.4.1+/2.5.x a `--reload` with a timed rule present
 * fails half-way (upstream #1597), sends no `Reloaded`, and from then on
 * every zone call answers INVALID_ZONE and the kernel drops every new
 * connection. That is firewalld's state, not knockd.conf's: this watcher
 * says so (log and `--status`), tells the admin what to do, and reports when
 * firewalld works again so the grants can be re-applied.
 *
 * Broken means: firewalld's `state` property is not RUNNING, or a zone that
 * existed (at start, or that a rule went into) answers INVALID_ZONE. It is
 * looked at every `pollMs` (two cheap calls), and at once when a grant call
 * gets INVALID_ZONE.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { setLongTimer, type SetTimer, type TimerHandle } from '../util/timers';
import { FirewalldError } from './client';

export interface HealthFirewall {
  firewalldState(): Promise<string>;
  getServices(zone: string): Promise<string[]>;
  getZones(): Promise<string[]>;
  on(event: 'up' | 'down' | 'reloaded', listener: () => void): unknown;
}

/** How often firewalld's health is looked at. */
export const HEALTH_POLL_MS = 10_000;

export const RESTART_ADVICE =
  'this is firewalld\'s own state, not knockd.conf: run "systemctl restart firewalld" (journalctl -u firewalld says why)';

export class FirewalldHealth extends EventEmitter<{ broken: [why: string]; healed: [] }> {
  private readonly zones = new Set<string>();
  private brokenWhy = '';
  private timer: TimerHandle | undefined;
  private checking: Promise<void> | undefined;
  private stopped = false;
  private readonly setTimer: SetTimer;
  private readonly pollMs: number;

  constructor(
    private readonly fw: HealthFirewall,
    private readonly log: Logger,
    opts: { setTimer?: SetTimer; pollMs?: number } = {},
  ) {
    super();
    this.setTimer = opts.setTimer ?? setLongTimer;
    this.pollMs = opts.pollMs ?? HEALTH_POLL_MS;
    // A restarted firewalld starts from scratch: judged again at once.
    fw.on('up', () => void this.check());
    // A reload that finished (it sent Reloaded) may have removed a zone on purpose: that is the
    // config's business, not a broken firewalld. A failed reload sends nothing: the zones stay known.
    fw.on('reloaded', () => void this.relearn());
  }

  private async relearn(): Promise<void> {
    try {
      const now = new Set(await this.fw.getZones());
      for (const z of [...this.zones]) if (!now.has(z)) this.zones.delete(z);
    } catch {
      /* judged by the next look */
    }
    await this.check();
  }

  /** Zones known to exist (at start, or a rule went into them). */
  knowZones(zones: Iterable<string>): void {
    for (const z of zones) this.zones.add(z);
  }

  /** '' while firewalld works; otherwise what is wrong with it. */
  get broken(): string {
    return this.brokenWhy;
  }

  /** Start looking every `pollMs`. */
  start(): void {
    this.stopped = false;
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /**
   * A grant call failed with `err` in `zone`: is that firewalld broken (true:
   * not the config's fault)? INVALID_ZONE for a zone that existed is.
   */
  judge(zone: string, err: FirewalldError): boolean {
    if (err.code !== 'INVALID_ZONE' || !this.zones.has(zone)) return false;
    this.mark(`zone "${zone}" existed and now answers INVALID_ZONE`);
    void this.check();
    return true;
  }

  /** Look now (one look at a time). */
  check(): Promise<void> {
    this.checking ??= this.look().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.setTimer(() => {
      this.timer = undefined;
      void this.check().finally(() => this.arm());
    }, this.pollMs);
  }

  private async look(): Promise<void> {
    let state: string;
    try {
      state = await this.fw.firewalldState();
    } catch (err) {
      // Not there at all is another matter (the client reports it); refused is not.
      if (err instanceof FirewalldError && err.unreachable) return;
      state = `unreadable (${(err as Error).message})`;
    }
    if (state !== 'RUNNING') {
      this.mark(`firewalld's state is ${state}`);
      return;
    }
    for (const zone of this.zones) {
      try {
        await this.fw.getServices(zone);
      } catch (err) {
        if (err instanceof FirewalldError && err.code === 'INVALID_ZONE') {
          this.mark(`firewalld's state is RUNNING but zone "${zone}", which existed, answers INVALID_ZONE`);
          return;
        }
        if (err instanceof FirewalldError && err.unreachable) return;
      }
    }
    if (this.brokenWhy !== '') {
      this.log.warn(`firewalld works again (was: ${this.brokenWhy}); re-applying the grants held`);
      this.brokenWhy = '';
      this.emit('healed');
    }
  }

  private mark(why: string): void {
    const already = this.brokenWhy !== '';
    this.brokenWhy = why;
    if (already) return; // said once per breakage; --status shows the latest reason
    this.log.error(`firewalld itself is broken: ${why}; ${RESTART_ADVICE}. Grants held are re-applied once it works`);
    this.emit('broken', why);
  }
}
