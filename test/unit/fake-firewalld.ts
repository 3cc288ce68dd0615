/**
 * A fake firewalld for the grant table's unit tests, as awkward as the real
 * ones (see docs and /work/shared/reference): signals carry the caller's zone
 * ("" without --zone) and rule text verbatim and are emitted inside the call,
 * before its reply; rules are matched in canonical form (unquoted text,
 * other spellings accepted); timed rules follow the version's timer code:
 *  - old (0.9–2.3.2, 2.4.0): one timer per (zone, text) as passed, cancelled
 *    only by a removal in the same words, overwritten (not cancelled) by a
 *    re-add: an orphan timer removes a re-added rule at the old expiry;
 *    `--reload` keeps the old timers;
 *  - new (2.3.3+, 2.4.1+, 2.5.x): a core timer per canonical rule (cancelled
 *    by removal) plus a signal timer that is never cancelled (a stale
 *    RichRuleRemoved at the original expiry); `--reload` with any timed rule
 *    present breaks firewalld (INVALID_ZONE from then on, no Reloaded).
 * Timers fire `lateMs` after their due time (whole-second GLib ticks).
 */
import { EventEmitter } from 'node:events';
import { normalizeRichRule } from '../../src/config/firewallcmd';
import { FirewalldError } from '../../src/firewalld/client';
import type { GrantsFirewall } from '../../src/firewalld/grant-model';
import type { SetTimer, TimerHandle } from '../../src/util/timers';

export type Op = 'add' | 'remove' | 'query' | 'version' | 'zone';

const exc = (code: string, msg: string): FirewalldError =>
  new FirewalldError(`${code}: ${msg}`, 'org.fedoraproject.FirewallD1.Exception', code);

export class Clock {
  t = 1_000_000;
  private timers: { due: number; fn: () => void; live: boolean }[] = [];
  readonly now = (): number => this.t;
  readonly setTimer: SetTimer = (fn, ms) => {
    const e = { due: this.t + Math.max(0, ms), fn, live: true };
    this.timers.push(e);
    return { cancel: () => (e.live = false) };
  };
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.live && x.due <= end).sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.t = next.due;
      next.live = false;
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

export const flush = async (): Promise<void> => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};

export class FakeFirewalld extends EventEmitter implements GrantsFirewall {
  /** Canonical `zone|rule` → the timeout it was added with. */
  readonly rules = new Map<string, number>();
  readonly calls: string[] = [];
  id = '100/:1.5';
  defaultZone = 'public';
  broken = false;
  /** Make the next calls of a kind fail with this error. */
  failures: { op: Op; err: FirewalldError }[] = [];
  private oldTimers = new Map<string, TimerHandle>();
  private coreTimers = new Map<string, TimerHandle>();
  private allTimers: TimerHandle[] = [];

  constructor(
    private readonly clock: Clock,
    public versionText = '1.3.3',
    readonly timerCode: 'old' | 'new' = 'old',
    public lateMs = 700,
  ) {
    super();
  }

  private canon(zone: string, rule: string): string {
    const z = zone === '' ? this.defaultZone : zone;
    const r = normalizeRichRule(rule);
    if (r === undefined) throw exc('INVALID_RULE', rule);
    return `${z}|${r}`;
  }
  private fail(op: Op): void {
    if (this.broken && op !== 'version') throw exc('INVALID_ZONE', this.defaultZone);
    const i = this.failures.findIndex((f) => f.op === op);
    if (i >= 0) throw this.failures.splice(i, 1)[0].err;
  }
  private timer(fn: () => void, s: number): TimerHandle {
    const h = this.clock.setTimer(fn, s * 1000 + this.lateMs);
    this.allTimers.push(h);
    return h;
  }

  async addRichRule(zone: string, rule: string, timeout: number): Promise<void> {
    this.calls.push(`add ${rule} ${timeout}`);
    this.fail('add');
    const k = this.canon(zone, rule);
    if (this.rules.has(k)) throw exc('ALREADY_ENABLED', `'${rule}' already in '${zone}'`);
    this.rules.set(k, timeout);
    if (timeout <= 0) return;
    if (this.timerCode === 'old') {
      // Keyed by the words as passed; a re-add overwrites the entry, the old timer still fires.
      this.oldTimers.set(
        `${zone}|${rule}`,
        this.timer(() => {
          if (this.rules.delete(k)) this.emit('ruleRemoved', zone, rule);
        }, timeout),
      );
    } else {
      this.coreTimers.set(
        k,
        this.timer(() => {
          this.rules.delete(k);
          this.coreTimers.delete(k);
        }, timeout),
      );
      this.timer(() => this.emit('ruleRemoved', zone, rule), timeout); // never cancelled
    }
  }
  async removeRichRule(zone: string, rule: string): Promise<void> {
    this.calls.push(`remove ${rule}`);
    this.fail('remove');
    const k = this.canon(zone, rule);
    if (!this.rules.delete(k)) throw exc('NOT_ENABLED', `'${rule}' not in '${zone}'`);
    if (this.timerCode === 'old') {
      this.oldTimers.get(`${zone}|${rule}`)?.cancel();
      this.oldTimers.delete(`${zone}|${rule}`);
    } else {
      this.coreTimers.get(k)?.cancel();
      this.coreTimers.delete(k);
    }
    this.emit('ruleRemoved', zone, rule); // firewalld signals before it replies
  }
  async queryRichRule(zone: string, rule: string): Promise<boolean> {
    this.calls.push(`query ${rule}`);
    this.fail('query');
    return this.rules.has(this.canon(zone, rule));
  }
  async getDefaultZone(): Promise<string> {
    this.fail('zone');
    return this.defaultZone;
  }
  async version(): Promise<string> {
    this.fail('version');
    return this.versionText;
  }
  async identity(): Promise<string> {
    return this.id;
  }
  /** Someone else (an admin, firewall-cmd) removes a rule, in their own words. */
  adminRemove(zone: string, rule: string): void {
    void this.removeRichRule(zone, rule);
  }
  /** `firewall-cmd --reload`. */
  reload(permanent: string[] = []): void {
    if (this.timerCode === 'new' && [...this.rules.values()].some((t) => t > 0)) {
      this.broken = true; // upstream #1597: no Reloaded, INVALID_ZONE from now on
      return;
    }
    this.rules.clear();
    for (const r of permanent) this.rules.set(this.canon('public', r), 0);
    this.emit('reloaded');
  }
  /** firewalld restarts: runtime rules and timers gone, new identity, `up`. */
  restart(permanent: string[] = []): void {
    for (const t of this.allTimers) t.cancel();
    this.oldTimers.clear();
    this.coreTimers.clear();
    this.broken = false;
    this.rules.clear();
    for (const r of permanent) this.rules.set(this.canon('public', r), 0);
    this.id = `${Number(this.id.split('/')[0]) + 100}/:1.${Math.floor(Math.random() * 100)}`;
    this.emit('up');
  }
}

export const unreachable = (): FirewalldError =>
  new FirewalldError('no answer from firewalld within 10 s', 'org.freedesktop.DBus.Error.NoReply', 'TIMEOUT');
