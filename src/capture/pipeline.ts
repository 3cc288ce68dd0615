/**
 * The per-packet path, shared by the capture process and the benchmarks:
 * decode a frame in place, drop what no door listens to, and hand the packet
 * to the matcher, which reads its addresses in place too. Nothing here
 * allocates; address text is only made when the matcher emits an event.
 */
import { decodeFrame } from '../decode/decode';
import { Decoded, newPacket, type LinkType } from '../decode/types';
import type { Matcher } from '../matcher/matcher';
import type { SpaGate } from './spa-gate';
import type { FrameStats } from './protocol';

export class FramePipeline {
  private readonly packet = newPacket();
  readonly stats: FrameStats = { frames: 0, malformed: 0, ignored: 0, knocks: 0 };

  constructor(
    private readonly matcher: Matcher,
    private readonly ipv4Only = false,
    /** SPA doors' ports (UDP); undefined when there are none. */
    public spa: SpaGate | undefined = undefined,
  ) {}

  /** One captured frame; `now` is a monotonic clock in ms. */
  onFrame(link: LinkType, buf: Buffer, len: number, now: number): void {
    this.stats.frames++;
    const p = this.packet;
    const r = decodeFrame(link, buf, len, p);
    if (r !== Decoded.Ok) {
      if (r === Decoded.Malformed) this.stats.malformed++;
      else this.stats.ignored++;
      return;
    }
    if (p.family === 6 && this.ipv4Only) {
      this.stats.ignored++;
      return;
    }
    const spa = this.spa?.watches(p.proto, p.dport) === true;
    if (spa) this.spa!.handle(p);
    if (!this.matcher.watches(p.proto, p.dport)) {
      if (!spa) this.stats.ignored++;
      return;
    }
    this.stats.knocks++;
    this.matcher.handlePacket(p, now);
  }
}
