/**
 * What the decoders produce. One `Packet` object is reused for every frame so
 * the per-packet path allocates nothing until a frame turns out to be a
 * candidate knock; addresses stay as offsets into the capture buffer until
 * someone asks for their text (see `formatAddress`).
 */

/** IP protocol numbers we care about. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
import type { KnockProto } from '../model';

export type { KnockProto };

/** TCP flag bits, as in the TCP header's flags byte. */
export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_PSH = 0x08;
export const TH_ACK = 0x10;
export const TH_URG = 0x20;

/** Link-layer types, named as the `cap` package reports them from `open()`. */
export type LinkType = 'ETHERNET' | 'LINKTYPE_LINUX_SLL' | 'RAW' | 'NULL';

/** Outcome of decoding one frame. */
export const enum Decoded {
  /** A TCP or UDP packet over IPv4 or IPv6 with its ports: `Packet` is filled in. */
  Ok = 0,
  /** Well-formed but not for us (ARP, ICMP, a non-first fragment, ESP...): ignore silently. */
  Ignored = 1,
  /** Truncated or inconsistent headers: ignore and count. */
  Malformed = 2,
}

export interface Packet {
  /** 4 or 6. */
  family: 4 | 6;
  /** IPPROTO_TCP or IPPROTO_UDP. */
  proto: KnockProto;
  sport: number;
  dport: number;
  /** TCP flags byte (TH_* bits); 0 for UDP. */
  flags: number;
  /**
   * Offset of the TCP or UDP header in `buf`. The TCP sequence number is read
   * from there only when the matcher needs it (`tcpSeq`): reading it for
   * every frame made decoding a third slower.
   */
  l4Off: number;
  /** The buffer the addresses live in (the capture buffer: valid until the next frame). */
  buf: Buffer;
  /** Offset of the 4- or 16-byte source address in `buf`. */
  srcOff: number;
  /** Offset of the 4- or 16-byte destination address in `buf`. */
  dstOff: number;
  /** End of what was captured of the transport segment (bounded by the IP length and the capture). */
  l4End: number;
}

export function newPacket(): Packet {
  return {
    family: 4,
    proto: IPPROTO_TCP,
    sport: 0,
    dport: 0,
    flags: 0,
    buf: Buffer.alloc(0),
    srcOff: 0,
    dstOff: 0,
    l4Off: 0,
    l4End: 0,
  };
}
