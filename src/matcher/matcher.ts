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
 * - A retransmitted SYN is not a new knock: a TCP packet that repeats the one
 *   that last started or advanced the attempt (same source port, sequence
 *   number and destination port) is ignored; it neither spoils nor advances.
 *   An ordinary client (`nc -z`, `telnet`, bash's `/dev/tcp`) retransmits its
 *   SYN after a second when the zone drops it silently; knockd 0.8 takes that
 *   for a wrong knock.
 * - A repeated knock is not a wrong knock: a candidate on the protocol/port
 *   that last started or advanced the attempt, from a new connection (another
 *   source port or sequence number, or UDP), is ignored too, unless that port
 *   is the next step of the sequence, in which case it advances (so
 *   `1000,1000,2000` works). Browsers, phone apps and wrappers around `nc`
 *   open two connections per port. A door with `strict_repeats = yes`
 *   (`DoorSpec.strictRepeats`) keeps knockd 0.8's rule: such a repeat
 *   spoils. Retransmissions are ignored either way.
 * - Doors are independent: an attempt on one door never stops another door
 *   from starting, and a knock that spoils an attempt on a door's first port
 *   starts that door afresh (knockd 0.8 drops such a knock; see README).
 *
 * Cost per packet: one Map lookup for the port, then one hash-table probe per
 * door (doors are few and fixed by the config), no scan over sources and no
 * allocation: attempts live in typed arrays (table.ts) and an event object,
 * with the source's text, is only made when an event is emitted. Stage-1
 * events (what a spoofed flood produces) can be refused before they are made
 * (`admitStage1`).
 *
 * Memory is bounded by `maxAttempts`. When full, the oldest attempt still at
 * stage 1 is evicted first; an attempt past stage 1 is only evicted when no
 * stage-1 attempt is left, so a flood of spoofed first knocks cannot push out
 * a knocker who is already part-way through a sequence.
 */
import type { DoorSpec, KnockPort, TcpFlagRule } from '../model';
import { formatAddress, parseAddress } from '../decode/address';
import { tcpSeq } from '../decode/decode';
import { IPPROTO_TCP, type KnockProto, type Packet } from '../decode/types';
import { ADVANCED, AttemptTable, FRESH } from './table';

import type { Knock, MatchListener, MatcherOptions, MatcherStats } from './types';

export type { DoorSpec } from '../model';
export type { Knock, MatchEvent, MatchListener, MatcherOptions, MatcherStats } from './types';

/** Default bound on attempts in flight: about 6 MB of typed arrays, allocated up front, touched as used. */
export const DEFAULT_MAX_ATTEMPTS = 100_000;

const NONE = -1;

/** Per-door runtime state. */
interface DoorState {
  spec: DoorSpec;
  /** The door's `target` as address words, or undefined (the interface's own addresses). */
  target: AddressWords | undefined;
}

interface AddressWords {
  family: 4 | 6;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
}

const portKey = (proto: number, port: number): number => (proto << 16) | port;

/** Whether a packet's TCP flags satisfy a door's `tcpflags` (always true for UDP). */
export function flagsMatch(rule: TcpFlagRule, proto: number, flags: number): boolean {
  if (proto !== IPPROTO_TCP) return true;
  return (flags & rule.set) === rule.set && (flags & rule.clear) === 0;
}

const noWords = (): AddressWords => ({ family: 4, w0: 0, w1: 0, w2: 0, w3: 0 });

/** Read the 4- or 16-byte address at `b[off]` into `w` (IPv4: w3 only). No allocation. */
function readWords(w: AddressWords, family: 4 | 6, b: Buffer, off: number): AddressWords {
  w.family = family;
  if (family === 4) {
    w.w0 = w.w1 = w.w2 = 0;
    w.w3 = b.readUInt32BE(off);
  } else {
    w.w0 = b.readUInt32BE(off);
    w.w1 = b.readUInt32BE(off + 4);
    w.w2 = b.readUInt32BE(off + 8);
    w.w3 = b.readUInt32BE(off + 12);
  }
  return w;
}

function toWords(text: string, what: string, into: AddressWords = noWords()): AddressWords {
  const a = parseAddress(text);
  if (a === undefined) throw new TypeError(`matcher: ${what} ${JSON.stringify(text)} is not an IP address`);
  return readWords(into, a.family, a.bytes, 0);
}

export class Matcher {
  private doors: DoorState[] = [];
  /** protocol/port key → indices of doors using it. */
  private portIndex = new Map<number, number[]>();
  private local: AddressWords[] = [];
  private readonly max: number;
  private readonly table: AttemptTable;
  private readonly admit: (type: 'stage' | 'timeout') => boolean;
  /** The knock being handled, as words, refilled for every packet: no objects on the per-packet path. */
  private readonly src = noWords();
  private readonly dst = noWords();
  private sport = 0;
  private seq = 0;
  private readonly text = Buffer.alloc(16);
  readonly stats: MatcherStats = {
    candidates: 0,
    ignored: 0,
    stages: 0,
    retransmits: 0,
    repeats: 0,
    completed: 0,
    spoiled: 0,
    timeouts: 0,
    evicted: 0,
  };

  constructor(
    doors: readonly DoorSpec[],
    private readonly listener: MatchListener,
    opts: MatcherOptions = {},
  ) {
    this.max = Math.max(1, opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.admit = opts.admitStage1 ?? (() => true);
    this.table = new AttemptTable(this.max, doors.length);
    this.setDoors(doors);
  }

  /**
   * Replace the door set (config reload). Attempts in flight are kept for
   * doors that still exist under the same name with the same sequence; the
   * new door's timeout and flags apply from now on.
   */
  setDoors(doors: readonly DoorSpec[]): void {
    const map = this.doors.map((d) =>
      doors.findIndex((n) => n.name === d.spec.name && sameSequence(n.sequence, d.spec.sequence)),
    );
    this.doors = doors.map((spec) => ({
      spec,
      target: spec.target !== undefined ? toWords(spec.target, `door ${spec.name}: target`) : undefined,
    }));
    this.table.remapDoors(map, doors.length);
    this.portIndex.clear();
    this.doors.forEach((d, i) => {
      for (const key of new Set(d.spec.sequence.map((p) => portKey(p.proto, p.port)))) {
        const list = this.portIndex.get(key);
        if (list) list.push(i);
        else this.portIndex.set(key, [i]);
      }
    });
  }

  /** The interface's own addresses (text); knocks must be sent to one of them unless a door has a target. */
  setLocalAddresses(addrs: Iterable<string>): void {
    this.local = [...addrs].map((a) => toWords(a, 'local address'));
  }

  /** Cheap pre-test for the capture path: could a packet to this protocol/port matter at all? */
  watches(proto: number, port: number): boolean {
    return this.portIndex.has(portKey(proto, port));
  }

  /** Number of attempts in flight. */
  get size(): number {
    return this.table.size;
  }

  /** Feed one knock given as text. `now` is a monotonic clock in milliseconds. */
  handle(k: Knock, now: number): void {
    toWords(k.src, 'source', this.src);
    toWords(k.dst, 'destination', this.dst);
    this.sport = k.sport ?? 0;
    this.seq = (k.seq ?? 0) | 0;
    this.run(k.proto, k.dport, k.flags, now);
  }

  /** Feed one decoded packet (addresses read in place). `now` is a monotonic clock in milliseconds. */
  handlePacket(p: Packet, now: number): void {
    readWords(this.src, p.family, p.buf, p.srcOff);
    readWords(this.dst, p.family, p.buf, p.dstOff);
    this.sport = p.sport;
    this.seq = tcpSeq(p);
    this.run(p.proto, p.dport, p.flags, now);
  }

  private run(proto: KnockProto, dport: number, flags: number, now: number): void {
    const interested = this.portIndex.get(portKey(proto, dport));
    if (interested === undefined) {
      this.stats.ignored++;
      return;
    }
    // knockd's capture filter: the packet is seen only if one of the doors
    // using this port accepts its destination and flags.
    let candidate = false;
    for (let i = 0; i < interested.length; i++) {
      const spec = this.doors[interested[i]].spec;
      if (this.addressedTo(interested[i]) && flagsMatch(spec.tcpFlags, proto, flags)) {
        candidate = true;
        break;
      }
    }
    if (!candidate) {
      this.stats.ignored++;
      return;
    }
    this.stats.candidates++;
    for (let i = 0; i < this.doors.length; i++) this.step(i, proto, dport, flags, now);
  }

  private addressedTo(door: number): boolean {
    const t = this.doors[door].target;
    if (t !== undefined) return this.isDst(t);
    const local = this.local;
    for (let i = 0; i < local.length; i++) if (this.isDst(local[i])) return true;
    return false;
  }

  private isDst(a: AddressWords): boolean {
    const d = this.dst;
    return a.w3 === d.w3 && a.family === d.family && a.w2 === d.w2 && a.w1 === d.w1 && a.w0 === d.w0;
  }

  private step(di: number, proto: KnockProto, dport: number, flags: number, now: number): void {
    const spec = this.doors[di].spec;
    if (!this.addressedTo(di)) return;
    const t = this.table;
    const matchFlags = flagsMatch(spec.tcpFlags, proto, flags);
    const s = this.src;
    const r = t.find(di, s.family, s.w0, s.w1, s.w2, s.w3);
    if (r !== NONE) {
      const stage = t.stage[r];
      if (now - t.start[r] >= spec.seqTimeoutMs) {
        this.stats.timeouts++;
        if (stage !== 1 || this.admit('timeout'))
          this.listener({ type: 'timeout', door: spec, src: this.srcText(r), stage });
        t.remove(r);
      } else if (!matchFlags) {
        return; // knockd: a TCP packet with the wrong flags is ignored, it does not spoil
      } else if (proto === IPPROTO_TCP && t.repeatsLast(r, this.sport, this.seq, dport)) {
        this.stats.retransmits++;
        return; // a retransmission of the packet that got the attempt here: neither spoils nor advances
      } else {
        const want = spec.sequence[stage];
        if (want.proto === proto && want.port === dport) {
          this.stats.stages++;
          if (stage + 1 >= spec.sequence.length) {
            const family = t.family[r] as 4 | 6;
            const src = this.srcText(r);
            t.remove(r);
            this.complete(spec, src, family, stage + 1);
          } else {
            t.stage[r] = stage + 1;
            t.setLast(r, proto === IPPROTO_TCP, this.sport, this.seq, dport);
            if (t.tier[r] === FRESH) t.promote(r);
            this.listener({
              type: 'stage',
              door: spec,
              src: this.srcText(r),
              family: t.family[r] as 4 | 6,
              stage: stage + 1,
            });
          }
          return;
        }
        if (spec.strictRepeats !== true && t.repeatsPort(r, proto === IPPROTO_TCP, dport)) {
          this.stats.repeats++;
          return; // a second knock on the port just passed (a client that knocks twice): neither spoils nor advances
        }
        this.stats.spoiled++;
        this.listener({ type: 'spoiled', door: spec, src: this.srcText(r), stage, proto, port: dport });
        t.remove(r);
      }
    }
    // No attempt in flight for this door (or it just ended): does this knock start one?
    const first = spec.sequence[0];
    if (!matchFlags || first.proto !== proto || first.port !== dport) return;
    this.stats.stages++;
    if (spec.sequence.length === 1) {
      this.complete(spec, this.knockText(), s.family, 1);
      return;
    }
    if (t.size >= this.max) this.evictOne();
    const row = t.insert(di, s.family, s.w0, s.w1, s.w2, s.w3, now);
    t.setLast(row, proto === IPPROTO_TCP, this.sport, this.seq, dport);
    if (this.admit('stage'))
      this.listener({ type: 'stage', door: spec, src: this.knockText(), family: s.family, stage: 1 });
  }

  private complete(spec: DoorSpec, src: string, family: 4 | 6, stage: number): void {
    if (stage !== 1 || this.admit('stage')) this.listener({ type: 'stage', door: spec, src, family, stage });
    this.stats.completed++;
    this.listener({ type: spec.action, door: spec, src, family });
  }

  /**
   * Evict the oldest stage-1 attempt of any door; only if there is none, the
   * oldest advanced one. Once the table is full a flood evicts on every
   * packet: nothing here allocates.
   */
  private evictOne(): void {
    if (!this.evictOldest(FRESH)) this.evictOldest(ADVANCED);
  }

  /** Evict the oldest attempt of a tier across doors (ties: the first door); false if the tier is empty. */
  private evictOldest(tier: typeof FRESH | typeof ADVANCED): boolean {
    const t = this.table;
    let victim = NONE;
    for (let d = 0; d < this.doors.length; d++) {
      const head = t.head(d, tier);
      if (head !== NONE && (victim === NONE || t.start[head] < t.start[victim])) victim = head;
    }
    if (victim === NONE) return false;
    t.remove(victim);
    this.stats.evicted++;
    return true;
  }

  /**
   * Drop attempts older than their door's seq_timeout, emitting `timeout`.
   * Call about once a second; correctness does not depend on it (every
   * lookup checks the age), it keeps memory and the log timely.
   */
  sweep(now: number): void {
    const t = this.table;
    for (let d = 0; d < this.doors.length; d++) {
      const spec = this.doors[d].spec;
      const limit = spec.seqTimeoutMs;
      // Stage-1 attempts are in start order: stop at the first live one.
      for (let r = t.head(d, FRESH); r !== NONE && now - t.start[r] >= limit; r = t.head(d, FRESH))
        this.expire(spec, r);
      // Advanced attempts are in promotion order, not start order: look at all (few; bounded anyway).
      for (let r = t.head(d, ADVANCED); r !== NONE;) {
        const next = t.next[r];
        if (now - t.start[r] >= limit) this.expire(spec, r);
        r = next;
      }
    }
  }

  private expire(spec: DoorSpec, r: number): void {
    const t = this.table;
    const stage = t.stage[r];
    this.stats.timeouts++;
    if (stage !== 1 || this.admit('timeout'))
      this.listener({ type: 'timeout', door: spec, src: this.srcText(r), stage });
    t.remove(r);
  }

  /** A row's source address as text. */
  private srcText(r: number): string {
    const t = this.table;
    return this.addressText(t.family[r] as 4 | 6, t.word(r, 0), t.word(r, 1), t.word(r, 2), t.word(r, 3));
  }

  /** The source of the knock being handled, as text. */
  private knockText(): string {
    const s = this.src;
    return this.addressText(s.family, s.w0, s.w1, s.w2, s.w3);
  }

  private addressText(family: 4 | 6, w0: number, w1: number, w2: number, w3: number): string {
    const b = this.text;
    if (family === 4) {
      b.writeUInt32BE(w3, 0);
      return formatAddress(b, 0, 4);
    }
    b.writeUInt32BE(w0, 0);
    b.writeUInt32BE(w1, 4);
    b.writeUInt32BE(w2, 8);
    b.writeUInt32BE(w3, 12);
    return formatAddress(b, 0, 6);
  }
}

function sameSequence(a: readonly KnockPort[], b: readonly KnockPort[]): boolean {
  return a.length === b.length && a.every((p, i) => p.proto === b[i].proto && p.port === b[i].port);
}
