/**
 * Cross-door checks: doors whose knock sequences collide.
 */

import type { DoorBuilder } from './door-builder';
import { addToGroup, compatibleDoors, newGroup, type SeqGroup } from './flag-groups';
import type { Report } from './issues';
import { sequenceText } from './sequence';
import { clip } from './text';
import type { DoorConfig, KnockPort } from './types';
import { IPPROTO_TCP, IPPROTO_UDP } from '../decode/types';

/** "starts with the whole sequence of door [...]" warnings per file; then one summary warning. */
export const MAX_PREFIX_WARNINGS = 100;

/**
 * Doors whose sequences collide: same sequence, or one a prefix of another.
 * TCP knocks with incompatible flag rules (syn vs !syn...) cannot be
 * confused, so such pairs are left out.
 *
 * Near-linear in the number of doors (instead of comparing every pair):
 * the sequences go into a trie, each node holding the doors whose whole
 * sequence ends there, grouped by flag rule (at most 3^6 rules); a door
 * finds the doors with its own sequence, and those whose sequence is a
 * proper prefix of its own, on its path through the trie. A door gets at
 * most one same-sequence warning (naming the first few earlier doors), and
 * the prefix warnings stop after MAX_PREFIX_WARNINGS, with one summary.
 * Warnings on one door's Sequence line come in the order of the other door,
 * as a pairwise check would give them.
 */
export function overlapWarnings(builders: readonly DoorBuilder[], report: Report): void {
  const doors = builders
    .filter((b) => !b.duplicate && b.door.sequence.length > 0 && b.door.oneTimeSequences === undefined)
    .map((b) => b.door);
  // The trie: node 0 is the root; edges maps (node, knock) to the child node.
  const edges = new Map<number, number>();
  const edge = (node: number, p: KnockPort): number => node * PORT_KEYS + portKey(p);
  /** By node: the doors whose whole sequence ends there. */
  const groups: (SeqGroup | undefined)[] = [];
  let nodes = 1;
  /** Per door (by index in `doors`): its same-sequence warning, if any, placed by the first door it names. */
  const same: ({ at: number; message: string } | undefined)[] = [];

  // Pass 1 (doors in file order): build the trie; same sequence as earlier doors.
  doors.forEach((d, i) => {
    let node = 0;
    for (const p of d.sequence) {
      const e = edge(node, p);
      let child = edges.get(e);
      if (child === undefined) {
        child = nodes++;
        edges.set(e, child);
      }
      node = child;
    }
    let g = groups[node];
    if (g === undefined) {
      g = newGroup(d.sequence.every((p) => p.proto === IPPROTO_TCP));
      groups[node] = g;
    }
    const earlier = compatibleDoors(g, d.tcpFlags, 3, false);
    if (earlier.count > 0) {
      g.text ??= sequenceText(d);
      same[i] = { at: earlier.first[0], message: sameSequenceMessage(g.text, earlier, doors) };
    }
    addToGroup(g, d.tcpFlags, i);
  });

  // Pass 2 (doors in file order, trie complete): shorter doors whose whole
  // sequence starts this door's sequence.
  let prefixWarnings = 0;
  let prefixOmitted = 0;
  let omittedLine = 0;
  doors.forEach((long, i) => {
    const longLine = long.lines.SEQUENCE ?? long.line;
    // Prefix warnings still allowed; each group below yields at most that many.
    const room = MAX_PREFIX_WARNINGS - prefixWarnings;
    const shorts: number[] = [];
    let total = 0;
    let node: number | undefined = 0;
    for (let k = 0; k < long.sequence.length - 1 && node !== undefined; k++) {
      node = edges.get(edge(node, long.sequence[k]));
      const g = node !== undefined ? groups[node] : undefined;
      if (g === undefined) continue;
      const found = compatibleDoors(g, long.tcpFlags, room, true);
      total += found.count;
      for (const j of found.first) shorts.push(j);
    }
    // The first `room` of the shorter doors, in file order.
    shorts.sort((x, y) => x - y);
    if (shorts.length > room) shorts.length = room;
    prefixWarnings += shorts.length;
    if (total > shorts.length) {
      if (prefixOmitted === 0) omittedLine = longLine;
      prefixOmitted += total - shorts.length;
    }

    const out: { at: number; message: string }[] = shorts.map((j) => {
      const short = doors[j];
      const name = clip(short.name);
      return {
        at: j,
        message:
          `the sequence starts with the whole sequence of door [${name}] (line ${short.lines.SEQUENCE ?? short.line}): ` +
          `knocking it also triggers [${name}] after ${short.sequence.length} ports`,
      };
    });
    const s = same[i];
    if (s !== undefined) {
      let n = 0;
      while (n < out.length && (out[n] as { at: number }).at < s.at) n++;
      out.splice(n, 0, s);
    }
    for (const w of out) report.warn(longLine, w.message, long.name);
  });
  if (prefixOmitted > 0) {
    report.warn(
      omittedLine,
      `... and ${prefixOmitted} more cases of a door whose sequence starts with another door's whole sequence ` +
        `(only the first ${MAX_PREFIX_WARNINGS} are listed)`,
    );
  }
}

/** Distinct values of portKey(). */
const PORT_KEYS = 65536 * 2;

function portKey(p: KnockPort): number {
  return p.port * 2 + (p.proto === IPPROTO_UDP ? 1 : 0);
}

/** The warning for a door whose sequence earlier doors already use. */
function sameSequenceMessage(text: string, earlier: { count: number; first: number[] }, doors: DoorConfig[]): string {
  const named = earlier.first.map((j) => {
    const o = doors[j];
    return `[${clip(o.name)}] (line ${o.lines.SEQUENCE ?? o.line})`;
  });
  if (earlier.count === 1)
    return `same knock sequence (${text}) as door ${named[0] ?? ''}: one knock triggers both doors`;
  const more = earlier.count - named.length;
  const list =
    more > 0
      ? `${named.join(', ')} and ${more} more`
      : `${named.slice(0, -1).join(', ')} and ${named[named.length - 1] ?? ''}`;
  return `same knock sequence (${text}) as doors ${list}: one knock triggers all ${earlier.count + 1} doors`;
}
