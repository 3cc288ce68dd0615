/**
 * Quiet single-port doors (issue #19, item 6). A one-port door, or a door
 * whose last port carries real traffic, completes on every packet; without a
 * gate each completion removes and re-adds the firewalld rule. Here a knock
 * for a grant adds or refreshes it at most once per the door's
 * `Refresh_Interval` (default DEFAULT_REFRESH_INTERVAL_S), counted from the
 * knock that last acted on it (also while that knock's add is still on its
 * way to firewalld), capped at half the rule's timeout so the grant never runs
 * out while knocks keep coming. Knocks in between are counted, not acted on.
 * A close knock for the rule resets the interval; a grant not held (never
 * opened, expired, removed by hand) or being closed is opened at once: the
 * gate only quiets refreshes of a grant the table holds.
 *
 * Why 5 s: one firewalld round trip (remove + add) per 5 s per grant is
 * nothing, whatever the traffic; and a grant's end lags the last knock by at
 * most 5 s (against knockd's 10 s default Cmd_Timeout, or the minutes a door
 * usually stays open). `Refresh_Interval = 0` refreshes on every knock.
 */

/** Default `Refresh_Interval`, seconds (knockd.8). */
export const DEFAULT_REFRESH_INTERVAL_S = 5;
/** Grants remembered; beyond it the oldest is forgotten (that one's next knock refreshes at once). */
export const REFRESH_GATE_MAX = 65_536;

/** The interval that applies to a grant with `timeoutS` (0: no end): at most half the timeout. */
export function refreshIntervalMs(intervalS: number, timeoutS: number): number {
  const ms = intervalS * 1000;
  return timeoutS > 0 ? Math.min(ms, (timeoutS * 1000) / 2) : ms;
}

export class RefreshGate {
  private readonly last = new Map<string, number>();
  /** Knocks not acted on because the grant was refreshed less than an interval ago. */
  skipped = 0;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly max: number = REFRESH_GATE_MAX,
  ) {}

  /**
   * May a knock for the held grant `key` refresh it now? True (and the time
   * is remembered) when the last refresh was `intervalMs` or more ago.
   */
  admit(key: string, intervalMs: number): boolean {
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < intervalMs) {
      this.skipped++;
      return false;
    }
    this.acted(key, t);
    return true;
  }

  /** The grant was closed by a knock: the next open acts at once. */
  forget(key: string): void {
    this.last.delete(key);
  }

  /** A knock acted on `key`: the interval starts now. */
  acted(key: string, t: number = this.now()): void {
    this.last.delete(key);
    if (this.last.size >= this.max) this.last.delete(this.last.keys().next().value as string);
    this.last.set(key, t);
  }
}
