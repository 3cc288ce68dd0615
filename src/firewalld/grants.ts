/**
 * The rich rules this daemon holds in firewalld ("grants"): the one authority
 * for what the daemon added, and the one path every firewalld door takes.
 *
 * - `open` adds a rule with a firewalld-side timeout, so the door shuts on
 *   time even if this daemon dies. Opening a rule we hold restarts its
 *   timeout (remove + add: firewalld keeps one timer per rule). A rule that is
 *   already in firewalld and that we did not add (the admin's, runtime or
 *   permanent) is left exactly as it is: not taken over, no timeout put on it.
 * - `close` removes a rule we hold. A rule we do not hold is never removed
 *   (a close knock can be spoofed from the admin's own address).
 * - A close is never forgotten: until firewalld confirms the rule is gone the
 *   grant stays, as "closing", in the table and the state file, and is
 *   retried with backoff.
 * - A rule removed outside the daemon (firewalld's RichRuleRemoved signal,
 *   not caused by our own call and not its timeout) ends the grant: it is
 *   never put back. Rules lost to a firewalld restart or reload are put back
 *   with their remaining time.
 * - Operations on the same (zone, rule) run one after another, in order.
 */
import type { Logger } from 'pino';
import { StateWriter, readStateFile, type StateDoc } from '../state/statefile';
import { setLongTimer, type SetTimer, type TimerHandle } from '../util/timers';
import { FirewalldError } from './client';
import { validGrantEntry } from './grant-entry';

/** opening: firewalld has not confirmed the add yet; open: in firewalld; closing: removal not confirmed yet. */
export type GrantState = 'opening' | 'open' | 'closing';

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
  state: GrantState;
  /** The firewalld instance (pid/bus name) the rule was last confirmed in; '' unknown. */
  firewalld: string;
}

/** What the grant table needs of firewalld (FirewalldClient; a fake in unit tests). */
export interface GrantsFirewall {
  addRichRule(zone: string, rule: string, timeout: number): Promise<void>;
  removeRichRule(zone: string, rule: string): Promise<void>;
  queryRichRule(zone: string, rule: string): Promise<boolean>;
  /** Which firewalld process answers now; changes when firewalld restarts. */
  identity(): Promise<string>;
  on(event: 'up' | 'reloaded' | 'reconnected', listener: () => void): unknown;
  on(event: 'ruleRemoved', listener: (zone: string, rule: string) => void): unknown;
}

export interface GrantsOptions {
  /** Where held grants survive restarts (grants.json). */
  stateFile?: string;
  now?: () => number;
  setTimer?: SetTimer;
  /** Backoff between retries of what firewalld has not confirmed, ms (last one repeats). */
  retryDelaysMs?: readonly number[];
}

/** A RichRuleRemoved this close to the rule's expiry is firewalld's own timeout, not an admin. */
const EXPIRY_SLACK_MS = 2000;
const DEFAULT_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];
const STATE_VERSION = 2;

const key = (zone: string, rule: string): string => `${zone}\u0000${rule}`;

/** Why firewalld did not do it, in one of three kinds. */
function classify(err: unknown): { kind: 'transient' | 'refused'; e: FirewalldError } {
  const e = err instanceof FirewalldError ? err : new FirewalldError(String(err), '', 'ERROR');
  const transient =
    e.unreachable ||
    e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied' ||
    e.code === 'NOT_RUNNING' ||
    e.code === 'RUNNING_BUT_FAILED';
  return { kind: transient ? 'transient' : 'refused', e };
}

const isCode = (err: unknown, code: string): boolean => err instanceof FirewalldError && err.code === code;

export class Grants {
  private readonly grants = new Map<string, Grant>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly expiry = new Map<string, TimerHandle>();
  /** Our own firewalld calls in flight, by key: the signals they cause are ours. */
  private readonly ownCalls = new Map<string, number>();
  private readonly state: StateWriter | undefined;
  private readonly now: () => number;
  private readonly setTimer: SetTimer;
  private readonly retryDelays: readonly number[];
  private retryTimer: TimerHandle | undefined;
  private retries = 0;
  private stopping = false;

  constructor(
    private readonly fw: GrantsFirewall,
    private readonly log: Logger,
    opts: GrantsOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.setTimer = opts.setTimer ?? setLongTimer;
    this.retryDelays = opts.retryDelaysMs ?? DEFAULT_RETRY_MS;
    this.state = opts.stateFile
      ? new StateWriter(
          opts.stateFile,
          (): StateDoc => ({ version: STATE_VERSION, key: 'grants', entries: this.list() }),
          log,
        )
      : undefined;
    fw.on('up', () => void this.reapply('firewalld is back', 'reset'));
    fw.on('reloaded', () => void this.reapply('firewalld reloaded', 'reset'));
    fw.on('reconnected', () => void this.reapply('D-Bus connection re-established', 'check'));
    fw.on('ruleRemoved', (zone, rule) => this.onRemoved(zone, rule));
  }

  // ------------------------------------------------------------------ queries

  /** Grants currently held (open, waiting for firewalld, or closing). */
  list(): Grant[] {
    return [...this.grants.values()];
  }

  /** Grants firewalld has not confirmed yet (adds and removals). */
  get pendingCount(): number {
    return this.list().filter((g) => g.state !== 'open').length;
  }

  get closingCount(): number {
    return this.list().filter((g) => g.state === 'closing').length;
  }

  // ---------------------------------------------------------------- knocks

  /** A knock opened a door: add the rule for `timeout` seconds (0: none), or refresh ours. */
  open(zone: string, rule: string, timeout: number, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      const expiresAt = timeout > 0 ? this.now() + timeout * 1000 : 0;
      const held = this.grants.get(k);
      const grant: Grant = {
        zone,
        rule,
        src: who.src,
        door: who.door,
        timeout,
        expiresAt,
        state: held?.state ?? 'opening',
        firewalld: held?.firewalld ?? '',
      };
      await this.add(grant, timeout, held ? 'refresh' : 'new');
    });
  }

  /** A knock closed a door: remove the rule if, and only if, this daemon holds it. */
  close(zone: string, rule: string, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      const ctx = { src: who.src, door: who.door, zone, rule };
      const held = this.grants.get(k);
      if (held) {
        held.state = 'closing';
        held.door = who.door; // from now on the close knock's: its logs name the door that closes
        held.src = who.src;
        this.track(k, held);
        await this.remove(held);
        return;
      }
      let present: boolean;
      try {
        present = await this.call(k, () => this.fw.queryRichRule(zone, rule));
      } catch (err) {
        this.log.warn(
          { ...ctx, err },
          `${who.src}: ${who.door}: firewalld: not held by knockd, and firewalld cannot say whether it is there (${(err as Error).message}); left alone: ${rule}`,
        );
        return;
      }
      if (present)
        this.log.warn(
          ctx,
          `${who.src}: ${who.door}: firewalld: rule present but not added by knockd; left alone: zone ${zone}: ${rule}`,
        );
      else
        this.log.info(
          ctx,
          `${who.src}: ${who.door}: firewalld: nothing to close in zone ${zone}: ${rule} was not open`,
        );
    });
  }

  // --------------------------------------------------------------- restarts

  /**
   * Take over the grants a previous run held (state file). Each is checked
   * against firewalld (see `reconcile`); a damaged file is moved aside with
   * its valid entries still honoured. Returns how many entries were valid.
   */
  async restore(file: string): Promise<number> {
    const read = await readStateFile(file, 'grants', [1, STATE_VERSION], validGrantEntry, this.now);
    for (const p of read.problems) this.log.error(p);
    if (read.movedTo)
      this.log.error(
        `${file}: moved aside to ${read.movedTo}; its ${read.entries.length} valid entr${read.entries.length === 1 ? 'y is' : 'ies are'} honoured`,
      );
    if (read.keep) this.state?.hold('could not be read at start-up');
    const now = this.now();
    const live = read.entries.filter((g) => g.state === 'closing' || g.expiresAt === 0 || g.expiresAt > now);
    await Promise.all(
      live.map((g) => this.serial(key(g.zone, g.rule), () => this.reconcile({ ...g }, 'from the previous run'))),
    );
    return live.length;
  }

  /**
   * firewalld (or our view of it) changed: `reset` after a restart or reload
   * (its runtime rules are gone: put ours back; one that is there now comes
   * from its permanent config and is the admin's), `check` after our bus
   * connection came back (signals may have been missed: reconcile each).
   */
  async reapply(why: string, mode: 'reset' | 'check' | 'pending'): Promise<void> {
    if (this.stopping) return;
    const targets = this.list().filter((g) => mode !== 'pending' || g.state !== 'open');
    if (targets.length === 0) return;
    this.log.info(
      `${why}: ${{ reset: 'restoring', check: 'checking', pending: 'retrying' }[mode]} ${targets.length} rule(s)`,
    );
    await Promise.all(
      targets.map((g) =>
        this.serial(key(g.zone, g.rule), async () => {
          if (this.grants.get(key(g.zone, g.rule)) !== g) return;
          if (g.state === 'closing') return this.remove(g);
          if (mode === 'reset') return this.add(g, this.secondsLeft(g), 'reset');
          if (mode === 'pending') return this.add(g, this.secondsLeft(g), 'retry');
          return this.reconcile(g, why);
        }),
      ),
    );
  }

  /**
   * A grant whose rule may or may not still be in firewalld (daemon restart,
   * bus reconnect): there, it is ours as it was; gone, and firewalld has
   * restarted since we last saw the rule, it was lost to the restart and is
   * put back; gone otherwise (removed by hand, or a reload, while we were not
   * listening: we cannot tell which) it is left gone: the admin's removal wins.
   */
  private async reconcile(g: Grant, why: string): Promise<void> {
    const k = key(g.zone, g.rule);
    const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
    this.track(k, g);
    if (g.state === 'closing') return this.remove(g);
    let present: boolean;
    let fwid: string;
    try {
      present = await this.call(k, () => this.fw.queryRichRule(g.zone, g.rule));
      fwid = await this.fw.identity();
    } catch (err) {
      const { kind, e } = classify(err);
      if (kind === 'refused') {
        this.untrack(k);
        this.log.error(
          { ...ctx, err: e },
          `${g.src}: ${g.door}: firewalld refused to say whether ${g.rule} is in zone ${g.zone} (${e.message}); grant dropped`,
        );
        return;
      }
      g.state = 'opening';
      this.track(k, g);
      this.log.error(
        { ...ctx, err: e },
        `${g.src}: ${g.door}: firewalld is not reachable (${e.message}); ${g.rule} is checked again when it returns`,
      );
      this.scheduleRetry();
      return;
    }
    if (present) {
      g.state = 'open';
      g.firewalld = fwid;
      this.track(k, g);
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld: still open ${why} in zone ${g.zone}: ${g.rule}`);
      return;
    }
    if (g.state === 'opening' || (g.firewalld !== '' && g.firewalld !== fwid)) {
      // Never reached firewalld, or firewalld restarted since (its runtime rules died with it): ours to put back.
      await this.add(g, this.secondsLeft(g), 'restore');
      return;
    }
    this.untrack(k);
    this.log.warn(
      ctx,
      `${g.src}: ${g.door}: firewalld: ${g.rule} is no longer in zone ${g.zone} (removed by hand, or a reload, while knockd was not listening); not put back`,
    );
  }

  // ------------------------------------------------------------ firewalld I/O

  /**
   * Add (or refresh) `g`'s rule for `timeout` seconds. `new`: a rule that is
   * already there is not ours. `refresh`: we hold it: remove + add restarts its
   * timeout. `reset`: firewalld dropped its runtime rules; one that is there now
   * is from its permanent config. `restore`/`retry`: ALREADY_ENABLED is our
   * own earlier add that landed.
   */
  private async add(g: Grant, timeout: number, why: 'new' | 'refresh' | 'reset' | 'restore' | 'retry'): Promise<void> {
    const k = key(g.zone, g.rule);
    const { zone, rule, src, door } = g;
    const ctx = { src, door, zone, rule, timeout };
    const t = timeout > 0 ? `timeout ${timeout}s` : 'no timeout';
    if (g.expiresAt > 0 && timeout <= 0) {
      this.untrack(k);
      this.log.info(ctx, `${src}: ${door}: firewalld: ${rule} expired before firewalld could take it; nothing added`);
      return;
    }
    let verb = why === 'new' ? 'added' : why === 'refresh' ? 'refreshed' : 'restored';
    try {
      try {
        await this.call(k, () => this.fw.addRichRule(zone, rule, timeout));
      } catch (err) {
        if (!isCode(err, 'ALREADY_ENABLED')) throw err;
        if (why === 'new' || why === 'reset') {
          if (this.grants.get(k) === g) this.untrack(k);
          this.log.warn(
            ctx,
            `${src}: ${door}: firewalld: rule present but not added by knockd; left alone: zone ${zone}: ${rule}`,
          );
          return;
        }
        if (why === 'restore' || why === 'retry') {
          verb = 'confirmed';
        } else {
          // Ours: restart its timeout.
          await this.call(k, () => this.fw.removeRichRule(zone, rule)).catch((e: unknown) => {
            if (!isCode(e, 'NOT_ENABLED')) throw e;
          });
          await this.call(k, () => this.fw.addRichRule(zone, rule, timeout));
        }
      }
      g.state = 'open';
      g.firewalld = await this.fw.identity().catch(() => '');
      this.track(k, g);
      this.retries = 0;
      this.log.info(ctx, `${src}: ${door}: firewalld: ${verb} in zone ${zone}: ${rule} (${t})`);
    } catch (err) {
      const { kind, e } = classify(err);
      if (kind === 'transient') {
        g.state = 'opening';
        this.track(k, g);
        const denied = e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied';
        this.log.error(
          { ...ctx, err: e },
          denied
            ? `${src}: ${door}: the system bus denied the call to firewalld (${e.message}); run knockd as root or allow it in /usr/share/dbus-1/system.d; retrying`
            : `${src}: ${door}: firewalld is not reachable; rule kept and applied when firewalld returns: ${rule} (${e.message})`,
        );
        this.scheduleRetry();
      } else {
        if (this.grants.get(k) === g) this.untrack(k);
        this.log.error(
          { ...ctx, err: e },
          `${src}: ${door}: firewalld refused rule in zone ${zone}: ${e.message} (check firewalld_zone/firewalld_service in knockd.conf)`,
        );
      }
    }
  }

  /** Remove `g`'s rule; the grant stays "closing" until firewalld confirms it is gone. */
  private async remove(g: Grant): Promise<void> {
    const k = key(g.zone, g.rule);
    const { zone, rule, src, door } = g;
    const ctx = { src, door, zone, rule };
    try {
      await this.call(k, () => this.fw.removeRichRule(zone, rule));
      this.untrack(k);
      this.log.info(ctx, `${src}: ${door}: firewalld: removed from zone ${zone}: ${rule}`);
    } catch (err) {
      if (isCode(err, 'NOT_ENABLED')) {
        this.untrack(k);
        this.log.info(ctx, `${src}: ${door}: firewalld: already gone from zone ${zone} (expired or removed): ${rule}`);
        return;
      }
      const { e } = classify(err);
      this.log.error(
        { ...ctx, err: e },
        `${src}: ${door}: firewalld: could not remove rule from zone ${zone} (${e.message}); kept as closing and retried until firewalld confirms: ${rule}`,
      );
      this.scheduleRetry();
    }
  }

  /** A firewalld call on `k`: the RichRuleRemoved it causes arrives while it is counted here (firewalld signals before it replies). */
  private async call<T>(k: string, op: () => Promise<T>): Promise<T> {
    this.ownCalls.set(k, (this.ownCalls.get(k) ?? 0) + 1);
    try {
      return await op();
    } finally {
      const n = (this.ownCalls.get(k) ?? 1) - 1;
      if (n > 0) this.ownCalls.set(k, n);
      else this.ownCalls.delete(k);
    }
  }

  /** firewalld says a rule went: ours to let go of, unless we caused it. */
  private onRemoved(zone: string, rule: string): void {
    const k = key(zone, rule);
    const g = this.grants.get(k);
    if (!g || this.ownCalls.has(k)) return;
    const ctx = { src: g.src, door: g.door, zone, rule };
    this.untrack(k);
    if (g.state === 'closing') {
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld: removed from zone ${zone}: ${rule}`);
    } else if (g.expiresAt > 0 && this.now() >= g.expiresAt - EXPIRY_SLACK_MS) {
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld timeout: rule expired in zone ${zone}: ${rule}`);
    } else {
      this.log.warn(
        ctx,
        `${g.src}: ${g.door}: firewalld: rule removed outside knockd (firewall-cmd --remove-rich-rule?) in zone ${zone}: ${rule}; grant ended, it will not be put back`,
      );
    }
  }

  // ------------------------------------------------------------- bookkeeping

  private secondsLeft(g: Grant): number {
    return g.expiresAt > 0 ? Math.ceil((g.expiresAt - this.now()) / 1000) : 0;
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

  private track(k: string, grant: Grant): void {
    this.grants.set(k, grant);
    this.state?.mark();
    this.expiry.get(k)?.cancel();
    this.expiry.delete(k);
    if (grant.expiresAt > 0 && grant.state !== 'closing') {
      this.expiry.set(
        k,
        this.setTimer(() => {
          if (this.grants.get(k) !== grant || grant.state === 'closing') return;
          this.untrack(k);
          this.log.info(
            { src: grant.src, door: grant.door, zone: grant.zone, rule: grant.rule },
            `${grant.src}: ${grant.door}: firewalld timeout: rule expired in zone ${grant.zone}: ${grant.rule}`,
          );
        }, grant.expiresAt - this.now()),
      );
    }
  }

  private untrack(k: string): void {
    if (this.grants.delete(k)) this.state?.mark();
    this.expiry.get(k)?.cancel();
    this.expiry.delete(k);
  }

  /** What firewalld has not confirmed (adds and removals) is tried again with backoff, and at once when firewalld reappears. */
  private scheduleRetry(): void {
    if (this.retryTimer || this.stopping) return;
    const delay = this.retryDelays[Math.min(this.retries++, this.retryDelays.length - 1)]!;
    this.retryTimer = this.setTimer(() => {
      this.retryTimer = undefined;
      const pending = this.pendingCount;
      if (pending === 0) {
        this.retries = 0;
        return;
      }
      void this.reapply(`retrying ${pending} rule(s) firewalld has not got yet`, 'pending');
    }, delay);
  }

  /** Wait for every queued firewalld operation, but at most `deadlineMs` (shutdown: a hung firewalld must not hold it up). */
  async settle(deadlineMs = Infinity): Promise<boolean> {
    const done = (async () => {
      while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
    })();
    let timer: TimerHandle | undefined;
    const finished = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((r) => (timer = this.setTimer(() => r(false), deadlineMs))),
    ]);
    timer?.cancel();
    await this.state?.settled();
    return finished;
  }

  /** Shutdown: no more retries; what is still closing stays in the state file for the next start. */
  async stop(deadlineMs: number): Promise<boolean> {
    this.stopping = true;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    const finished = await this.settle(deadlineMs);
    this.state?.mark();
    await this.state?.settled();
    return finished;
  }

  dispose(): void {
    for (const t of this.expiry.values()) t.cancel();
    this.expiry.clear();
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.stopping = true;
  }
}
