/**
 * Replay cache for SPA packets (fwknopd's replay_cache.c, bounded).
 *
 * Key: base64(SHA-256(payload exactly as received)) without `=`, as fwknopd's
 * digest.cache. Sound because the decoder accepts a single text per
 * authentic packet (see decode.ts), so a disguised copy never gets as far as
 * a lookup that could miss.
 *
 * Entries are inserted only for authenticated packets (after the HMAC and
 * decryption, before the age and policy checks, as fwknopd does) and kept at
 * least `windowMs` (default 2 × 120 s + 1 s: a packet stamped 120 s in the
 * future stays valid for 240 s). Older entries are dropped lazily; beyond
 * `maxEntries` the oldest entry is evicted only if it is past the window,
 * otherwise insertion fails ('full') and the caller refuses the packet:
 * fail closed, never forget an entry a replay could still use.
 *
 * O(1) per operation (amortized): a Map in insertion order, oldest first.
 * Time comes from the caller (injectable clock), in Unix milliseconds.
 */
import { createHash } from 'node:crypto';

import { SPA_MAX_PACKET_AGE } from './access';

export const DEFAULT_REPLAY_MAX_ENTRIES = 10_000;
export const DEFAULT_REPLAY_WINDOW_MS = (2 * SPA_MAX_PACKET_AGE + 1) * 1000;
/** Expired entries dropped per call at most (keeps each call O(1)). */
const PRUNE_PER_CALL = 8;
const DIGEST_RE = /^[A-Za-z0-9+/]{43}$/;

/** fwknopd's replay digest of a payload. */
export function spaReplayDigest(payload: Buffer): string {
  return createHash('sha256').update(payload).digest('base64').replace(/=+$/, '');
}

export interface ReplayCacheOptions {
  /** Most entries held (default 10 000). */
  maxEntries?: number;
  /** Minimum time an entry is kept, ms (default 241 000). */
  windowMs?: number;
}

/** State-file form: `[digest, insertedAtMs]` pairs, oldest first. */
export interface ReplayCacheJson {
  version: 1;
  entries: [string, number][];
}

export interface ReplayLoadResult {
  cache: ReplayCache;
  /** Entries left out, each with its index in the file and why. */
  dropped: { index: number; reason: string }[];
  /** Entries left out because they were past the window (not an error). */
  expired: number;
}

export class ReplayCache {
  readonly maxEntries: number;
  readonly windowMs: number;
  private readonly entries = new Map<string, number>();

  constructor(opts: ReplayCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? DEFAULT_REPLAY_MAX_ENTRIES;
    this.windowMs = opts.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1)
      throw new RangeError('maxEntries must be a positive integer');
    if (!Number.isFinite(this.windowMs) || this.windowMs < 0) throw new RangeError('windowMs must be >= 0');
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether `digest` is known (an entry still held counts, even past the window). */
  has(digest: string, nowMs: number): boolean {
    this.prune(nowMs, PRUNE_PER_CALL);
    return this.entries.has(digest);
  }

  /**
   * Remembers `digest`. 'duplicate' if it was known already (a replay);
   * 'full' if the cache holds maxEntries entries all inside the window.
   */
  insert(digest: string, nowMs: number): 'inserted' | 'duplicate' | 'full' {
    this.prune(nowMs, PRUNE_PER_CALL);
    if (this.entries.has(digest)) return 'duplicate';
    if (this.entries.size >= this.maxEntries && this.prune(nowMs, 1) === 0) return 'full';
    this.entries.set(digest, nowMs);
    return 'inserted';
  }

  /** Drops up to `max` entries from the oldest end that are past the window. */
  private prune(nowMs: number, max: number): number {
    let n = 0;
    for (const [digest, t] of this.entries) {
      if (n >= max || nowMs - t <= this.windowMs) break;
      this.entries.delete(digest);
      n++;
    }
    return n;
  }

  /** For the state file (written by the daemon with src/state/statefile.ts). */
  toJSON(): ReplayCacheJson {
    return { version: 1, entries: [...this.entries] };
  }

  /**
   * Rebuilds a cache from a state file's parsed JSON. Every entry is checked:
   * a malformed one (not a [43-char base64 digest, integer ms] pair, a
   * duplicate) is dropped with a reason, entries past the window are
   * skipped, entries stamped in the future (the clock went back) are kept as
   * if inserted now, the rest are kept (the newest `maxEntries` if there are
   * more). Never throws.
   */
  static fromJSON(data: unknown, nowMs: number, opts: ReplayCacheOptions = {}): ReplayLoadResult {
    const cache = new ReplayCache(opts);
    const dropped: ReplayLoadResult['dropped'] = [];
    let expired = 0;
    if (
      typeof data !== 'object' ||
      data === null ||
      (data as { version?: unknown }).version !== 1 ||
      !Array.isArray((data as { entries?: unknown }).entries)
    ) {
      dropped.push({
        index: -1,
        reason: 'not a replay cache (expected {"version": 1, "entries": [...]}); starting empty',
      });
      return { cache, dropped, expired };
    }
    const raw = (data as { entries: unknown[] }).entries;
    const good: { digest: string; t: number; index: number }[] = [];
    const seen = new Set<string>();
    raw.forEach((e, index) => {
      if (!Array.isArray(e) || e.length !== 2) return void dropped.push({ index, reason: 'not a [digest, time] pair' });
      const [digest, t] = e as unknown[];
      if (typeof digest !== 'string' || !DIGEST_RE.test(digest))
        return void dropped.push({ index, reason: 'digest is not 43 base64 characters' });
      if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0)
        return void dropped.push({ index, reason: 'time is not a non-negative integer (ms)' });
      if (seen.has(digest)) return void dropped.push({ index, reason: 'duplicate digest' });
      seen.add(digest);
      if (nowMs - t > cache.windowMs) {
        expired++;
        return;
      }
      // Stamped in the future (the clock went back): keep it, from now on.
      good.push({ digest, t: Math.min(t, nowMs), index });
    });
    good.sort((a, b) => a.t - b.t);
    const over = good.length - cache.maxEntries;
    for (let i = 0; i < good.length; i++) {
      const g = good[i];
      if (i < over) dropped.push({ index: g.index, reason: `more than ${cache.maxEntries} entries: oldest left out` });
      else cache.entries.set(g.digest, g.t);
    }
    return { cache, dropped, expired };
  }
}
