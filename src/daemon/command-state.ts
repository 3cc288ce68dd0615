/**
 * Pending stop commands across restarts: commands.json as a previous run left
 * it, read as hostile input (state/statefile.ts), and handed to the runner.
 */
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { withOrigin, type EntryOrigin } from '../state/origin';
import { readStateFile, type StateRead } from '../state/statefile';

/** A stop command waiting for its time, as persisted in the state file. */
export interface PersistedStop {
  door: string;
  src: string;
  family: 4 | 6;
  /** The command exactly as it will run (`%IP%` already substituted). */
  stopCommand: string;
  /** Due time, ms since the epoch. */
  dueAt: number;
}

function isPersistedStop(v: unknown): v is PersistedStop {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.door === 'string' &&
    typeof o.src === 'string' &&
    isIP(o.src) !== 0 &&
    (o.family === 4 || o.family === 6) &&
    isIP(o.src) === o.family &&
    typeof o.stopCommand === 'string' &&
    o.stopCommand !== '' &&
    typeof o.dueAt === 'number' &&
    Number.isFinite(o.dueAt)
  );
}

/**
 * Read the pending stop commands a previous run left in `file`. A missing
 * file means none; a damaged one is moved aside and every valid entry in it
 * still returned (a stop command that was due must still run), with each
 * problem naming the file and the entry. With `origin` (state-origin.ts), an
 * entry no door of the current config could have made is refused the same
 * way: it is never run.
 */
export async function loadPendingStops(
  file: string,
  origin?: EntryOrigin<PersistedStop>,
): Promise<StateRead<PersistedStop>> {
  return readStateFile(
    file,
    'stops',
    [1, 2],
    withOrigin<PersistedStop>(
      (raw) =>
        isPersistedStop(raw)
          ? { door: raw.door, src: raw.src, family: raw.family, stopCommand: raw.stopCommand, dueAt: raw.dueAt }
          : 'not a pending stop command (door, src, family, stopCommand, dueAt)',
      origin,
    ),
  );
}

/** What restorePendingStops needs of the runner (CommandRunner). */
export interface StopRestorer {
  restore(stops: readonly PersistedStop[]): void;
  holdState(reason: string): void;
}

/**
 * Read `file` and reschedule its stop commands on `runner` (overdue ones run
 * at once); problems (and entries `origin` refuses: never run) are logged.
 */
export async function restorePendingStops(
  file: string,
  runner: StopRestorer,
  log: Logger,
  origin?: EntryOrigin<PersistedStop>,
): Promise<void> {
  const stops = await loadPendingStops(file, origin);
  for (const p of stops.problems) log.error(p);
  if (stops.movedTo)
    log.error(
      `${file}: moved aside to ${stops.movedTo}; its ${stops.entries.length} valid stop command(s) are honoured`,
    );
  if (stops.keep) runner.holdState('could not be read at start-up');
  if (stops.entries.length) {
    log.info(
      `${stops.entries.length} stop command(s) pending from the previous run; rescheduled (overdue ones run now)`,
    );
    runner.restore(stops.entries);
  }
}
