/**
 * The per-packet path, shared by the daemon and the benchmarks: decode a
 * frame in place, drop what no door listens to, and only then make address
 * strings and hand the knock to the matcher.
 */
import { formatAddress } from '../decode/address';
import { decodeFrame } from '../decode/decode';
import { Decoded, newPacket, type LinkType } from '../decode/types';
import type { Matcher } from '../matcher/matcher';

export interface FrameStats {
  frames: number;
  /** Truncated or inconsistent frames: ignored and counted. */
  malformed: number;
  /** Well-formed frames that cannot be knocks (not TCP/UDP, no door's port, IPv6 with -4). */
  ignored: number;
  /** Handed to the matcher. */
  knocks: number;
}

export class FramePipeline {
  private readonly packet = newPacket();
  readonly stats: FrameStats = { frames: 0, malformed: 0, ignored: 0, knocks: 0 };

  constructor(
    private readonly matcher: Matcher,
    private readonly ipv4Only = false,
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
    if ((p.family === 6 && this.ipv4Only) || !this.matcher.watches(p.proto, p.dport)) {
      this.stats.ignored++;
      return;
    }
    this.stats.knocks++;
    this.matcher.handle(
      {
        family: p.family,
        proto: p.proto,
        dport: p.dport,
        flags: p.flags,
        src: formatAddress(p.buf, p.srcOff, p.family),
        dst: formatAddress(p.buf, p.dstOff, p.family),
      },
      now,
    );
  }
}
