/**
 * SPA packets whose HMAC did not verify, in the log for fail2ban: at most one
 * line per source a minute, in a stable format that
 * packaging/fail2ban/knockd.conf matches:
 *
 *     203.0.113.7: spaSSH: bad SPA packet (HMAC did not verify)
 *     203.0.113.7: spaSSH: bad SPA packet (HMAC did not verify); 41 more from this source since the last such line
 *
 * (with `-l`, `203.0.113.7 (name.example)` in front, like every knock line).
 * The capture process reports such packets (`spa-bad`, at most
 * SPA_BAD_REPORTS_PER_SECOND a second); the sources remembered here are
 * bounded by BAD_SPA_SOURCES_MAX (the oldest forgotten first: such a source
 * may get its next line early, never more than one per report).
 */

/** One line per source at most this often. */
export const BAD_SPA_LOG_INTERVAL_MS = 60_000;
/** Sources remembered for the interval above; beyond it the oldest is forgotten. */
export const BAD_SPA_SOURCES_MAX = 4096;

interface Seen {
  /** When its last line was written (monotonic ms). */
  at: number;
  /** Reports since then, not logged. */
  more: number;
}

export interface BadSpaSink {
  info(ctx: { src: string; door: string }, msg: string): void;
}

export class BadSpaLog {
  private readonly seen = new Map<string, Seen>();
  /** Lines written, and reports folded into a later line. */
  readonly stats = { lines: 0, folded: 0, forgotten: 0 };

  constructor(
    private readonly log: BadSpaSink,
    private readonly now: () => number = () => performance.now(),
    private readonly max: number = BAD_SPA_SOURCES_MAX,
  ) {}

  /** A bad SPA packet from `src` to `door`'s port; `who` is how the log names the source (`-l`). */
  report(src: string, door: string, who: string = src): void {
    const t = this.now();
    const s = this.seen.get(src);
    if (s !== undefined && t - s.at < BAD_SPA_LOG_INTERVAL_MS) {
      s.more++;
      this.stats.folded++;
      return;
    }
    const more = s?.more ?? 0;
    this.seen.delete(src); // re-inserted last: the Map's order is the order of the last lines
    if (this.seen.size >= this.max) {
      this.seen.delete(this.seen.keys().next().value as string);
      this.stats.forgotten++;
    }
    this.seen.set(src, { at: t, more: 0 });
    this.stats.lines++;
    this.log.info(
      { src, door },
      `${who}: ${door}: bad SPA packet (HMAC did not verify)` +
        (more > 0 ? `; ${more} more from this source since the last such line` : ''),
    );
  }

  get size(): number {
    return this.seen.size;
  }
}
