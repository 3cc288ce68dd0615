/**
 * Bound on completions entering the action path, per door: knock sequences
 * are plaintext, and one that was sniffed can be completed from any number of
 * spoofed sources. Each door has a token bucket: `perSecond` completions a
 * second on average, bursts up to `burst`. A completion beyond it gets no
 * rule and no command; refusals are logged at most once a second per door,
 * with their count. Once the flood stops the bucket refills, so a real
 * client's knock opens again within a second.
 */
import type { Logger } from 'pino';

/** Default completions a second per door (knockd.8: --max-completions). */
export const DEFAULT_MAX_COMPLETIONS = 5;
/** The burst a door's bucket holds: this many seconds' worth. */
export const BURST_SECONDS = 10;

interface Bucket {
  tokens: number;
  at: number;
  refused: number;
  loggedAt: number;
}

export class CompletionLimit {
  private readonly buckets = new Map<string, Bucket>();
  /** Completions refused, all time (for --status). */
  refusedTotal = 0;

  constructor(
    private readonly log: Logger,
    readonly perSecond: number = DEFAULT_MAX_COMPLETIONS,
    private readonly now: () => number = Date.now,
  ) {}

  get burst(): number {
    return this.perSecond * BURST_SECONDS;
  }

  /** May a completion of `door` by `src` enter the action path now? */
  take(door: string, src: string): boolean {
    const now = this.now();
    let b = this.buckets.get(door);
    if (b === undefined) {
      b = { tokens: this.burst, at: now, refused: 0, loggedAt: 0 };
      this.buckets.set(door, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.refused++;
    this.refusedTotal++;
    if (now - b.loggedAt >= 1000) {
      this.log.warn(
        { src, door },
        `${src}: ${door}: completion refused: the door is at its bound of ${this.perSecond} completions a second (burst ${this.burst}; --max-completions); ${b.refused} refused since the last such line (a sniffed sequence replayed from spoofed sources?)`,
      );
      b.loggedAt = now;
      b.refused = 0;
    }
    return false;
  }

  /** Doors no longer in the config are forgotten. */
  keep(doors: readonly string[]): void {
    for (const d of [...this.buckets.keys()]) if (!doors.includes(d)) this.buckets.delete(d);
  }
}
