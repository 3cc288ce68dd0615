/**
 * A per-second budget of log lines, for lines an untrusted process (the
 * capture process) can make the daemon write: at most `perSecond` lines each
 * second; the rest are counted, and the count is reported once, at the first
 * line of a later second or one second after the first suppressed line,
 * whichever comes first.
 */
export class LogBudget {
  /** Lines suppressed, all time. */
  suppressedTotal = 0;
  private second = -1;
  private written = 0;
  private suppressed = 0;
  private armed = false;

  constructor(
    readonly perSecond: number,
    /** Says how many lines the last second(s) suppressed. */
    private readonly report: (suppressed: number) => void,
    private readonly now: () => number = Date.now,
    private readonly later: (fn: () => void, ms: number) => void = (fn, ms) => void setTimeout(fn, ms).unref(),
  ) {}

  /** May one more line be written now? (Counted when not.) */
  admit(): boolean {
    this.roll();
    if (this.written < this.perSecond) {
      this.written++;
      return true;
    }
    this.suppressed++;
    this.suppressedTotal++;
    if (!this.armed) {
      this.armed = true;
      this.later(() => {
        this.armed = false;
        this.roll();
      }, 1000);
    }
    return false;
  }

  /** A new second: report what the last one suppressed. */
  roll(): void {
    const s = Math.floor(this.now() / 1000);
    if (s === this.second) return;
    this.second = s;
    this.written = 0;
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.report(n);
  }
}
