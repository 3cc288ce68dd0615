/**
 * The daemon's side of the log budget for what the capture process reports
 * (stage, sequence timeout, spoiled sequence): that process is untrusted and
 * keeps its own budget, but a compromised or misbehaving one could send valid
 * events as fast as the pipe carries them. At most `perSecond` such lines are
 * written each second; the rest are counted, and the count is logged once,
 * at the first event or tick of the next second.
 */
import type { Logger } from 'pino';

/** Default budget: "Stage"/"sequence timeout"/"wrong knock" lines per second (knockd.8: EVENT LOG BUDGET). */
export const DEFAULT_EVENT_LOG_PER_SECOND = 100;

export class EventLog {
  private second = -1;
  private written = 0;
  private suppressed = 0;
  /** Lines suppressed, all time (for --status). */
  suppressedTotal = 0;

  constructor(
    private readonly log: Logger,
    readonly perSecond: number = DEFAULT_EVENT_LOG_PER_SECOND,
    private readonly now: () => number = Date.now,
  ) {}

  /** Log one event line at info level, within the budget. */
  info(ctx: { src: string; door: string }, msg: string): void {
    this.roll();
    if (this.written < this.perSecond) {
      this.written++;
      this.log.info(ctx, msg);
      return;
    }
    this.suppressed++;
    this.suppressedTotal++;
  }

  /** Called once a second (and before each line): say what the last second suppressed. */
  roll(): void {
    const s = Math.floor(this.now() / 1000);
    if (s === this.second) return;
    this.second = s;
    this.written = 0;
    if (this.suppressed === 0) return;
    this.log.warn(
      `${this.suppressed} stage/timeout/wrong-knock line(s) from the capture process suppressed in the last second (daemon log budget ${this.perSecond} a second)`,
    );
    this.suppressed = 0;
  }
}
