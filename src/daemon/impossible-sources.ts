/**
 * Knocks refused because their source can never be a real client
 * (sources.ts): counted, and logged once per source and minute so a spoofed
 * flood of them cannot flood the log. The daemon keeps one for its whole
 * life: the action path is rebuilt at every reload, and a memory rebuilt with
 * it would let a SIGHUP (or a stream of them) log every such source again.
 */
import type { Logger } from 'pino';

/** At most one line per source this often. */
export const IMPOSSIBLE_LOG_EVERY_MS = 60_000;
/** Bound on the sources remembered for the once-a-minute log (forgotten all at once when reached). */
export const MAX_REMEMBERED_SOURCES = 10_000;

export class ImpossibleSources {
  /** Knocks refused for an impossible source, all time. */
  refused = 0;
  private readonly lastLogged = new Map<string, number>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A completion of `door` by `src` was refused: `why` names what `src` is. */
  refuse(door: string, src: string, why: string): void {
    this.refused++;
    const now = this.now();
    const last = this.lastLogged.get(src);
    if (last !== undefined && now - last < IMPOSSIBLE_LOG_EVERY_MS) return;
    if (this.lastLogged.size >= MAX_REMEMBERED_SOURCES) this.lastLogged.clear();
    this.lastLogged.set(src, now);
    this.log.warn(
      { src, door },
      `${src}: ${door}: knock from ${why}: no rule and no command (a spoofed packet; logged once a minute per source)`,
    );
  }
}
