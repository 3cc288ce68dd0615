/**
 * The rich rules this daemon holds in firewalld ("grants"): the one authority
 * for what the daemon added, and the one path every firewalld door takes.
 *
 * - How a grant ends on time depends on the firewalld version (versions.ts,
 *   read from firewalld's `version` property): on the old timer code the rule
 *   carries firewalld's timeout, so the door shuts on time even if this
 *   daemon dies; on 2.3.3+/2.4.1+/2.5.x (timed rules break `--reload` there)
 *   the rule is untimed and this daemon removes it at `expiresAt`, which is
 *   persisted, and at the next start if it is overdue then.
 * - A grant's end is measured from firewalld's confirmation of the add. With
 *   firewalld's timer, the grant is held until firewalld says the rule is gone
 *   (at the latest FIREWALLD_LATE_MS after its end, the daemon removes it
 *   itself): a re-knock racing firewalld's expiry refreshes a rule we still
 *   hold and never finds it "not added by knockd".
 * - `open` of a rule we hold refreshes it: the end moves, the rule stays
 *   (untimed: nothing to do in firewalld; timed: remove + add restarts
 *   firewalld's timer). A rule already in firewalld that we do not hold (the
 *   admin's, runtime or permanent) is left exactly as it is.
 * - `close` removes a rule we hold, never one we do not (a close knock can be
 *   spoofed from the admin's own address). A close is never forgotten: until
 *   firewalld confirms the rule is gone, the grant stays as "closing" in the
 *   table and the state file, and is retried with backoff.
 * - A `RichRuleRemoved` (zone "" is the default zone; rule text normalised:
 *   the signal carries the caller's words) ends a grant only once firewalld
 *   confirms the rule is gone. Removed by someone: the grant ends, and no
 *   reload or restart brings it back. Removed by an earlier firewalld timer of
 *   the same rule (old versions' orphan timers): put back.
 * - Rules lost to a firewalld restart or reload are put back with their
 *   remaining time. At most `maxGrants` are held; beyond, knocks are refused
 *   (logged rate-limited, counted in --status).
 * - Operations on the same (zone, rule) run one after another, in order.
 */
import type { Logger } from 'pino';
import { StateWriter, type StateDoc } from '../state/statefile';
import type { EntryOrigin } from '../state/origin';
import { setLongTimer, type SetTimer, type TimerHandle } from '../util/timers';
import type { AddWhy, GrantCore, GrantEnd, GrantsHealth } from './grant-core';
import { expireGrant } from './grant-expiry';
import { addGrant, closeUnheld, removeGrant } from './grant-io';
import { grantKey as key, secondsLeft, type Grant, type GrantsFirewall } from './grant-model';
import { GRANTS_STATE_VERSION as STATE_VERSION, readPreviousGrants, reconcileGrant } from './grant-reconcile';
import { onRuleRemoved } from './grant-signals';
import { FirewalldTimers } from './removal';
import { versionPolicy, type VersionPolicy } from './versions';

export type { Grant, GrantsFirewall } from './grant-model';
export type { GrantsHealth } from './grant-core';

export interface GrantsOptions {
  /** Where held grants survive restarts (grants.json). */
  stateFile?: string;
  now?: () => number;
  setTimer?: SetTimer;
  /** Backoff between retries of what firewalld has not confirmed, ms (last one repeats). */
  retryDelaysMs?: readonly number[];
  /** Bound on grants held (--max-grants). */
  maxGrants?: number;
  health?: GrantsHealth;
  /** A grant ended (after it left the table): a knock or reload closed it, it expired, or it was removed outside knockd. */
  onEnd?: (grant: Grant, why: GrantEnd) => void;
}

/** Default bound on grants held at once. */
export const DEFAULT_MAX_GRANTS = 1000;
const FULL_LOG_EVERY_MS = 10_000;
const DEFAULT_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];

/**
 * The table. Its parts (grant-io.ts: add/remove; grant-reconcile.ts: a rule
 * that may be gone; grant-signals.ts: RichRuleRemoved; grant-expiry.ts: a
 * grant's end) see it through `core` (grant-core.ts).
 */
export class Grants {
  private readonly grants = new Map<string, Grant>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly expiry = new Map<string, TimerHandle>();
  private readonly timers = new FirewalldTimers();
  private readonly state: StateWriter | undefined;
  private readonly now: () => number;
  private readonly setTimer: SetTimer;
  private readonly retryDelays: readonly number[];
  private readonly health: GrantsHealth | undefined;
  private readonly onEnd: GrantsOptions['onEnd'];
  readonly maxGrants: number;
  private policy: VersionPolicy | undefined;
  private retryTimer: TimerHandle | undefined;
  private retries = 0;
  private stopping = false;
  private fullSince = 0;
  private fullLoggedAt = -Infinity;
  /** Counters for --status. */
  readonly counts = { refusedFull: 0, staleSignals: 0, putBack: 0, endedByHand: 0 };
  private readonly core: GrantCore;

  constructor(
    private readonly fw: GrantsFirewall,
    private readonly log: Logger,
    opts: GrantsOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.setTimer = opts.setTimer ?? setLongTimer;
    this.retryDelays = opts.retryDelaysMs ?? DEFAULT_RETRY_MS;
    this.maxGrants = opts.maxGrants ?? DEFAULT_MAX_GRANTS;
    this.health = opts.health;
    this.onEnd = opts.onEnd;
    this.state = opts.stateFile
      ? new StateWriter(
          opts.stateFile,
          (): StateDoc => ({ version: STATE_VERSION, key: 'grants', entries: this.list() }),
          log,
        )
      : undefined;
    this.core = {
      fw,
      log,
      now: this.now,
      setTimer: this.setTimer,
      retryDelays: this.retryDelays,
      health: this.health,
      timers: this.timers,
      counts: this.counts,
      policy: () => this.policy,
      readPolicy: () => this.readPolicy(),
      get: (k) => this.grants.get(k),
      list: () => this.list(),
      track: (k, g) => this.track(k, g),
      untrack: (k) => this.untrack(k),
      serial: (k, op) => this.serial(k, op),
      armExpiry: (k, g, at) => this.armExpiry(k, g, at),
      scheduleRetry: () => this.scheduleRetry(),
      confirmed: () => (this.retries = 0),
      add: (g, seconds, why, byDoor) => this.add(g, seconds, why, byDoor),
      remove: (g, byDoor) => this.remove(g, byDoor),
      ended: (g, why) => this.ended(g, why),
    };
    fw.on('up', () => {
      // Maybe another version now; its timers died with the old process.
      this.policy = undefined;
      this.timers.clear();
      void this.reapply('firewalld is back', 'reset');
    });
    fw.on('reloaded', () => void this.reapply('firewalld reloaded', 'reset'));
    fw.on('reconnected', () => void this.reapply('D-Bus connection re-established', 'check'));
    fw.on('ruleRemoved', (zone, rule) => void onRuleRemoved(this.core, zone, rule));
    this.health?.on('healed', () => void this.reapply('firewalld works again', 'pending'));
  }

  // ------------------------------------------------------------------ queries

  /** Grants currently held (open, waiting for firewalld, or closing). */
  list(): Grant[] {
    return [...this.grants.values()];
  }

  /** The grant of (zone, rule), if this daemon holds it. */
  held(zone: string, rule: string): Grant | undefined {
    return this.grants.get(key(zone, rule));
  }

  /** Grants of one door (as added), for a reload that changed or removed it. */
  byDoor(door: string): Grant[] {
    return this.list().filter((g) => g.door === door);
  }

  /** Grants firewalld has not confirmed yet (adds and removals). */
  get pendingCount(): number {
    return this.list().filter((g) => g.state !== 'open').length;
  }

  get closingCount(): number {
    return this.list().filter((g) => g.state === 'closing').length;
  }

  /** The version policy in force ('' version until firewalld answered). */
  get mechanism(): VersionPolicy | undefined {
    return this.policy;
  }

  /** Read firewalld's version and log what it means (at start; again after a firewalld restart). */
  async readPolicy(): Promise<VersionPolicy> {
    if (this.policy) return this.policy;
    let version: string;
    try {
      version = await this.fw.version();
    } catch (err) {
      // Not cached: asked again at the next add. Meanwhile the mechanism that cannot break a reload.
      this.log.warn(`cannot read firewalld's version (${(err as Error).message}); knockd owns grant expiry meanwhile`);
      return versionPolicy('');
    }
    this.policy = versionPolicy(version);
    this.log.info(this.policy.why);
    return this.policy;
  }

  // ---------------------------------------------------------------- knocks

  /** A knock opened a door: add the rule for `timeout` seconds (0: no end), or refresh ours. */
  open(zone: string, rule: string, timeout: number, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      const held = this.grants.get(k);
      if (held) {
        held.timeout = timeout;
        if (held.state === 'closing') held.state = 'opening'; // its removal never got through: take it back
        delete held.closedBy;
        if (timeout > 0 && held.state === 'opening') held.expiresAt = this.now() + timeout * 1000;
        return this.add(held, timeout, 'refresh', who.door);
      }
      if (this.grants.size >= this.maxGrants) return this.refuseFull(zone, rule, who);
      const p = await this.readPolicy();
      const g: Grant = {
        zone,
        rule,
        src: who.src,
        door: who.door,
        timeout,
        expiresAt: timeout > 0 ? this.now() + timeout * 1000 : 0,
        state: 'opening',
        firewalld: '',
        expiry: p.expiry,
      };
      return this.add(g, timeout, 'new');
    });
  }

  /** A knock closed a door: remove the rule if, and only if, this daemon holds it. */
  close(zone: string, rule: string, who: { src: string; door: string }): Promise<void> {
    const k = key(zone, rule);
    return this.serial(k, async () => {
      const held = this.grants.get(k);
      if (held) {
        held.state = 'closing';
        held.closedBy = who.door;
        this.track(k, held);
        return this.remove(held);
      }
      return closeUnheld(this.core, zone, rule, who);
    });
  }

  /** Close every grant `pick` selects (a reload that removed or changed their door), each as added. */
  closeWhere(pick: (g: Grant) => boolean, why: string): Promise<void> {
    return Promise.all(
      this.list()
        .filter(pick)
        .map((g) =>
          this.serial(key(g.zone, g.rule), async () => {
            if (this.grants.get(key(g.zone, g.rule)) !== g || g.state === 'closing') return;
            this.log.info(`${g.src}: ${g.door}: ${why}: closing ${g.rule} in zone ${g.zone}`);
            g.state = 'closing';
            this.track(key(g.zone, g.rule), g);
            await this.remove(g);
          }),
        ),
    ).then(() => undefined);
  }

  // --------------------------------------------------------------- restarts

  /**
   * Take over the grants a previous run held (state file), each checked
   * against firewalld (see `reconcile`); a damaged file is moved aside with
   * its valid entries still honoured. Overdue grants whose expiry knockd owns
   * are removed now. Returns how many entries were taken. An entry `origin`
   * refuses (no door of the current config could have made it) is logged and
   * dropped: its rule is neither added nor removed.
   */
  async restore(file: string, origin?: EntryOrigin<Grant>): Promise<number> {
    const live = await readPreviousGrants(this.core, file, origin, (why) => this.state?.hold(why));
    await Promise.all(
      live.map((g) => this.serial(key(g.zone, g.rule), () => this.reconcile({ ...g }, 'from the previous run'))),
    );
    return live.length;
  }

  /**
   * firewalld (or our view of it) changed: `reset` after a restart or reload
   * (its runtime rules are gone: put ours back; one that is there now comes
   * from its permanent config and is the admin's), `check` after our bus
   * connection came back (signals may have been missed: reconcile each),
   * `pending` to retry what firewalld has not confirmed.
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
          if (mode === 'check') return this.reconcile(g, why);
          return this.add(g, secondsLeft(g, this.now()), mode === 'reset' ? 'reset' : 'retry');
        }),
      ),
    );
  }

  // ------------------------------------------------------------- the parts

  private add(g: Grant, seconds: number, why: AddWhy, byDoor?: string): Promise<void> {
    return addGrant(this.core, g, seconds, why, byDoor);
  }

  private remove(g: Grant, byDoor?: string): Promise<void> {
    return removeGrant(this.core, g, byDoor);
  }

  private reconcile(g: Grant, why: string): Promise<void> {
    return reconcileGrant(this.core, g, why);
  }

  private armExpiry(k: string, g: Grant, at: number): void {
    this.expiry.get(k)?.cancel();
    this.expiry.set(
      k,
      this.setTimer(() => void this.serial(k, () => expireGrant(this.core, g)), at - this.now()),
    );
  }

  // ------------------------------------------------------------- bookkeeping

  private refuseFull(zone: string, rule: string, who: { src: string; door: string }): void {
    this.counts.refusedFull++;
    this.fullSince++;
    const now = this.now();
    if (now - this.fullLoggedAt < FULL_LOG_EVERY_MS) return;
    this.log.error(
      { src: who.src, door: who.door, zone, rule },
      `${who.src}: ${who.door}: grant table full (${this.grants.size} held, bound --max-grants ${this.maxGrants}): ${this.fullSince} knock(s) not opened since the last such line (a flood of completions, e.g. a sniffed sequence; not a knockd.conf problem). Logged at most every ${FULL_LOG_EVERY_MS / 1000} s`,
    );
    this.fullLoggedAt = now;
    this.fullSince = 0;
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
    if (grant.expiresAt > 0 && grant.state === 'open') this.armExpiry(k, grant, grant.expiresAt);
  }

  /** Tell GrantsOptions.onEnd (a throw there is its own problem, never the table's). */
  private ended(g: Grant, why: GrantEnd): void {
    try {
      this.onEnd?.(g, why);
    } catch (err) {
      this.log.error({ err }, `${g.src}: ${g.door}: grant end hook failed: ${(err as Error).message}`);
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
    const delay = this.retryDelays[Math.min(this.retries++, this.retryDelays.length - 1)];
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
