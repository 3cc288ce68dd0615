/**
 * Link/IP/L4 decoding of captured frames into a reused `Packet`.
 *
 * This is the per-frame hot path: it allocates nothing, creates no closures
 * and does no string work. Every byte read is preceded by an explicit bounds
 * check against `end` (the captured length clamped to the buffer's length),
 * and bytes are read with plain indexing rather than `readUInt16BE` and
 * friends, whose range errors would be exceptions. The function never throws.
 *
 * Decoding stops at the transport ports (and TCP flags): that is everything a
 * port-knocking matcher needs. Addresses are left in the capture buffer and
 * referenced by offset (`srcOff`/`dstOff`); see `formatAddress`. So is the
 * TCP sequence number (`tcpSeq`), which only the matcher's retransmission
 * check needs.
 */

import { Decoded, IPPROTO_TCP, IPPROTO_UDP, LinkType, Packet } from './types';

/** EtherTypes. */
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100; // 802.1Q C-tag
const ETHERTYPE_QINQ = 0x88a8; // 802.1ad S-tag
const ETHERTYPE_QINQ_OLD = 0x9100; // pre-standard Q-in-Q

/** Most VLAN tags we walk through before calling the frame malformed. */
const MAX_VLAN_TAGS = 8;

/** Header sizes. */
const ETHERNET_HEADER_LEN = 14;
const SLL_HEADER_LEN = 16;
const NULL_HEADER_LEN = 4;
const VLAN_TAG_LEN = 4;
const IPV4_MIN_HEADER_LEN = 20;
const IPV6_HEADER_LEN = 40;
const TCP_MIN_HEADER_LEN = 20;
const UDP_HEADER_LEN = 8;

/** IPv6 extension headers (next-header values). */
const IPV6_HOPOPTS = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;
const IPV6_DSTOPTS = 60;
/** Most extension headers we walk through before calling the packet malformed. */
const MAX_IPV6_EXT_HEADERS = 16;

/** BSD loopback (DLT_NULL) address-family values. */
const BSD_AF_INET = 2;
const BSD_AF_INET6_LINUX = 10; // Linux (not normally used with DLT_NULL, but harmless)
const BSD_AF_INET6_BSD = 24; // NetBSD, OpenBSD, BSD/OS
const BSD_AF_INET6_FREEBSD = 28; // FreeBSD, DragonFly
const BSD_AF_INET6_DARWIN = 30; // macOS

/**
 * Which IP version the link layer announced. `VERSION_FROM_HEADER` (RAW) means
 * "trust the version nibble".
 */
const VERSION_FROM_HEADER = 0;

/**
 * Decode one captured frame.
 *
 * @param link the capture's link-layer type
 * @param buf  the capture buffer (may be larger than the frame)
 * @param len  the captured length of this frame; clamped to `buf.length`
 * @param out  filled in only when the result is `Decoded.Ok`
 */
export function decodeFrame(link: LinkType, buf: Buffer, len: number, out: Packet): Decoded {
  // Clamp the captured length: never read at or past `end`. NaN / negative /
  // fractional lengths are handled too (they never reach here in practice).
  let end = buf.length;
  if (len < end) end = len > 0 ? Math.floor(len) : 0;
  if (end <= 0) return Decoded.Malformed;

  switch (link) {
    case 'ETHERNET':
      if (end < ETHERNET_HEADER_LEN) return Decoded.Malformed;
      return decodeEtherType(buf, ETHERNET_HEADER_LEN, end, (buf[12] << 8) | buf[13], out);
    case 'LINKTYPE_LINUX_SLL':
      if (end < SLL_HEADER_LEN) return Decoded.Malformed;
      return decodeEtherType(buf, SLL_HEADER_LEN, end, (buf[14] << 8) | buf[15], out);
    case 'RAW':
      return decodeIp(buf, 0, end, VERSION_FROM_HEADER, out);
    case 'NULL':
      return decodeNull(buf, end, out);
    default:
      // Not reachable with a well-typed caller; a link type we don't speak.
      return Decoded.Ignored;
  }
}

/**
 * Dispatch on an EtherType found just before `off`, first walking through any
 * (possibly stacked) VLAN tags. Each tag is 2 bytes TCI + 2 bytes inner type,
 * which is the layout both after an Ethernet header and after a Linux cooked
 * header whose protocol field is a VLAN TPID.
 */
function decodeEtherType(buf: Buffer, off: number, end: number, etherType: number, out: Packet): Decoded {
  let tags = 0;
  while (etherType === ETHERTYPE_VLAN || etherType === ETHERTYPE_QINQ || etherType === ETHERTYPE_QINQ_OLD) {
    if (++tags > MAX_VLAN_TAGS) return Decoded.Malformed;
    if (off + VLAN_TAG_LEN > end) return Decoded.Malformed;
    etherType = (buf[off + 2] << 8) | buf[off + 3];
    off += VLAN_TAG_LEN;
  }
  if (etherType === ETHERTYPE_IPV4) return decodeIp(buf, off, end, 4, out);
  if (etherType === ETHERTYPE_IPV6) return decodeIp(buf, off, end, 6, out);
  return Decoded.Ignored; // ARP, LLDP, MPLS, PPPoE, ...
}

/** BSD loopback: a 4-byte address family in the capturing host's byte order. */
function decodeNull(buf: Buffer, end: number, out: Packet): Decoded {
  if (end < NULL_HEADER_LEN) return Decoded.Malformed;
  // The writer's byte order is unknown (the file may come from another host),
  // so read the word both ways; the values of interest are small, so they
  // can't be confused with each other across byte orders.
  const le = (buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)) >>> 0;
  const be = ((buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]) >>> 0;
  if (le === BSD_AF_INET || be === BSD_AF_INET) return decodeIp(buf, NULL_HEADER_LEN, end, 4, out);
  if (isBsdInet6(le) || isBsdInet6(be)) return decodeIp(buf, NULL_HEADER_LEN, end, 6, out);
  return Decoded.Ignored;
}

function isBsdInet6(family: number): boolean {
  return (
    family === BSD_AF_INET6_LINUX ||
    family === BSD_AF_INET6_BSD ||
    family === BSD_AF_INET6_FREEBSD ||
    family === BSD_AF_INET6_DARWIN
  );
}

/**
 * Decode an IP header at `off`. `expected` is the version the link layer
 * announced (4 or 6), or `VERSION_FROM_HEADER` to go by the version nibble.
 */
function decodeIp(buf: Buffer, off: number, end: number, expected: number, out: Packet): Decoded {
  if (off >= end) return Decoded.Malformed;
  const version = buf[off] >> 4;
  if (expected !== VERSION_FROM_HEADER && version !== expected) return Decoded.Malformed;
  if (version === 4) return decodeIpv4(buf, off, end, out);
  if (version === 6) return decodeIpv6(buf, off, end, out);
  return Decoded.Malformed;
}

function decodeIpv4(buf: Buffer, off: number, end: number, out: Packet): Decoded {
  if (off + IPV4_MIN_HEADER_LEN > end) return Decoded.Malformed;
  const headerLen = (buf[off] & 0x0f) * 4;
  if (headerLen < IPV4_MIN_HEADER_LEN) return Decoded.Malformed;
  if (off + headerLen > end) return Decoded.Malformed; // options cut off
  const totalLen = (buf[off + 2] << 8) | buf[off + 3];
  if (totalLen < headerLen) return Decoded.Malformed;

  // A non-first fragment carries no L4 header. (A first fragment, offset 0
  // with More Fragments set, is decoded like any packet.)
  const fragOffset = ((buf[off + 6] & 0x1f) << 8) | buf[off + 7];
  if (fragOffset !== 0) return Decoded.Ignored;

  const proto = buf[off + 9];
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return Decoded.Ignored;

  // The L4 header must lie within both the capture and the IP datagram. A
  // total length beyond the capture is just snaplen truncation.
  let limit = off + totalLen;
  if (limit > end) limit = end;
  return decodeL4(buf, off + headerLen, limit, proto, 4, off + 12, off + 16, out);
}

function decodeIpv6(buf: Buffer, off: number, end: number, out: Packet): Decoded {
  if (off + IPV6_HEADER_LEN > end) return Decoded.Malformed;
  // Payload length 0 means a jumbogram (or a GRO "BIG TCP" super-packet):
  // bound by the capture only.
  const payloadLen = (buf[off + 4] << 8) | buf[off + 5];
  let limit = end;
  if (payloadLen !== 0 && off + IPV6_HEADER_LEN + payloadLen < end) limit = off + IPV6_HEADER_LEN + payloadLen;

  let next = buf[off + 6];
  let cur = off + IPV6_HEADER_LEN;
  let count = 0;
  while (next !== IPPROTO_TCP && next !== IPPROTO_UDP) {
    let hdrLen: number;
    switch (next) {
      case IPV6_HOPOPTS:
      case IPV6_ROUTING:
      case IPV6_DSTOPTS:
        if (cur + 2 > limit) return Decoded.Malformed;
        hdrLen = (buf[cur + 1] + 1) * 8;
        break;
      case IPV6_FRAGMENT:
        hdrLen = 8;
        break;
      case IPV6_AH:
        if (cur + 2 > limit) return Decoded.Malformed;
        hdrLen = (buf[cur + 1] + 2) * 4;
        break;
      default:
        // No Next Header (59), ESP (50), ICMPv6, SCTP, Mobility, ...
        return Decoded.Ignored;
    }
    if (++count > MAX_IPV6_EXT_HEADERS) return Decoded.Malformed;
    if (cur + hdrLen > limit) return Decoded.Malformed;
    if (next === IPV6_FRAGMENT) {
      // Fragment offset: the top 13 bits of bytes 2..3.
      const fragOffset = (buf[cur + 2] << 5) | (buf[cur + 3] >> 3);
      if (fragOffset !== 0) return Decoded.Ignored;
    }
    next = buf[cur];
    cur += hdrLen;
  }
  return decodeL4(buf, cur, limit, next, 6, off + 8, off + 24, out);
}

/**
 * The TCP sequence number of a decoded TCP packet, as a signed 32-bit integer
 * (the header's bit pattern, `| 0`: a small integer, no heap number); 0 for
 * UDP. decodeL4 checked that the whole fixed TCP header is in `buf`.
 */
export function tcpSeq(p: Packet): number {
  if (p.proto !== IPPROTO_TCP) return 0;
  const b = p.buf;
  const o = p.l4Off;
  return (b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7];
}

/** Decode the TCP or UDP header at `off` (which must end by `limit`) and fill `out`. */
function decodeL4(
  buf: Buffer,
  off: number,
  limit: number,
  proto: number,
  family: 4 | 6,
  srcOff: number,
  dstOff: number,
  out: Packet,
): Decoded {
  let flags = 0;
  if (proto === IPPROTO_TCP) {
    // The whole fixed header must be there (options may be cut by snaplen).
    if (off + TCP_MIN_HEADER_LEN > limit) return Decoded.Malformed;
    if (buf[off + 12] >> 4 < 5) return Decoded.Malformed; // data offset
    flags = buf[off + 13] & 0x3f;
    out.proto = IPPROTO_TCP;
  } else {
    if (off + UDP_HEADER_LEN > limit) return Decoded.Malformed;
    out.proto = IPPROTO_UDP;
  }
  out.family = family;
  out.sport = (buf[off] << 8) | buf[off + 1];
  out.dport = (buf[off + 2] << 8) | buf[off + 3];
  out.flags = flags;
  out.buf = buf;
  out.srcOff = srcOff;
  out.dstOff = dstOff;
  out.l4Off = off;
  out.l4End = limit;
  return Decoded.Ok;
}
