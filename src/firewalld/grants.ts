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
import { normalizeRichRule } from '../config/firewallcmd';
import { StateWriter, readStateFile, type StateDoc } from '../state/statefile';
import { withOrigin, type EntryOrigin } from '../state/origin';
import { setLongTimer, type SetTimer, type TimerHandle } from '../util/timers';
import { classify, isCode } from './errors';
import { validGrantEntry } from './grant-entry';
import { grantKey as key, type Grant, type GrantsFirewall } from './grant-model';
import { FirewalldTimers, judgeRemoval } from './removal';
import { versionPolicy, type VersionPolicy } from './versions';
import type { FirewalldError } from './client';

export type { Grant, GrantState, GrantsFirewall } from './grant-model';

/** What the grant table needs of the firewalld health watcher (health.ts). */
export interface GrantsHealth {
  judge(zone: string, err: FirewalldError): boolean;
  knowZones(zones: Iterable<string>): void;
  readonly broken: string;
  on(event: 'healed', listener: () => void): unknown;
}

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
  onEnd?: (grant: Grant, why: 'expire' | 'close' | 'removed') => void;
}

/** Default bound on grants held at once. */
export const DEFAULT_MAX_GRANTS = 1000;
/** firewalld's timer fires in whole-second ticks: a rule may leave this late. After that, the daemon removes it. */
export const FIREWALLD_LATE_MS = 3000;
const FULL_LOG_EVERY_MS = 10_000;
const DEFAULT_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000];
const STATE_VERSION = 3;

type AddWhy = 'new' | 'refresh' | 'reset' | 'restore' | 'retry';

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
    fw.on('up', () => {
      // Maybe another version now; its timers died with the old process.
      this.policy = undefined;
      this.timers.clear();
      void this.reapply('firewalld is back', 'reset');
    });
    fw.on('reloaded', () => void this.reapply('firewalld reloaded', 'reset'));
    fw.on('reconnected', () => void this.reapply('D-Bus connection re-established', 'check'));
    fw.on('ruleRemoved', (zone, rule) => void this.onRemoved(zone, rule));
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
      const ctx = { src: who.src, door: who.door, zone, rule };
      const held = this.grants.get(k);
      if (held) {
        held.state = 'closing';
        held.closedBy = who.door;
        this.track(k, held);
        return this.remove(held);
      }
      let present: boolean;
      try {
        present = await this.fw.queryRichRule(zone, rule);
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
    const check = withOrigin(validGrantEntry, origin);
    const read = await readStateFile(file, 'grants', [1, 2, STATE_VERSION], check, this.now);
    for (const p of read.problems) this.log.error(p);
    if (read.movedTo)
      this.log.error(
        `${file}: moved aside to ${read.movedTo}; its ${read.entries.length} valid entr${read.entries.length === 1 ? 'y is' : 'ies are'} honoured`,
      );
    if (read.keep) this.state?.hold('could not be read at start-up');
    const now = this.now();
    const live = read.entries.filter(
      (g) => g.state === 'closing' || g.expiry === 'knockd' || g.expiresAt === 0 || g.expiresAt > now,
    );
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
          return this.add(g, this.secondsLeft(g), mode === 'reset' ? 'reset' : 'retry');
        }),
      ),
    );
  }

  /**
   * A grant whose rule may or may not still be in firewalld (daemon restart,
   * bus reconnect). There: ours as it was (overdue and knockd's to end: removed
   * now, if firewalld is the one we added it to). Gone, and firewalld has
   * restarted since we last saw the rule: lost to the restart, put back. Gone
   * otherwise (removed by hand, or a reload, while we were not listening: we
   * cannot tell which): left gone, the admin's removal wins.
   */
  private async reconcile(g: Grant, why: string): Promise<void> {
    const k = key(g.zone, g.rule);
    const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
    this.track(k, g);
    if (g.state === 'closing') return this.remove(g);
    let present: boolean;
    let fwid: string;
    try {
      present = await this.fw.queryRichRule(g.zone, g.rule);
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
    const overdue = g.expiresAt > 0 && g.expiresAt <= this.now();
    const sameFirewalld = g.firewalld !== '' && g.firewalld === fwid;
    if (present && overdue) {
      if (g.expiry === 'knockd' && sameFirewalld && g.state === 'open') {
        const ago = Math.round((this.now() - g.expiresAt) / 1000);
        this.log.warn(
          ctx,
          `${g.src}: ${g.door}: firewalld: ${g.rule} outlived its end by ${ago}s (knockd was not running then); removing it now`,
        );
        g.state = 'closing';
        this.track(k, g);
        return this.remove(g);
      }
      if (g.expiry === 'firewalld') {
        g.state = 'open';
        g.firewalld = fwid;
        return this.track(k, g); // firewalld's timer is due: checked at once, removed by us if it is late
      }
      this.untrack(k);
      this.log.warn(
        ctx,
        `${g.src}: ${g.door}: firewalld: ${g.rule} in zone ${g.zone} is past its end, but firewalld restarted since: this one is not knockd's; left alone`,
      );
      return;
    }
    if (present) {
      g.state = 'open';
      g.firewalld = fwid;
      this.track(k, g);
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld: still open ${why} in zone ${g.zone}: ${g.rule}`);
      return;
    }
    if (overdue) {
      this.untrack(k);
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld: ${g.rule} ended while knockd was not running; already gone`);
      return;
    }
    if (g.state === 'opening' || (g.firewalld !== '' && g.firewalld !== fwid)) {
      // Never reached firewalld, or firewalld restarted since (its runtime rules died with it): ours to put back.
      return this.add(g, this.secondsLeft(g), 'restore');
    }
    this.untrack(k);
    this.log.warn(
      ctx,
      `${g.src}: ${g.door}: firewalld: ${g.rule} is no longer in zone ${g.zone} (removed by hand, or a reload, while knockd was not listening); not put back`,
    );
  }

  // ------------------------------------------------------------ firewalld I/O

  /**
   * Add (or refresh) `g`'s rule for `seconds` (untimed when knockd owns the
   * expiry). `new`/`reset`: a rule that is already there is not ours (reset:
   * firewalld dropped its runtime rules, one there now is from its permanent
   * config). `refresh`/`restore`/`retry`: ALREADY_ENABLED is our own rule.
   */
  private async add(g: Grant, seconds: number, why: AddWhy, byDoor = g.door): Promise<void> {
    const k = key(g.zone, g.rule);
    const { zone, rule, src } = g;
    const ctx = { src, door: byDoor, zone, rule, timeout: seconds };
    if (g.expiresAt > 0 && seconds <= 0) {
      this.untrack(k);
      this.log.info(ctx, `${src}: ${byDoor}: firewalld: ${rule} expired before firewalld could take it; nothing added`);
      return;
    }
    const p = await this.readPolicy();
    const fwTimeout = p.expiry === 'firewalld' ? seconds : 0;
    let verb = why === 'new' ? 'added' : why === 'refresh' ? 'refreshed' : 'restored';
    try {
      if (why === 'refresh' && g.state === 'open' && g.expiry === 'firewalld') {
        // A timed rule of ours: remove + add restarts firewalld's timer.
        await this.fw.removeRichRule(zone, rule).then(
          () => this.timers.cancel(k),
          (e: unknown) => {
            if (!isCode(e, 'NOT_ENABLED')) throw e;
          },
        );
        await this.fw.addRichRule(zone, rule, fwTimeout);
      } else {
        try {
          await this.fw.addRichRule(zone, rule, fwTimeout);
        } catch (err) {
          if (!isCode(err, 'ALREADY_ENABLED')) throw err;
          if (why === 'new' || why === 'reset') {
            if (this.grants.get(k) === g) this.untrack(k);
            this.log.warn(
              ctx,
              `${src}: ${byDoor}: firewalld: rule present but not added by knockd; left alone: zone ${zone}: ${rule}`,
            );
            return;
          }
          if (why !== 'refresh') verb = 'confirmed';
        }
      }
      const confirmedAt = this.now();
      g.expiry = p.expiry;
      g.state = 'open';
      if (seconds > 0 && (p.expiry === 'firewalld' || why === 'new' || why === 'refresh'))
        g.expiresAt = confirmedAt + seconds * 1000;
      if (fwTimeout > 0) this.timers.add(k, g.expiresAt);
      g.firewalld = await this.fw.identity().catch(() => '');
      this.track(k, g);
      this.health?.knowZones([zone]);
      this.retries = 0;
      // The same words on every version: who removes it on time is said once, when the version is read.
      const t = seconds > 0 ? `timeout ${seconds}s` : 'no timeout';
      this.log.info(ctx, `${src}: ${byDoor}: firewalld: ${verb} in zone ${zone}: ${rule} (${t})`);
    } catch (err) {
      this.addFailed(g, err, byDoor);
    }
  }

  private addFailed(g: Grant, err: unknown, byDoor: string): void {
    const k = key(g.zone, g.rule);
    const { zone, rule, src } = g;
    const ctx = { src, door: byDoor, zone, rule };
    const { kind, e } = classify(err);
    if (kind === 'refused' && this.health?.judge(zone, e)) {
      g.state = 'opening';
      this.track(k, g);
      this.log.error(
        { ...ctx, err: e },
        `${src}: ${byDoor}: firewalld is broken (${this.health.broken}), not knockd.conf; rule kept and applied when firewalld works again: ${rule}`,
      );
      return;
    }
    if (kind === 'transient') {
      g.state = 'opening';
      this.track(k, g);
      const denied = e.dbusName === 'org.freedesktop.DBus.Error.AccessDenied';
      const limits = e.dbusName === 'org.freedesktop.DBus.Error.LimitsExceeded';
      this.log.error(
        { ...ctx, err: e },
        denied
          ? `${src}: ${byDoor}: the system bus denied the call to firewalld (${e.message}); run knockd as root or allow it in /usr/share/dbus-1/system.d; retrying`
          : limits
            ? `${src}: ${byDoor}: the system bus refused the call (its limit of pending calls; a flood?); rule kept and retried: ${rule} (${e.message})`
            : `${src}: ${byDoor}: firewalld is not reachable; rule kept and applied when firewalld returns: ${rule} (${e.message})`,
      );
      this.scheduleRetry();
      return;
    }
    if (this.grants.get(k) === g) this.untrack(k);
    this.log.error(
      { ...ctx, err: e },
      `${src}: ${byDoor}: firewalld refused rule in zone ${zone}: ${e.message} (check firewalld_zone/firewalld_service in knockd.conf)`,
    );
  }

  /** Remove `g`'s rule; the grant stays "closing" until firewalld confirms it is gone. */
  private async remove(g: Grant, byDoor = g.closedBy ?? g.door): Promise<void> {
    const k = key(g.zone, g.rule);
    const { zone, rule, src } = g;
    const ctx = { src, door: byDoor, zone, rule };
    try {
      await this.fw.removeRichRule(zone, rule);
      this.timers.cancel(k);
      this.untrack(k);
      this.log.info(ctx, `${src}: ${byDoor}: firewalld: removed from zone ${zone}: ${rule}`);
      this.ended(g, g.closedBy === undefined && g.expiresAt > 0 && g.expiresAt <= this.now() ? 'expire' : 'close');
    } catch (err) {
      if (isCode(err, 'NOT_ENABLED')) {
        this.untrack(k);
        this.log.info(
          ctx,
          `${src}: ${byDoor}: firewalld: already gone from zone ${zone} (expired or removed): ${rule}`,
        );
        this.ended(g, g.closedBy === undefined && g.expiresAt > 0 && g.expiresAt <= this.now() ? 'expire' : 'close');
        return;
      }
      const { e } = classify(err);
      this.log.error(
        { ...ctx, err: e },
        `${src}: ${byDoor}: firewalld: could not remove rule from zone ${zone} (${e.message}); kept as closing and retried until firewalld confirms: ${rule}`,
      );
      this.scheduleRetry();
    }
  }

  // ------------------------------------------------------- firewalld's signals

  /**
   * firewalld says a rule went, in the caller's words: zone "" is the default
   * zone, the text is normalised. Each grant it may name is judged once
   * firewalld says whether the rule is still there, after whatever we had
   * queued on it (so our own removals and refreshes are judged as such).
   */
  private async onRemoved(zoneSaid: string, ruleSaid: string): Promise<void> {
    if (this.grants.size === 0) return;
    const rule = normalizeRichRule(ruleSaid);
    let zone: string | undefined = zoneSaid;
    if (zone === '') zone = await this.fw.getDefaultZone().catch(() => undefined);
    // A text we cannot read, or a default zone we cannot learn: every grant it may name is asked about.
    const named = this.list().filter(
      (g) => (zone === undefined || g.zone === zone) && (rule === undefined || g.rule === rule),
    );
    await Promise.all(
      named.map((g) =>
        this.serial(key(g.zone, g.rule), () =>
          this.confirmRemoved(g, zoneSaid === g.zone && ruleSaid === g.rule, ruleSaid, 0),
        ),
      ),
    );
  }

  private async confirmRemoved(g: Grant, sameWords: boolean, said: string, attempt: number): Promise<void> {
    const k = key(g.zone, g.rule);
    if (this.grants.get(k) !== g) return;
    const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
    let present: boolean;
    try {
      present = await this.fw.queryRichRule(g.zone, g.rule);
    } catch (err) {
      if (attempt < 5)
        this.setTimer(
          () => void this.serial(k, () => this.confirmRemoved(g, sameWords, said, attempt + 1)),
          this.retryDelays[Math.min(attempt, this.retryDelays.length - 1)]!,
        );
      else
        this.log.warn(
          { ...ctx, err },
          `${g.src}: ${g.door}: firewalld signalled the removal of ${g.rule} but cannot say whether it is gone; still held`,
        );
      return;
    }
    const now = this.now();
    const verdict = judgeRemoval(g, present, now, !present && this.timers.dueAt(k, now, g.expiresAt));
    switch (verdict) {
      case 'present':
        this.counts.staleSignals++;
        this.log.debug(ctx, `${g.src}: ${g.door}: RichRuleRemoved for ${g.rule}, which firewalld still has: ignored`);
        return;
      case 'not-yet':
        return;
      case 'closed':
        this.untrack(k);
        this.log.info(ctx, `${g.src}: ${g.closedBy ?? g.door}: firewalld: removed from zone ${g.zone}: ${g.rule}`);
        return this.ended(g, 'close');
      case 'expired':
        this.untrack(k);
        this.log.info(ctx, `${g.src}: ${g.door}: firewalld timeout: rule expired in zone ${g.zone}: ${g.rule}`);
        return this.ended(g, 'expire');
      case 'stale-timer':
        this.counts.putBack++;
        this.log.warn(
          ctx,
          `${g.src}: ${g.door}: firewalld's own timer of an earlier grant of this rule removed it (firewalld ${this.policy?.version ?? ''} keeps the timer of a rule removed in other words); put back: ${g.rule}`,
        );
        g.state = 'opening';
        return this.add(g, this.secondsLeft(g), 'restore');
      case 'by-hand':
        // The old timer code cancels a timer on a removal in the words it was added with.
        if (sameWords) this.timers.cancel(k);
        this.counts.endedByHand++;
        this.untrack(k);
        this.log.warn(
          ctx,
          `${g.src}: ${g.door}: firewalld: rule removed outside knockd (firewall-cmd --remove-rich-rule='${said}'?) in zone ${g.zone}: ${g.rule}; grant ended, it will not be put back`,
        );
        this.ended(g, 'removed');
    }
  }

  // ------------------------------------------------------------- expiry

  /** The grant's end came: knockd's to remove, or firewalld's, believed once firewalld says the rule is gone. */
  private async expire(g: Grant): Promise<void> {
    const k = key(g.zone, g.rule);
    if (this.grants.get(k) !== g || g.state !== 'open') return;
    if (this.now() < g.expiresAt) return this.armExpiry(k, g, g.expiresAt); // refreshed meanwhile
    const ctx = { src: g.src, door: g.door, zone: g.zone, rule: g.rule };
    if (g.expiry === 'knockd') {
      this.log.info(ctx, `${g.src}: ${g.door}: grant ended (knockd removes the rule): zone ${g.zone}: ${g.rule}`);
      g.state = 'closing';
      this.track(k, g);
      return this.remove(g);
    }
    let present: boolean;
    try {
      present = await this.fw.queryRichRule(g.zone, g.rule);
    } catch {
      return this.armExpiry(k, g, this.now() + 1000);
    }
    if (!present) {
      this.untrack(k);
      this.log.info(ctx, `${g.src}: ${g.door}: firewalld timeout: rule expired in zone ${g.zone}: ${g.rule}`);
      return this.ended(g, 'expire');
    }
    if (this.now() < g.expiresAt + FIREWALLD_LATE_MS) return this.armExpiry(k, g, this.now() + 500);
    this.log.warn(
      ctx,
      `${g.src}: ${g.door}: firewalld did not remove ${g.rule} at its timeout (${FIREWALLD_LATE_MS / 1000} s late); knockd removes it`,
    );
    g.state = 'closing';
    this.track(k, g);
    return this.remove(g);
  }

  private armExpiry(k: string, g: Grant, at: number): void {
    this.expiry.get(k)?.cancel();
    this.expiry.set(
      k,
      this.setTimer(() => void this.serial(k, () => this.expire(g)), at - this.now()),
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
    if (grant.expiresAt > 0 && grant.state === 'open') this.armExpiry(k, grant, grant.expiresAt);
  }

  /** Tell GrantsOptions.onEnd (a throw there is its own problem, never the table's). */
  private ended(g: Grant, why: 'expire' | 'close' | 'removed'): void {
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
