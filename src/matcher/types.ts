/**
 * The matcher's interface types (matcher.ts): what goes in, what comes out,
 * what it counts. Types only.
 */
import type { DoorSpec } from '../model';
import type { KnockProto } from '../decode/types';

/** A candidate knock with its addresses as text (tests, models); the capture path uses `handlePacket`. */
export interface Knock {
  family: 4 | 6;
  proto: KnockProto;
  dport: number;
  /** TCP flags byte; 0 for UDP. */
  flags: number;
  /** Source port; default 0. */
  sport?: number;
  /** TCP sequence number (unsigned or `| 0`); default 0. */
  seq?: number;
  /** Canonical source address text. */
  src: string;
  /** Canonical destination address text. */
  dst: string;
}

export type MatchEvent =
  | { type: 'stage'; door: DoorSpec; src: string; family: 4 | 6; stage: number }
  | { type: 'open' | 'close'; door: DoorSpec; src: string; family: 4 | 6 }
  | { type: 'timeout'; door: DoorSpec; src: string; stage: number }
  | { type: 'spoiled'; door: DoorSpec; src: string; stage: number; proto: KnockProto; port: number };

export type MatchListener = (event: MatchEvent) => void;

export interface MatcherOptions {
  /** Upper bound on attempts in flight, all doors together. */
  maxAttempts?: number;
  /**
   * Asked before a stage-1 event (a `stage` event at stage 1, or the
   * `timeout` of a stage-1 attempt) is made; `false` drops it unmade. The
   * capture process rate-limits what a spoofed flood sends to the log this
   * way without paying for the events. Evictions are never events, only
   * counted (`stats.evicted`).
   */
  admitStage1?: (type: 'stage' | 'timeout') => boolean;
}

export interface MatcherStats {
  /** Packets that passed the candidate test (the BPF-equivalent filter). */
  candidates: number;
  /** Packets handed in that no door is interested in. */
  ignored: number;
  stages: number;
  /** TCP retransmissions of an attempt's last advancing packet, ignored. */
  retransmits: number;
  /** New-connection repeats of the port that last advanced an attempt (not its next step), ignored (not `strict_repeats`). */
  repeats: number;
  completed: number;
  spoiled: number;
  timeouts: number;
  evicted: number;
}
