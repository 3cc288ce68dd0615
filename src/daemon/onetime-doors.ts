/**
 * One_Time_Sequences doors: each uses the first unused sequence of its file;
 * once it opens, that line is marked used (config/onetime.ts) and the door
 * moves to the next one, or is left out when the file is used up.
 *
 * `prepare` reads the files for a config without changing anything held here,
 * so a refused reload leaves the sequences in use as they were; `commit` makes
 * a prepared set the current one.
 */
import type { Logger } from 'pino';
import {
  disableOneTimeSequence,
  firstOneTimeSequence,
  type OneTimeSequence,
  type SkippedLine,
} from '../config/onetime';
import type { KnockPort } from '../model';
import type { RuntimeDoor } from './doors';

/** The doors with their one-time sequences filled in, and the sequence each one-time door uses. */
export interface PreparedOneTime {
  doors: RuntimeDoor[];
  inUse: Map<string, OneTimeSequence>;
}

/** A one-time file that cannot be read: the message names the config line and the door. */
export class OneTimeFileError extends Error {
  override name = 'OneTimeFileError';
}

/** `a` and the ports of `b` not in it, in order. */
function mergePorts(a: readonly KnockPort[], b: readonly KnockPort[]): KnockPort[] {
  const has = new Set(a.map((p) => `${p.proto}/${p.port}`));
  return [...a, ...b.filter((p) => !has.has(`${p.proto}/${p.port}`))];
}

const usedUp = (file: string, door: string): string =>
  `no more sequences left in the one time sequences file ${file} for door ${door} --> disabling the door`;

export class OneTimeDoors {
  private inUse = new Map<string, OneTimeSequence>();

  constructor(private readonly log: Logger) {}

  /** Give each One_Time_Sequences door of `doors` the first unused sequence of its file; used-up doors are left out. */
  async prepare(doors: readonly RuntimeDoor[], configFile: string): Promise<PreparedOneTime> {
    const out: RuntimeDoor[] = [];
    const inUse = new Map<string, OneTimeSequence>();
    for (const d of doors) {
      const file = d.config.oneTimeSequences;
      if (file === undefined) {
        out.push(d);
        continue;
      }
      let seq: OneTimeSequence | undefined;
      const skipped: SkippedLine[] = [];
      try {
        seq = await firstOneTimeSequence(file, skipped);
        for (const k of skipped) this.log.warn(`[${d.name}] ${file}:${k.line}: not a sequence, skipped: ${k.why}`);
      } catch (err) {
        throw new OneTimeFileError(
          `${configFile}:${d.config.lines.ONE_TIME_SEQUENCES ?? d.config.line}: [${d.name}] cannot read One_Time_Sequences file: ${(err as Error).message}`,
        );
      }
      if (seq === undefined) {
        this.log.warn(usedUp(file, d.name));
        continue;
      }
      inUse.set(d.name, seq);
      out.push({ ...d, sequence: seq.sequence, filterPorts: seq.laterPorts });
    }
    return { doors: out, inUse };
  }

  /** `p` is now the running set: say which line each door uses. */
  commit(p: PreparedOneTime): void {
    this.inUse = p.inUse;
    for (const d of p.doors) {
      const seq = p.inUse.get(d.name);
      if (seq) this.log.info(`${d.name}: one-time sequence from ${d.config.oneTimeSequences} line ${seq.line}`);
    }
  }

  /**
   * `door` opened: mark its sequence used and return the door with the next
   * one, or undefined when the file is used up (or cannot be written: the door
   * is then disabled rather than risk the used sequence working again).
   */
  async next(door: RuntimeDoor): Promise<RuntimeDoor | undefined> {
    const file = door.config.oneTimeSequences!;
    const used = this.inUse.get(door.name);
    let next: OneTimeSequence | undefined;
    try {
      if (used) await disableOneTimeSequence(file, used);
      next = await firstOneTimeSequence(file);
    } catch (err) {
      this.log.error(
        `error while disabling used one time sequence for door ${door.name} (${(err as Error).message}) --> disabling the door`,
      );
    }
    if (next === undefined) {
      this.inUse.delete(door.name);
      this.log.warn(usedUp(file, door.name));
      return undefined;
    }
    this.inUse.set(door.name, next);
    this.log.info(`${door.name}: next one-time sequence from ${file} line ${next.line}`);
    // The filter keeps the ports it had (only new ones, from lines the admin added, change it).
    return { ...door, sequence: next.sequence, filterPorts: mergePorts(door.filterPorts ?? [], next.laterPorts) };
  }
}
