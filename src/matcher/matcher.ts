/**
 * knockd's per-source state machine, pure: no pcap, no D-Bus, no timers.
 * The caller passes each candidate knock with the current monotonic time in
 * milliseconds and receives events through a listener.
 *
 * Semantics (knockd 0.8, see docs in README "Differences from knockd 0.8"):
 * - A packet is a *candidate* when some door lists its protocol/port, it is
 *   addressed to that door's target (or to one of the interface's own
 *   addresses) and, for TCP, its flags satisfy that door's `tcpflags`. This is
 *   exactly the set of packets knockd's pcap filter lets through; nothing else
 *   can advance or spoil an attempt.
 * - Per (source, door): a knock on the door's first port starts an attempt
 *   (stage 1). The next correct port with matching flags advances a stage; a
 *   candidate on a wrong port whose TCP flags match the door spoils the
 *   attempt; a TCP packet whose flags do not match is ignored; an attempt older
 *   than `seq_timeout` is dropped. Completing the last stage emits the door's
 *   action (`open` or `close`).
 * - Doors are independent: an attempt on one door never stops another door
 *   from starting, and a knock that spoils an attempt on a door's first port
 *   starts that door afresh (knockd 0.8 drops such a knock; see README).
 *
 * Cost per packet: one Map lookup for the port, then one Map lookup per door
 * (doors are few and fixed by the config), no scan over sources.
 *
 * Memory is bounded by `maxAttempts`. When full, the oldest attempt still at
 * stage 1 is evicted first; an attempt past stage 1 is only evicted when no
 * stage-1 attempt is left, so a flood of spoofed first knocks cannot push out
 * a knocker who is already part-way through a sequence.
 */
import type { KnockPort, TcpFlagRule } from '../config/types';
import { IPPROTO_TCP, type KnockProto } from '../decode/types';

/** What the matcher needs to know of a door. */
export interface DoorSpec {
  /** Section name, e.g. `openSSH`. */
  name: string;
  sequence: readonly KnockPort[];
  /** `seq_timeout` in milliseconds. */
  seqTimeoutMs: number;
  tcpFlags: TcpFlagRule;
  /** Canonical target address; undefined: the interface's own addresses. */
  target?: string;
  /** What completing the sequence means. */
  action: 'open' | 'close';
}

/** A decoded candidate knock. */
export interface Knock {
  family: 4 | 6;
  proto: KnockProto;
  dport: number;
  /** TCP flags byte; 0 for UDP. */
  flags: number;
  /** Canonical source address text. */
  src: string;
  /** Canonical destination address text. */
  dst: string;
}

export type MatchEvent =
  | { type: 'stage'; door: DoorSpec; src: string; family: 4 | 6; stage: number }
  | { type: 'open' | 'close'; door: DoorSpec; src: string; family: 4 | 6 }
  | { type: 'timeout'; door: DoorSpec; src: string; stage: number }
  | { type: 'spoiled'; door: DoorSpec; src: string; stage: number; proto: KnockProto; port: number }
  | { type: 'evicted'; door: DoorSpec; src: string; stage: number };

export type MatchListener = (event: MatchEvent) => void;

export interface MatcherOptions {
  /** Upper bound on attempts in flight, all doors together. */
  maxAttempts?: number;
}

export interface MatcherStats {
  /** Packets that passed the candidate test (the BPF-equivalent filter). */
  candidates: number;
  /** Packets handed in that no door is interested in. */
  ignored: number;
  stages: number;
  completed: number;
  spoiled: number;
  timeouts: number;
  evicted: number;
}

/** Default bound on attempts in flight: about 25 MB of state at most. */
export const DEFAULT_MAX_ATTEMPTS = 100_000;

const GONE = 0;
const FRESH = 1;
const ADVANCED = 2;
type Tier = typeof GONE | typeof FRESH | typeof ADVANCED;

interface Attempt {
  src: string;
  family: 4 | 6;
  /** Stages completed so far (1 = first port seen). */
  stage: number;
  /** Monotonic ms of the first knock. */
  start: number;
  /** Which table holds it now; GONE once completed, spoiled, timed out or evicted. */
  tier: Tier;
}

/**
 * Attempts in the order they entered a tier, oldest first. Entries that left
 * the tier since are skipped lazily, so finding the oldest live attempt is
 * O(1) amortised. (Iterating a Map from its head is not: V8 walks over every
 * deleted slot there, which made eviction slower the longer a flood lasted.)
 */
class AgeQueue {
  private items: Attempt[] = [];
  private head = 0;

  constructor(private readonly tier: Tier) {}

  push(a: Attempt): void {
    this.items.push(a);
  }

  /** The oldest attempt still in this tier. */
  oldest(): Attempt | undefined {
    const items = this.items;
    while (this.head < items.length && items[this.head]!.tier !== this.tier) this.head++;
    if (this.head > 1024 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** Per-door runtime state. */
interface DoorState {
  spec: DoorSpec;
  /** Attempts at stage 1. */
  fresh: Map<string, Attempt>;
  /** Attempts past stage 1. */
  advanced: Map<string, Attempt>;
  /** Stage-1 attempts by start time (they are never re-inserted, so this is also expiry order). */
  freshAge: AgeQueue;
  /** Advanced attempts by promotion time. */
  advancedAge: AgeQueue;
  /** Protocol/port keys this door uses anywhere in its sequence. */
  ports: Set<number>;
}

const portKey = (proto: number, port: number): number => (proto << 16) | port;

/** Whether a packet's TCP flags satisfy a door's `tcpflags` (always true for UDP). */
export function flagsMatch(rule: TcpFlagRule, proto: number, flags: number): boolean {
  if (proto !== IPPROTO_TCP) return true;
  return (flags & rule.set) === rule.set && (flags & rule.clear) === 0;
}

export class Matcher {
  private doors: DoorState[] = [];
  /** protocol/port key → indices of doors using it. */
  private portIndex = new Map<number, DoorState[]>();
  private local = new Set<string>();
  private count = 0;
  private readonly max: number;
  readonly stats: MatcherStats = { candidates: 0, ignored: 0, stages: 0, completed: 0, spoiled: 0, timeouts: 0, evicted: 0 };

  constructor(doors: readonly DoorSpec[], private readonly listener: MatchListener, opts: MatcherOptions = {}) {
    this.max = Math.max(1, opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.setDoors(doors);
  }

  /**
   * Replace the door set (config reload). Attempts in flight are kept for
   * doors that still exist under the same name with the same sequence; the
   * new door's timeout and flags apply from now on.
   */
  setDoors(doors: readonly DoorSpec[]): void {
    const old = new Map(this.doors.map((d) => [d.spec.name, d]));
    this.doors = doors.map((spec): DoorState => {
      const prev = old.get(spec.name);
      const same = prev !== undefined && sameSequence(prev.spec.sequence, spec.sequence);
      if (prev && !same) for (const a of [...prev.fresh.values(), ...prev.advanced.values()]) a.tier = GONE;
      return {
        spec,
        fresh: same ? prev.fresh : new Map(),
        advanced: same ? prev.advanced : new Map(),
        freshAge: same ? prev.freshAge : new AgeQueue(FRESH),
        advancedAge: same ? prev.advancedAge : new AgeQueue(ADVANCED),
        ports: new Set(spec.sequence.map((p) => portKey(p.proto, p.port))),
      };
    });
    for (const d of old.values()) {
      if (!this.doors.some((n) => n.fresh === d.fresh)) for (const a of [...d.fresh.values(), ...d.advanced.values()]) a.tier = GONE;
    }
    this.portIndex.clear();
    for (const d of this.doors) {
      for (const key of d.ports) {
        const list = this.portIndex.get(key);
        if (list) list.push(d);
        else this.portIndex.set(key, [d]);
      }
    }
    this.count = this.doors.reduce((n, d) => n + d.fresh.size + d.advanced.size, 0);
    while (this.count > this.max) this.evictOne();
  }

  /** The interface's own addresses (canonical text); knocks must be sent to one of them unless a door has a target. */
  setLocalAddresses(addrs: Iterable<string>): void {
    this.local = new Set(addrs);
  }

  /** Cheap pre-test for the capture path: could a packet to this protocol/port matter at all? */
  watches(proto: number, port: number): boolean {
    return this.portIndex.has(portKey(proto, port));
  }

  /** Number of attempts in flight. */
  get size(): number {
    return this.count;
  }

  /** Attempts in flight per door (for status output). */
  attemptsByDoor(): { door: string; stage1: number; advanced: number }[] {
    return this.doors.map((d) => ({ door: d.spec.name, stage1: d.fresh.size, advanced: d.advanced.size }));
  }

  private addressedTo(spec: DoorSpec, dst: string): boolean {
    return spec.target !== undefined ? spec.target === dst : this.local.has(dst);
  }

  /** Feed one knock. `now` is a monotonic clock in milliseconds. */
  handle(k: Knock, now: number): void {
    const interested = this.portIndex.get(portKey(k.proto, k.dport));
    if (interested === undefined) {
      this.stats.ignored++;
      return;
    }
    // knockd's capture filter: the packet is seen only if one of the doors
    // using this port accepts its destination and flags.
    let candidate = false;
    for (const d of interested) {
      if (this.addressedTo(d.spec, k.dst) && flagsMatch(d.spec.tcpFlags, k.proto, k.flags)) {
        candidate = true;
        break;
      }
    }
    if (!candidate) {
      this.stats.ignored++;
      return;
    }
    this.stats.candidates++;
    for (const d of this.doors) this.step(d, k, now);
  }

  private step(d: DoorState, k: Knock, now: number): void {
    const spec = d.spec;
    if (!this.addressedTo(spec, k.dst)) return;
    const matchFlags = flagsMatch(spec.tcpFlags, k.proto, k.flags);
    let a = d.fresh.get(k.src);
    let inFresh = true;
    if (a === undefined) {
      a = d.advanced.get(k.src);
      inFresh = false;
    }
    if (a !== undefined) {
      if (now - a.start >= spec.seqTimeoutMs) {
        this.remove(d, k.src, inFresh);
        this.stats.timeouts++;
        this.listener({ type: 'timeout', door: spec, src: k.src, stage: a.stage });
      } else if (!matchFlags) {
        return; // knockd: a TCP packet with the wrong flags is ignored, it does not spoil
      } else {
        const want = spec.sequence[a.stage]!;
        if (want.proto === k.proto && want.port === k.dport) {
          a.stage++;
          this.stats.stages++;
          if (a.stage >= spec.sequence.length) {
            this.remove(d, k.src, inFresh);
            this.complete(spec, a);
          } else {
            if (inFresh) {
              d.fresh.delete(k.src);
              d.advanced.set(k.src, a);
              a.tier = ADVANCED;
              d.advancedAge.push(a);
            }
            this.listener({ type: 'stage', door: spec, src: k.src, family: a.family, stage: a.stage });
          }
          return;
        }
        this.remove(d, k.src, inFresh);
        this.stats.spoiled++;
        this.listener({ type: 'spoiled', door: spec, src: k.src, stage: a.stage, proto: k.proto, port: k.dport });
      }
    }
    // No attempt in flight for this door (or it just ended): does this knock start one?
    const first = spec.sequence[0]!;
    if (!matchFlags || first.proto !== k.proto || first.port !== k.dport) return;
    const fresh: Attempt = { src: k.src, family: k.family, stage: 1, start: now, tier: FRESH };
    this.stats.stages++;
    if (spec.sequence.length === 1) {
      this.complete(spec, fresh);
      return;
    }
    if (this.count >= this.max) this.evictOne();
    d.fresh.set(k.src, fresh);
    d.freshAge.push(fresh);
    this.count++;
    this.listener({ type: 'stage', door: spec, src: k.src, family: k.family, stage: 1 });
  }

  private complete(spec: DoorSpec, a: Attempt): void {
    this.listener({ type: 'stage', door: spec, src: a.src, family: a.family, stage: a.stage });
    this.stats.completed++;
    this.listener({ type: spec.action, door: spec, src: a.src, family: a.family });
  }

  private remove(d: DoorState, src: string, inFresh: boolean): void {
    const map = inFresh ? d.fresh : d.advanced;
    const a = map.get(src);
    if (a === undefined) return;
    map.delete(src);
    a.tier = GONE;
    this.count--;
  }

  /** Evict the oldest stage-1 attempt of any door; only if there is none, the oldest advanced one. */
  private evictOne(): void {
    for (const tier of [FRESH, ADVANCED] as const) {
      let victim: DoorState | undefined;
      let victimAttempt: Attempt | undefined;
      for (const d of this.doors) {
        const head = (tier === FRESH ? d.freshAge : d.advancedAge).oldest();
        if (head === undefined) continue;
        if (victimAttempt === undefined || head.start < victimAttempt.start) {
          victim = d;
          victimAttempt = head;
        }
      }
      if (victim !== undefined && victimAttempt !== undefined) {
        this.remove(victim, victimAttempt.src, tier === FRESH);
        this.stats.evicted++;
        this.listener({ type: 'evicted', door: victim.spec, src: victimAttempt.src, stage: victimAttempt.stage });
        return;
      }
    }
  }

  /**
   * Drop attempts older than their door's seq_timeout, emitting `timeout`.
   * Call about once a second; correctness does not depend on it (every
   * lookup checks the age), it keeps memory and the log timely.
   */
  sweep(now: number): void {
    for (const d of this.doors) {
      const limit = d.spec.seqTimeoutMs;
      // Stage-1 attempts by age: stop at the first live one.
      for (let a = d.freshAge.oldest(); a !== undefined && now - a.start >= limit; a = d.freshAge.oldest()) {
        d.fresh.delete(a.src);
        this.expire(d.spec, a);
      }
      // Advanced attempts are in promotion order, not start order: look at all (few; bounded anyway).
      for (const a of d.advanced.values()) {
        if (now - a.start < limit) continue;
        d.advanced.delete(a.src);
        this.expire(d.spec, a);
      }
    }
  }

  private expire(spec: DoorSpec, a: Attempt): void {
    a.tier = GONE;
    this.count--;
    this.stats.timeouts++;
    this.listener({ type: 'timeout', door: spec, src: a.src, stage: a.stage });
  }
}

function sameSequence(a: readonly KnockPort[], b: readonly KnockPort[]): boolean {
  return a.length === b.length && a.every((p, i) => p.proto === b[i]!.proto && p.port === b[i]!.port);
}
