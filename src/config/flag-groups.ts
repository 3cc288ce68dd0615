/**
 * The doors whose whole sequence is one exact sequence, grouped by TCP flag
 * rule, and the question the cross-door checks ask of such a group: which of
 * its doors could a knock with a given flag rule also trigger? Two TCP flag
 * rules are compatible unless one requires a flag the other excludes; a
 * group with many rules answers by a table of subset sums.
 */

import type { TcpFlagRule } from './types';

/** Doors with one exact sequence, by TCP flag rule. */
export interface SeqGroup {
  /** Every port is TCP: only then can flag rules keep two doors apart (otherwise one bucket, rule 0). */
  allTcp: boolean;
  /** Per bucket: its packed flag rule (see packRule), and its doors' indices (ascending). */
  rules: number[];
  doors: number[][];
  /** Packed rule → bucket index, once there are more than a few buckets. */
  bucketOf?: Map<number, number>;
  /** Pass 2 only (the group no longer changes): packed rule of the other door → number of compatible doors... */
  counts?: Map<number, number>;
  /** ...or, for a group with many flag rules, subset sums (see compatibleDoors). */
  subsetSums?: Int32Array;
  /** The sequence as text, once needed. */
  text?: string;
}

export function newGroup(allTcp: boolean): SeqGroup {
  return { allTcp, rules: [], doors: [] };
}

/** A flag rule as one number: `set` in bits 0-5, `clear` in bits 6-11. */
function packRule(rule: TcpFlagRule): number {
  return (rule.set & 0x3f) | ((rule.clear & 0x3f) << 6);
}

export function addToGroup(g: SeqGroup, rule: TcpFlagRule, index: number): void {
  const packed = g.allTcp ? packRule(rule) : 0;
  const b = g.bucketOf !== undefined ? g.bucketOf.get(packed) : g.rules.indexOf(packed);
  if (b !== undefined && b >= 0) {
    g.doors[b].push(index);
    return;
  }
  g.rules.push(packed);
  g.doors.push([index]);
  if (g.bucketOf !== undefined) g.bucketOf.set(packed, g.rules.length - 1);
  else if (g.rules.length > 8) g.bucketOf = new Map(g.rules.map((r, n) => [r, n]));
}

/**
 * The doors of `g` that a knock matching `rule` could also trigger (see
 * flagsDisjoint): how many, and the first `limit` of them (indices,
 * ascending). With `cache` (only once the group no longer changes), counts are
 * memoised, so that a door whose prefix hits a crowded group costs O(1) once
 * no more doors are to be listed: per rule for a group with few flag rules,
 * and for one with many by a table of subset sums over the 12 bits of the
 * packed rule (a door is compatible with `rule` exactly when its packed rule
 * is a subset of compatibleMask(rule)).
 */
export function compatibleDoors(
  g: SeqGroup,
  rule: TcpFlagRule,
  limit: number,
  cache: boolean,
): { count: number; first: number[] } {
  const packed = packRule(rule);
  let known: number | undefined;
  if (cache) {
    if (g.allTcp && g.rules.length > SUBSET_SUM_MIN_RULES)
      known = (g.subsetSums ??= subsetSums(g))[compatibleMask(packed)];
    else known = g.counts?.get(packed);
  }
  if (known !== undefined && (known === 0 || limit <= 0)) return { count: known, first: [] };
  let count = 0;
  const first: number[] = [];
  for (let b = 0; b < g.rules.length; b++) {
    const r = g.rules[b];
    if (g.allTcp && flagsDisjoint(r, packed)) continue;
    const list = g.doors[b];
    count += list.length;
    // Keep the `limit` smallest indices (each list is ascending).
    for (let n = 0; n < list.length && limit > 0; n++) {
      const j = list[n];
      if (first.length === limit && j >= first[limit - 1]) break;
      let at = first.length;
      while (at > 0 && first[at - 1] > j) at--;
      first.splice(at, 0, j);
      if (first.length > limit) first.pop();
    }
  }
  if (cache && known === undefined && g.subsetSums === undefined) (g.counts ??= new Map()).set(packed, count);
  return { count, first };
}

/** Groups with more flag rules than this get a subset-sum table (4096 entries) in pass 2. */
const SUBSET_SUM_MIN_RULES = 32;

/** The packed rules compatible with `packed` are exactly its subsets: set bits not cleared by it, and the reverse. */
function compatibleMask(packed: number): number {
  return (~(packed >> 6) & 0x3f) | ((~packed & 0x3f) << 6);
}

/** sums[M] = number of doors of `g` whose packed rule is a subset of M. */
function subsetSums(g: SeqGroup): Int32Array {
  const sums = new Int32Array(4096);
  g.rules.forEach((r, b) => (sums[r] = g.doors[b].length));
  for (let bit = 1; bit < 4096; bit <<= 1) {
    for (let m = 0; m < 4096; m++) if (m & bit) sums[m] = sums[m] + sums[m ^ bit];
  }
  return sums;
}

/** No TCP packet can satisfy both rules (packed by packRule): one requires a flag the other excludes. */
function flagsDisjoint(a: number, b: number): boolean {
  return ((a & 0x3f & (b >> 6)) | (b & 0x3f & (a >> 6))) !== 0;
}
