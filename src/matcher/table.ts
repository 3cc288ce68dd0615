/**
 * The matcher's attempt store: a fixed-capacity table in typed arrays, so the
 * per-packet path allocates nothing — no attempt objects, no address strings,
 * no Map entries. A spoofed flood creates and evicts an attempt per packet;
 * with objects that churn was promoted to V8's old generation and its
 * mark-compact pauses (8–38 ms) overflowed the capture ring. Here an attempt
 * is a row index; its fields live in parallel arrays.
 *
 * - Key: (door index, address family, 128-bit source address as four 32-bit
 *   words; IPv4 uses the last word only).
 * - Index: open addressing with linear probing and backward-shift deletion
 *   (no tombstones), at most half full. The hash is seeded per process, so
 *   an attacker cannot precompute sources that collide.
 * - Last advancing packet: per row the TCP source port, sequence number and
 *   destination port of the packet that last started or advanced the
 *   attempt (`lastTcp` 0 when that packet was UDP), so that its
 *   retransmission can be recognised without a lookup elsewhere.
 * - Age: every row is on one doubly linked list per (door, tier), in the
 *   order it entered the tier, so the oldest stage-1 attempt of a door is the
 *   head of its list and any row unlinks in O(1).
 */
import { randomInt } from 'node:crypto';

export const FREE = 0;
export const FRESH = 1;
export const ADVANCED = 2;
export type Tier = typeof FRESH | typeof ADVANCED;

const NONE = -1;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class AttemptTable {
  readonly capacity: number;
  /** Source address words, four per row. */
  private readonly keys: Uint32Array;
  private readonly hashes: Uint32Array;
  readonly family: Uint8Array;
  readonly door: Int32Array;
  readonly stage: Int32Array;
  readonly tier: Uint8Array;
  readonly start: Float64Array;
  /** The packet that last started or advanced the row: 1 if TCP, its source port, sequence number (`| 0`) and destination port. */
  readonly lastTcp: Uint8Array;
  readonly lastSport: Uint16Array;
  readonly lastSeq: Int32Array;
  readonly lastDport: Uint16Array;
  /** Row links: the row's (door, tier) list while in use; the free list otherwise (`next` only). */
  readonly prev: Int32Array;
  readonly next: Int32Array;
  /** Hash index: row + 1, 0 = empty. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private readonly seed: number;
  /** Rows never used yet start here (so untouched pages stay untouched). */
  private bump = 0;
  private freeHead = NONE;
  private count = 0;
  /** Per door and tier: list head (oldest), tail (newest) and length. */
  private heads: Int32Array[] = [new Int32Array(0), new Int32Array(0)];
  private tails: Int32Array[] = [new Int32Array(0), new Int32Array(0)];
  private lengths: Int32Array[] = [new Int32Array(0), new Int32Array(0)];

  constructor(capacity: number, doors: number, seed: number = randomInt(0x7fffffff)) {
    this.capacity = Math.max(1, capacity);
    const n = this.capacity;
    this.keys = new Uint32Array(n * 4);
    this.hashes = new Uint32Array(n);
    this.family = new Uint8Array(n);
    this.door = new Int32Array(n);
    this.stage = new Int32Array(n);
    this.tier = new Uint8Array(n);
    this.start = new Float64Array(n);
    this.lastTcp = new Uint8Array(n);
    this.lastSport = new Uint16Array(n);
    this.lastSeq = new Int32Array(n);
    this.lastDport = new Uint16Array(n);
    this.prev = new Int32Array(n);
    this.next = new Int32Array(n);
    let size = 16;
    while (size < n * 2) size *= 2;
    this.index = new Int32Array(size);
    this.mask = size - 1;
    this.seed = seed >>> 0;
    this.setDoorCount(doors);
  }

  get size(): number {
    return this.count;
  }

  /** Oldest row of a door's tier list, or -1. */
  head(door: number, tier: Tier): number {
    return this.heads[tier - 1][door];
  }

  /** Rows in a door's tier list. */
  length(door: number, tier: Tier): number {
    return this.lengths[tier - 1][door];
  }

  hash(door: number, family: number, w0: number, w1: number, w2: number, w3: number): number {
    let h = fmix(this.seed ^ Math.imul(door + 1, 0x9e3779b1) ^ family);
    h = fmix(h ^ w3);
    if (family === 6) {
      h = fmix(h ^ w2);
      h = fmix(h ^ w1);
      h = fmix(h ^ w0);
    }
    return h;
  }

  /** The row holding this key, or -1. The words must be unsigned (`>>> 0`). */
  find(door: number, family: number, w0: number, w1: number, w2: number, w3: number): number {
    const h = this.hash(door, family, w0, w1, w2, w3);
    const index = this.index;
    const keys = this.keys;
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const slot = index[i];
      if (slot === 0) return NONE;
      const r = slot - 1;
      const k = r * 4;
      if (
        this.hashes[r] === h &&
        keys[k + 3] === w3 &&
        this.door[r] === door &&
        this.family[r] === family &&
        keys[k + 2] === w2 &&
        keys[k + 1] === w1 &&
        keys[k] === w0
      ) {
        return r;
      }
    }
  }

  /** Source address word `i` (0..3) of a row. */
  word(row: number, i: number): number {
    return this.keys[row * 4 + i];
  }

  /**
   * Add a stage-1 row at the tail of its door's fresh list. The key must not
   * be present and the table must not be full (evict first).
   */
  insert(door: number, family: 4 | 6, w0: number, w1: number, w2: number, w3: number, now: number): number {
    let r: number;
    if (this.freeHead !== NONE) {
      r = this.freeHead;
      this.freeHead = this.next[r]!;
    } else if (this.bump < this.capacity) {
      r = this.bump++;
    } else {
      throw new RangeError(`attempt table full (${this.capacity}): evict before inserting`);
    }
    const k = r * 4;
    this.keys[k] = w0;
    this.keys[k + 1] = w1;
    this.keys[k + 2] = w2;
    this.keys[k + 3] = w3;
    this.family[r] = family;
    this.door[r] = door;
    this.stage[r] = 1;
    this.start[r] = now;
    this.lastTcp[r] = 0;
    const h = this.hash(door, family, w0, w1, w2, w3);
    this.hashes[r] = h;
    this.place(r, h);
    this.link(r, FRESH);
    this.count++;
    return r;
  }

  /** Record the packet that started or advanced a row (`tcp` false for UDP: nothing can repeat it). */
  setLast(r: number, tcp: boolean, sport: number, seq: number, dport: number): void {
    this.lastTcp[r] = tcp ? 1 : 0;
    this.lastSport[r] = sport;
    this.lastSeq[r] = seq;
    this.lastDport[r] = dport;
  }

  /** Whether a TCP packet repeats the one that last started or advanced a row (a retransmission). */
  repeatsLast(r: number, sport: number, seq: number, dport: number): boolean {
    return (
      this.lastTcp[r] === 1 &&
      this.lastSeq[r] === (seq | 0) &&
      this.lastSport[r] === sport &&
      this.lastDport[r] === dport
    );
  }

  /** Whether a packet is to the protocol/port of the packet that last started or advanced a row (any connection). */
  repeatsPort(r: number, tcp: boolean, dport: number): boolean {
    return this.lastDport[r] === dport && this.lastTcp[r] === (tcp ? 1 : 0);
  }

  /** Move a row from its door's fresh list to the tail of its advanced list. */
  promote(r: number): void {
    this.unlink(r);
    this.link(r, ADVANCED);
  }

  /** Forget a row. */
  remove(r: number): void {
    this.unlink(r);
    this.unplace(r);
    this.tier[r] = FREE;
    this.next[r] = this.freeHead;
    this.freeHead = r;
    this.count--;
  }

  /**
   * Renumber doors (config reload): `map[old]` is the door's new index, or -1
   * to drop its rows. List order is kept.
   */
  remapDoors(map: readonly number[], doors: number): void {
    // Copy the kept rows out in list order, then re-add them to an empty table.
    const kept: {
      door: number;
      tier: Tier;
      family: 4 | 6;
      w: number[];
      stage: number;
      start: number;
      last: [boolean, number, number, number];
    }[] = [];
    for (const tier of [FRESH, ADVANCED] as const) {
      for (let d = 0; d < map.length; d++) {
        if (map[d] < 0) continue;
        for (let r = this.head(d, tier); r !== NONE; r = this.next[r]!) {
          kept.push({
            door: map[d],
            tier,
            family: this.family[r] as 4 | 6,
            w: [0, 1, 2, 3].map((i) => this.word(r, i)),
            stage: this.stage[r],
            start: this.start[r],
            last: [this.lastTcp[r] === 1, this.lastSport[r], this.lastSeq[r], this.lastDport[r]],
          });
        }
      }
    }
    this.index.fill(0);
    this.tier.fill(FREE);
    this.setDoorCount(doors);
    this.count = 0;
    this.freeHead = NONE;
    this.bump = 0;
    for (const k of kept) {
      const r = this.insert(k.door, k.family, k.w[0], k.w[1], k.w[2], k.w[3], k.start);
      this.stage[r] = k.stage;
      this.setLast(r, ...k.last);
      if (k.tier === ADVANCED) this.promote(r);
    }
  }

  private setDoorCount(doors: number): void {
    for (let t = 0; t < 2; t++) {
      this.heads[t] = new Int32Array(doors).fill(NONE);
      this.tails[t] = new Int32Array(doors).fill(NONE);
      this.lengths[t] = new Int32Array(doors);
    }
  }

  private link(r: number, tier: Tier): void {
    const d = this.door[r];
    const t = tier - 1;
    const tail = this.tails[t][d];
    this.tier[r] = tier;
    this.prev[r] = tail;
    this.next[r] = NONE;
    if (tail === NONE) this.heads[t][d] = r;
    else this.next[tail] = r;
    this.tails[t][d] = r;
    this.lengths[t][d]++;
  }

  private unlink(r: number): void {
    const d = this.door[r];
    const t = this.tier[r] - 1;
    const p = this.prev[r];
    const n = this.next[r];
    if (p === NONE) this.heads[t][d] = n;
    else this.next[p] = n;
    if (n === NONE) this.tails[t][d] = p;
    else this.prev[n] = p;
    this.lengths[t][d]--;
  }

  private place(r: number, h: number): void {
    const index = this.index;
    let i = h & this.mask;
    while (index[i] !== 0) i = (i + 1) & this.mask;
    index[i] = r + 1;
  }

  /** Backward-shift deletion: later rows of the probe run move up, so lookups never see a hole mid-run. */
  private unplace(r: number): void {
    const index = this.index;
    const mask = this.mask;
    let i = this.hashes[r] & mask;
    while (index[i] !== r + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const slot = index[j];
      if (slot === 0) break;
      const home = this.hashes[slot - 1] & mask;
      // The row at j may stay if its home lies cyclically in (i, j].
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      index[i] = slot;
      i = j;
    }
    index[i] = 0;
  }
}
