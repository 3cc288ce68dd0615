/**
 * The rich rules this daemon holds open in firewalld ("grants").
 *
 * - `open` adds a rule with a firewalld-side timeout, so the door shuts on
 *   time even if this daemon dies. Opening a rule that is already there
 *   restarts its timeout (remove + add: firewalld keeps one timer per rule).
 * - `close` removes it; closing what is not open is logged, not an error.
 * - Operations on the same (zone, rule) run one after another, in order.
 * - firewalld going away (or reloading, which drops runtime rules) does not
 *   lose grants: they are put back with their remaining time when it returns.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { StateWriter } from '../state/statefile';
import { FirewalldError, type FirewalldClient } from './client';

export interface Grant {
  zone: string;
  rule: string;
  /** Knocker address and door, for logs and status. */
  src: string;
  door: string;
  /** Requested firewalld timeout in seconds (0: none). */
  timeout: number;
  /** Wall-clock ms when firewalld drops it; 0 when it has no timeout. */
  expiresAt: number;
  /** False while firewalld could not be reached: it is (re)applied when firewalld returns. */
  applied: boolean;
}

const key = (zone: string, rule: string): string => `${zone}\u0000${rule}`;

export class Grants {
  private readonly grants = new Map<string, Grant>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly expiry = new Map<string, NodeJS.Timeout>();
  private readonly state: StateWriter | undefined;

  constructor(
    private readonly fw: FirewalldClient,
    private readonly log: Logger,
    opts: { stateFile?: string; now?: () => number } = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.state = opts.stateFile ? new StateWriter(opts.stateFile, () => ({ version: 1, grants: this.list() }), log) : undefined;
    fw.on('up', () => void this.reapply('firewalld is back'));
    fw.on('reloaded', () => void this.reapply('firewalld reloaded'));
  }

  private readonly now: () => number;

  /**
   * Take over the grants a previous run of the daemon held (state file):
   * rules still in firewalld are tracked as they are (not added twice); rules
   * that went missing meanwhile are put back with their remaining time.
   */
  async restore(file: string): Promise<number> {
    let saved: Grant[];
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { version?: number; grants?: Grant[] };
      saved = Array.isArray(data.grants) ? data.grants : [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`ignoring unreadable state file ${file}: ${(err as Error).message}`);
      return 0;
    }
    const live = saved.filter(
      (g) => typeof g.zone === 'string' && typeof g.rule === 'string' && typeof g.expiresAt === 'number' && (g.expiresAt === 0 || g.expiresAt > this.now()),
    );
    await Promise.all(
      live.map((g) => {
        const k = key(g.zone, g.rule);
        return this.serial(k, async () => {
          const grant: Grant = { zone: g.zone, rule: g.rule, src: String(g.src), door: String(g.door), timeout: Number(g.timeout) || 0, expiresAt: g.expiresAt, applied: false };
          this.track(k, grant);
          const present = await this.fw.queryRichRule(g.zone, g.rule).catch(() => false);
          if (present) {
            grant.applied = true;
            this.log.info({ src: grant.src, door: grant.door, zone: grant.zone, rule: grant.rule }, `${grant.src}: ${grant.door}: firewalld: still open from the previous run in zone ${grant.zone}: ${grant.rule}`);
          } else {
            const left = grant.expiresAt > 0 ? Math.ceil((grant.expiresAt - this.now()) / 1000) : 0;
            await this.apply(grant, left, 'restored');
          }
        });
      }),
    );
    return live.length;
  }

  /** Grants currently held (or waiting for firewalld). */
  list(): Grant[] {
    return [...this.grants.values()];
  }

  /** Run `op` after every earlier operation on the same rule has finished. */
  private serial(k: string, op: () => Promise<void>): Promise<void> {
    const prev = this.queues.get(k) ?? Promise.resolve();
    const next = prev.then(op, op);
    this.queues.set(k, next);
    void next.finally(() => {
      if (this.queues.get(k) === next) this.queues.delete(k);
    });
    return next;
  }

  open(zone: string, rule: string, timeout: number, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      const grant: Grant = { zone, rule, src: who.src, door: who.door, timeout, expiresAt: timeout > 0 ? this.now() + timeout * 1000 : 0, applied: false };
      this.track(k, grant);
      await this.apply(grant, timeout, 'added');
    });
  }

  close(zone: string, rule: string, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      this.untrack(k);
      const ctx = { src: who.src, door: who.door, zone, rule };
      try {
        await this.fw.removeRichRule(zone, rule);
        this.log.info(ctx, `${who.src}: ${who.door}: firewalld: removed from zone ${zone}: ${rule}`);
      } catch (err) {
        if (err instanceof FirewalldError && err.code === 'NOT_ENABLED') {
          this.log.info(ctx, `${who.src}: ${who.door}: firewalld: nothing to close in zone ${zone}: ${rule} was not open`);
        } else {
          this.log.error({ ...ctx, err }, `${who.src}: ${who.door}: firewalld: could not remove rule from zone ${zone}: ${(err as Error).message}`);
        }
      }
    });
  }

  /** Add (or refresh) one rule in firewalld for `timeout` seconds. */
  private async apply(grant: Grant, timeout: number, verb: string): Promise<void> {
    const { zone, rule, src, door } = grant;
    const ctx = { src, door, zone, rule, timeout };
    const t = timeout > 0 ? `timeout ${timeout}s` : 'no timeout';
    try {
      try {
        await this.fw.addRichRule(zone, rule, timeout);
      } catch (err) {
        if (!(err instanceof FirewalldError) || err.code !== 'ALREADY_ENABLED') throw err;
        // Already open (an earlier knock, or left from before a restart): restart its timeout.
        await this.fw.removeRichRule(zone, rule).catch((e: unknown) => {
          if (!(e instanceof FirewalldError) || e.code !== 'NOT_ENABLED') throw e;
        });
        await this.fw.addRichRule(zone, rule, timeout);
        verb = 'refreshed';
      }
      grant.applied = true;
      this.retries = 0;
      this.log.info(ctx, `${src}: ${door}: firewalld: ${verb} in zone ${zone}: ${rule} (${t})`);
    } catch (err) {
      grant.applied = false;
      const e = err instanceof FirewalldError ? err : new FirewalldError(String(err), '', 'ERROR');
      if (e.unreachable) {
        this.log.error({ ...ctx, err: e }, `${src}: ${door}: firewalld is not reachable; rule kept and applied when firewalld returns: ${rule} (${e.message})`);
        this.scheduleRetry();
      } else if (e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied') {
        this.log.error(
          { ...ctx, err: e },
          `${src}: ${door}: the system bus denied the call to firewalld (${e.message}); run knockd as root or allow it in /usr/share/dbus-1/system.d; retrying`,
        );
        this.scheduleRetry();
      } else {
        this.untrack(key(zone, rule));
        this.log.error({ ...ctx, err: e }, `${src}: ${door}: firewalld refused rule in zone ${zone}: ${e.message} (check firewalld_zone/firewalld_service in knockd.conf)`);
      }
    }
  }

  private track(k: string, grant: Grant): void {
    this.grants.set(k, grant);
    this.state?.mark();
    const old = this.expiry.get(k);
    if (old) clearTimeout(old);
    this.expiry.delete(k);
    if (grant.expiresAt > 0) {
      const t = setTimeout(() => {
        if (this.grants.get(k) !== grant) return;
        this.untrack(k);
        this.log.info({ src: grant.src, door: grant.door, zone: grant.zone, rule: grant.rule }, `${grant.src}: ${grant.door}: firewalld timeout: rule expired in zone ${grant.zone}: ${grant.rule}`);
      }, grant.expiresAt - this.now());
      t.unref();
      this.expiry.set(k, t);
    }
  }

  private untrack(k: string): void {
    if (this.grants.delete(k)) this.state?.mark();
    const t = this.expiry.get(k);
    if (t) clearTimeout(t);
    this.expiry.delete(k);
  }

  /** Put every live grant back with its remaining time (after firewalld restarted or reloaded). */
  async reapply(why: string, onlyPending = false): Promise<void> {
    const live = this.list().filter((g) => !onlyPending || !g.applied);
    if (live.length === 0) return;
    this.log.info(`${why}: restoring ${live.length} rule(s)`);
    await Promise.all(
      live.map((g) =>
        this.serial(key(g.zone, g.rule), async () => {
          if (this.grants.get(key(g.zone, g.rule)) !== g) return;
          const left = g.expiresAt > 0 ? Math.ceil((g.expiresAt - this.now()) / 1000) : 0;
          if (g.expiresAt > 0 && left <= 0) return;
          await this.apply(g, left, 'restored');
        }),
      ),
    );
  }

  /** Wait for every queued firewalld operation (shutdown, tests). */
  async settle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
    await this.state?.settled();
  }

  private retryTimer: NodeJS.Timeout | undefined;
  private retries = 0;

  /** Grants firewalld has not got yet are tried again with backoff (1 s … 30 s), and at once when firewalld reappears. */
  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const delay = [1, 2, 5, 10, 30][Math.min(this.retries++, 4)]! * 1000;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const pending = this.list().filter((g) => !g.applied);
      if (pending.length === 0) {
        this.retries = 0;
        return;
      }
      void this.reapply(`retrying ${pending.length} rule(s) firewalld has not got yet`, true);
    }, delay);
    this.retryTimer.unref();
  }

  /** Rules not yet in firewalld (it was away or refused). */
  get pendingCount(): number {
    return this.list().filter((g) => !g.applied).length;
  }

  dispose(): void {
    for (const t of this.expiry.values()) clearTimeout(t);
    this.expiry.clear();
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}
