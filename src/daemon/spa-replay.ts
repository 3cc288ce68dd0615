/**
 * The daemon's half of Single Packet Authorization (the capture process has
 * already checked the HMAC, see capture/spa-gate.ts): decrypt, replay check,
 * timestamp and access check (src/spa/handle.ts, fwknopd's order), with the
 * replay cache kept in `--state-dir/spa-replay.json` so a packet seen before a
 * restart is still refused after it. A damaged file is moved aside and its
 * valid entries kept (state/statefile.ts).
 */
import type { Logger } from 'pino';
import type { SpaDoor } from '../model';
import { handleSpaPacket, type SpaVerdict } from '../spa/handle';
import { ReplayCache } from '../spa/replay';
import { StateWriter, readStateFile } from '../state/statefile';

export class SpaReplay {
  private cache = new ReplayCache();
  private readonly state: StateWriter;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.state = new StateWriter(
      file,
      () => ({ version: 1, key: 'entries', entries: this.cache.toJSON().entries }),
      log,
    );
  }

  async load(): Promise<void> {
    const read = await readStateFile(this.file, 'entries', [1], (raw) => raw, this.now);
    for (const p of read.problems) this.log.error(p);
    if (read.keep) this.state.hold('could not be read at start-up');
    const { cache, dropped, expired } = ReplayCache.fromJSON({ version: 1, entries: read.entries }, this.now());
    for (const d of dropped) this.log.error(`${this.file}: entry ${d.index + 1} refused: ${d.reason}`);
    this.cache = cache;
    if (cache.size || expired)
      this.log.info(`SPA replay cache: ${cache.size} packet digest(s) from the previous run (${expired} aged out)`);
  }

  /** Judge one authenticated datagram for `door`; an authentic packet is remembered (and written) whatever the verdict. */
  judge(payload: Buffer, src: string, door: SpaDoor): SpaVerdict {
    const v = handleSpaPacket(payload, src, [door], this.cache, this.now());
    if (v.message !== undefined) this.state.mark();
    return v;
  }

  settled(): Promise<void> {
    return this.state.settled();
  }
}
