/**
 * A bound on firewalld calls in flight on one bus connection. dbus-daemon
 * refuses more than `max_replies_per_connection` pending replies (128 on a
 * stock system bus) with LimitsExceeded; beyond our own, lower bound calls
 * wait here, in order, instead of failing.
 */

/** Default bound on firewalld calls in flight (below dbus-daemon's 128, leaving room for our own bus calls). */
export const DEFAULT_MAX_FIREWALLD_CALLS = 64;

export class CallLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Most calls ever waiting at once (for --status). */
  peakQueued = 0;

  constructor(readonly max: number = DEFAULT_MAX_FIREWALLD_CALLS) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`call bound must be a positive integer, not ${max}`);
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Run `op` once fewer than `max` calls are in flight (a finished call hands its slot to the longest waiting). */
  async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.peakQueued = Math.max(this.peakQueued, this.waiting.length);
      });
    } else {
      this.active++;
    }
    try {
      return await op();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
