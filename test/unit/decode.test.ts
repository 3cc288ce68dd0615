/**
 * Unit tests for src/decode: frame decoding (decode.ts) and address text
 * (address.ts). Frames are built by hand with the small builders below.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SocketAddress } from 'node:net';

import { decodeFrame, tcpSeq } from '../../src/decode/decode';
import { canonicalAddress, formatAddress, parseAddress } from '../../src/decode/address';
import {
  Decoded,
  IPPROTO_TCP,
  IPPROTO_UDP,
  LinkType,
  Packet,
  TH_ACK,
  TH_FIN,
  TH_PSH,
  TH_RST,
  TH_SYN,
  TH_URG,
  newPacket,
} from '../../src/decode/types';

// ---------------------------------------------------------------------------
// Frame builders
// ---------------------------------------------------------------------------

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_ARP = 0x0806;

function addrBytes(text: string): Buffer {
  const parsed = parseAddress(text);
  if (parsed === undefined) throw new Error(`test bug: bad address ${text}`);
  return parsed.bytes;
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value & 0xffff, 0);
  return b;
}

interface TcpOpts {
  sport?: number;
  dport?: number;
  flags?: number;
  /** Sequence number (unsigned); default 0x01020304. */
  seq?: number;
  /** Data offset in 32-bit words; defaults to 5 + options/4. */
  dataOffset?: number;
  /** Raw option bytes (a multiple of 4). */
  options?: Buffer;
  payload?: Buffer;
}

function tcp(o: TcpOpts = {}): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(o.sport ?? 40000, 0);
  h.writeUInt16BE(o.dport ?? 7000, 2);
  h.writeUInt32BE(o.seq ?? 0x01020304, 4); // seq
  h.writeUInt32BE(0, 8); // ack
  h[12] = (o.dataOffset ?? 5 + options.length / 4) << 4;
  h[13] = o.flags ?? TH_SYN;
  h.writeUInt16BE(64240, 14); // window
  return Buffer.concat([h, options, o.payload ?? Buffer.alloc(0)]);
}

function udp(o: { sport?: number; dport?: number; payload?: Buffer } = {}): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(8);
  h.writeUInt16BE(o.sport ?? 50000, 0);
  h.writeUInt16BE(o.dport ?? 9000, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

interface Ipv4Opts {
  src?: string;
  dst?: string;
  proto?: number;
  /** Raw option bytes (a multiple of 4, at most 40). */
  options?: Buffer;
  /** Override the IHL nibble. */
  ihl?: number;
  /** Override the version nibble. */
  version?: number;
  /** Override the total length field. */
  totalLen?: number;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  moreFragments?: boolean;
  payload?: Buffer;
}

function ipv4(o: Ipv4Opts = {}): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h[0] = ((o.version ?? 4) << 4) | (o.ihl ?? 5 + options.length / 4);
  h.writeUInt16BE(o.totalLen ?? 20 + options.length + payload.length, 2);
  h.writeUInt16BE(0x1234, 4); // id
  h.writeUInt16BE(((o.moreFragments ? 1 : 0) << 13) | (o.fragOffset ?? 0), 6);
  h[8] = 64; // ttl
  h[9] = o.proto ?? IPPROTO_TCP;
  addrBytes(o.src ?? '192.0.2.1').copy(h, 12);
  addrBytes(o.dst ?? '198.51.100.2').copy(h, 16);
  return Buffer.concat([h, options, payload]);
}

interface Ipv6Opts {
  src?: string;
  dst?: string;
  /** Next header of the fixed header. */
  next?: number;
  /** Override the payload length field. */
  payloadLen?: number;
  version?: number;
  /** Everything after the fixed header (extension headers + L4). */
  payload?: Buffer;
}

function ipv6(o: Ipv6Opts = {}): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((o.version ?? 6) << 28) >>> 0, 0);
  h.writeUInt16BE(o.payloadLen ?? payload.length, 4);
  h[6] = o.next ?? IPPROTO_TCP;
  h[7] = 64; // hop limit
  addrBytes(o.src ?? '2001:db8::1').copy(h, 8);
  addrBytes(o.dst ?? '2001:db8::2').copy(h, 24);
  return Buffer.concat([h, payload]);
}

/** A Hop-by-Hop / Routing / Destination Options header of (units+1)*8 bytes, padded with PadN. */
function optionsHeader(next: number, units = 0): Buffer {
  const h = Buffer.alloc((units + 1) * 8);
  h[0] = next;
  h[1] = units;
  h[2] = 1; // PadN
  h[3] = h.length - 4;
  return h;
}

/** An IPv6 Fragment header (offset in 8-byte units). */
function fragmentHeader(next: number, offset: number, more: boolean): Buffer {
  const h = Buffer.alloc(8);
  h[0] = next;
  h.writeUInt16BE((offset << 3) | (more ? 1 : 0), 2);
  h.writeUInt32BE(0xcafe, 4);
  return h;
}

/** An Authentication Header with `words` 32-bit words of ICV beyond the 12-byte minimum. */
function ahHeader(next: number, words = 1): Buffer {
  const h = Buffer.alloc(12 + 4 * (words - 1));
  h[0] = next;
  h[1] = h.length / 4 - 2;
  return h;
}

function ethernet(payload: Buffer, o: { type?: number; vlans?: number[] } = {}): Buffer {
  const parts: Buffer[] = [Buffer.from('020000000001020000000002', 'hex')]; // dst, src MACs
  for (const tpid of o.vlans ?? []) parts.push(u16(tpid), u16(0x0064)); // TPID, TCI (VLAN 100)
  parts.push(u16(o.type ?? ETH_IPV4), payload);
  return Buffer.concat(parts);
}

function sll(payload: Buffer, o: { proto?: number; vlans?: number[] } = {}): Buffer {
  const h = Buffer.alloc(14);
  h.writeUInt16BE(0, 0); // packet type: to us
  h.writeUInt16BE(1, 2); // ARPHRD_ETHER
  h.writeUInt16BE(6, 4); // address length
  Buffer.from('020000000002', 'hex').copy(h, 6);
  const parts: Buffer[] = [h];
  const vlans = o.vlans ?? [];
  // The protocol field holds the first TPID, and each tag's TCI is followed by the next type.
  parts.push(u16(vlans.length > 0 ? vlans[0] : (o.proto ?? ETH_IPV4)));
  for (let i = 0; i < vlans.length; i++) {
    parts.push(u16(0x0064), u16(i + 1 < vlans.length ? vlans[i + 1] : (o.proto ?? ETH_IPV4)));
  }
  parts.push(payload);
  return Buffer.concat(parts);
}

function nullLoop(payload: Buffer, family: number, littleEndian = true): Buffer {
  const h = Buffer.alloc(4);
  if (littleEndian) h.writeUInt32LE(family, 0);
  else h.writeUInt32BE(family, 0);
  return Buffer.concat([h, payload]);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function decode(link: LinkType, frame: Buffer, len = frame.length): { result: Decoded; pkt: Packet } {
  const pkt = newPacket();
  const result = decodeFrame(link, frame, len, pkt);
  return { result, pkt };
}

interface Expect {
  family: 4 | 6;
  proto: number;
  sport: number;
  dport: number;
  flags: number;
  src: string;
  dst: string;
}

function expectOk(link: LinkType, frame: Buffer, want: Expect, len = frame.length): void {
  const { result, pkt } = decode(link, frame, len);
  assert.equal(result, Decoded.Ok);
  assert.equal(pkt.family, want.family);
  assert.equal(pkt.proto, want.proto);
  assert.equal(pkt.sport, want.sport);
  assert.equal(pkt.dport, want.dport);
  assert.equal(pkt.flags, want.flags);
  assert.equal(pkt.buf, frame);
  assert.equal(formatAddress(pkt.buf, pkt.srcOff, pkt.family), want.src);
  assert.equal(formatAddress(pkt.buf, pkt.dstOff, pkt.family), want.dst);
}

function expectResult(link: LinkType, frame: Buffer, want: Decoded, len = frame.length): void {
  assert.equal(decode(link, frame, len).result, want);
}

const V4_SYN: Expect = {
  family: 4,
  proto: IPPROTO_TCP,
  sport: 40000,
  dport: 7000,
  flags: TH_SYN,
  src: '192.0.2.1',
  dst: '198.51.100.2',
};
const V6_SYN: Expect = { ...V4_SYN, family: 6, src: '2001:db8::1', dst: '2001:db8::2' };

/** Deterministic PRNG (mulberry32) so failures are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Decoding: the happy paths
// ---------------------------------------------------------------------------

test('Ethernet + IPv4 + TCP SYN', () => {
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp() })), V4_SYN);
});

test('TCP flags are the low six bits of byte 13', () => {
  const all = TH_FIN | TH_SYN | TH_RST | TH_PSH | TH_ACK | TH_URG;
  const frame = ethernet(ipv4({ payload: tcp({ flags: 0xc0 | all }) })); // ECE+CWR dropped
  expectOk('ETHERNET', frame, { ...V4_SYN, flags: all });
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp({ flags: TH_SYN | TH_ACK }) })), {
    ...V4_SYN,
    flags: TH_SYN | TH_ACK,
  });
});

test('IPv4 with options: IHL 6..15', () => {
  for (let ihl = 6; ihl <= 15; ihl++) {
    const options = Buffer.alloc((ihl - 5) * 4, 0x01); // NOPs
    const frame = ethernet(ipv4({ options, payload: tcp({ sport: ihl, dport: 1000 + ihl }) }));
    expectOk('ETHERNET', frame, { ...V4_SYN, sport: ihl, dport: 1000 + ihl });
  }
});

test('IPv4 UDP', () => {
  const frame = ethernet(ipv4({ proto: IPPROTO_UDP, payload: udp({ sport: 5353, dport: 1234 }) }));
  expectOk('ETHERNET', frame, { ...V4_SYN, proto: IPPROTO_UDP, sport: 5353, dport: 1234, flags: 0 });
});

test('UDP flags are reset to 0 even if the Packet held TCP flags', () => {
  const pkt = newPacket();
  assert.equal(decodeFrame('ETHERNET', ethernet(ipv4({ payload: tcp() })), 54, pkt), Decoded.Ok);
  assert.equal(pkt.flags, TH_SYN);
  const frame = ethernet(ipv4({ proto: IPPROTO_UDP, payload: udp() }));
  assert.equal(decodeFrame('ETHERNET', frame, frame.length, pkt), Decoded.Ok);
  assert.equal(pkt.flags, 0);
  assert.equal(pkt.proto, IPPROTO_UDP);
});

test('Ethernet with one VLAN tag, two stacked tags, and eight tags', () => {
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: [0x8100] }), V4_SYN);
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: [0x88a8, 0x8100] }), V4_SYN);
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: [0x9100, 0x8100] }), V4_SYN);
  expectOk('ETHERNET', ethernet(ipv6({ payload: tcp() }), { type: ETH_IPV6, vlans: [0x8100] }), V6_SYN);
  const eight = [0x88a8, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100];
  expectOk('ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: eight }), V4_SYN);
});

test('Ethernet with more than eight VLAN tags is malformed', () => {
  const nine = new Array<number>(9).fill(0x8100);
  expectResult('ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: nine }), Decoded.Malformed);
});

test('VLAN-tagged ARP is ignored', () => {
  expectResult('ETHERNET', ethernet(Buffer.alloc(28), { type: ETH_ARP, vlans: [0x8100] }), Decoded.Ignored);
});

test('Linux cooked (SLL) v4 and v6, with and without VLAN', () => {
  expectOk('LINKTYPE_LINUX_SLL', sll(ipv4({ payload: tcp() })), V4_SYN);
  expectOk('LINKTYPE_LINUX_SLL', sll(ipv6({ payload: tcp() }), { proto: ETH_IPV6 }), V6_SYN);
  expectOk('LINKTYPE_LINUX_SLL', sll(ipv4({ payload: tcp() }), { vlans: [0x8100] }), V4_SYN);
  expectOk('LINKTYPE_LINUX_SLL', sll(ipv4({ payload: tcp() }), { vlans: [0x88a8, 0x8100] }), V4_SYN);
  expectResult('LINKTYPE_LINUX_SLL', sll(Buffer.alloc(28), { proto: ETH_ARP }), Decoded.Ignored);
});

test('RAW IPv4 and IPv6', () => {
  expectOk('RAW', ipv4({ payload: tcp() }), V4_SYN);
  expectOk('RAW', ipv6({ payload: tcp() }), V6_SYN);
  expectResult('RAW', ipv4({ payload: tcp(), version: 5 }), Decoded.Malformed);
  expectResult('RAW', Buffer.alloc(60), Decoded.Malformed); // version 0
});

test('NULL (BSD loopback), both byte orders, all IPv6 family values', () => {
  expectOk('NULL', nullLoop(ipv4({ payload: tcp() }), 2, true), V4_SYN);
  expectOk('NULL', nullLoop(ipv4({ payload: tcp() }), 2, false), V4_SYN);
  for (const family of [10, 24, 28, 30]) {
    expectOk('NULL', nullLoop(ipv6({ payload: tcp() }), family, true), V6_SYN);
    expectOk('NULL', nullLoop(ipv6({ payload: tcp() }), family, false), V6_SYN);
  }
  expectResult('NULL', nullLoop(Buffer.alloc(40), 7), Decoded.Ignored); // some other family
  expectResult('NULL', nullLoop(ipv6({ payload: tcp() }), 2), Decoded.Malformed); // version mismatch
});

test('IPv6 TCP and UDP', () => {
  expectOk('ETHERNET', ethernet(ipv6({ payload: tcp() }), { type: ETH_IPV6 }), V6_SYN);
  const frame = ethernet(ipv6({ next: IPPROTO_UDP, payload: udp({ sport: 546, dport: 547 }) }), { type: ETH_IPV6 });
  expectOk('ETHERNET', frame, { ...V6_SYN, proto: IPPROTO_UDP, sport: 546, dport: 547, flags: 0 });
});

test('IPv6 extension header chain: hop-by-hop + routing + destination options + AH', () => {
  const chain = Buffer.concat([optionsHeader(60, 0), optionsHeader(IPPROTO_TCP, 2), tcp()]);
  expectOk('RAW', ipv6({ next: 0, payload: chain }), V6_SYN);
  const longer = Buffer.concat([
    optionsHeader(43, 1),
    optionsHeader(51, 0), // routing
    ahHeader(60, 3),
    optionsHeader(IPPROTO_UDP, 0),
    udp({ sport: 1, dport: 2 }),
  ]);
  expectOk('RAW', ipv6({ next: 0, payload: longer }), { ...V6_SYN, proto: IPPROTO_UDP, sport: 1, dport: 2, flags: 0 });
});

test('IPv6 extension-header walk is limited to 16 headers', () => {
  const chain = (n: number): Buffer => {
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(optionsHeader(i === n - 1 ? IPPROTO_TCP : 60));
    parts.push(tcp());
    return ipv6({ next: 60, payload: Buffer.concat(parts) });
  };
  expectOk('RAW', chain(16), V6_SYN);
  expectResult('RAW', chain(17), Decoded.Malformed);
});

test('IPv6 No Next Header, ESP, ICMPv6 are ignored', () => {
  expectResult('RAW', ipv6({ next: 59 }), Decoded.Ignored);
  expectResult('RAW', ipv6({ next: 0, payload: optionsHeader(59) }), Decoded.Ignored);
  expectResult('RAW', ipv6({ next: 50, payload: Buffer.alloc(16) }), Decoded.Ignored);
  expectResult('RAW', ipv6({ next: IPPROTO_ICMPV6, payload: Buffer.alloc(8) }), Decoded.Ignored);
});

test('IPv6 first fragment is decoded, non-first fragment ignored', () => {
  const first = ipv6({ next: 44, payload: Buffer.concat([fragmentHeader(IPPROTO_TCP, 0, true), tcp()]) });
  expectOk('RAW', first, V6_SYN);
  const later = ipv6({ next: 44, payload: Buffer.concat([fragmentHeader(IPPROTO_TCP, 185, true), Buffer.alloc(32)]) });
  expectResult('RAW', later, Decoded.Ignored);
  const last = ipv6({ next: 44, payload: Buffer.concat([fragmentHeader(IPPROTO_TCP, 1, false), Buffer.alloc(8)]) });
  expectResult('RAW', last, Decoded.Ignored);
  // An atomic fragment (offset 0, no MF) is an ordinary packet.
  const atomic = ipv6({ next: 44, payload: Buffer.concat([fragmentHeader(IPPROTO_TCP, 0, false), tcp()]) });
  expectOk('RAW', atomic, V6_SYN);
});

test('IPv4 first fragment is decoded, non-first fragment ignored', () => {
  expectOk('RAW', ipv4({ moreFragments: true, payload: tcp() }), V4_SYN);
  expectResult('RAW', ipv4({ fragOffset: 185, moreFragments: true, payload: Buffer.alloc(8) }), Decoded.Ignored);
  expectResult('RAW', ipv4({ fragOffset: 1, payload: Buffer.alloc(8) }), Decoded.Ignored);
  // A non-first fragment too short to hold any L4 header is still just ignored.
  expectResult('RAW', ipv4({ fragOffset: 0x1fff }), Decoded.Ignored);
});

test('ARP and other non-IP EtherTypes are ignored', () => {
  // Ethernet/IPv4 ARP request: who has 198.51.100.2? tell 192.0.2.1
  const arp = Buffer.from('0001080006040001020000000002c0000201000000000000c6336402', 'hex');
  expectResult('ETHERNET', ethernet(arp, { type: ETH_ARP }), Decoded.Ignored);
  expectResult('ETHERNET', ethernet(Buffer.alloc(46), { type: 0x88cc }), Decoded.Ignored); // LLDP
  expectResult('ETHERNET', ethernet(Buffer.alloc(0), { type: 0x0806 }), Decoded.Ignored); // header only
});

test('ICMP and other IP protocols are ignored', () => {
  expectResult('ETHERNET', ethernet(ipv4({ proto: IPPROTO_ICMP, payload: Buffer.alloc(8) })), Decoded.Ignored);
  expectResult('RAW', ipv4({ proto: 132, payload: Buffer.alloc(12) }), Decoded.Ignored); // SCTP
  expectResult('RAW', ipv4({ proto: 47 }), Decoded.Ignored); // GRE, empty payload: still ignored
});

test('IP version mismatching the EtherType is malformed', () => {
  expectResult('ETHERNET', ethernet(ipv6({ payload: tcp() }), { type: ETH_IPV4 }), Decoded.Malformed);
  expectResult('ETHERNET', ethernet(ipv4({ payload: tcp() }), { type: ETH_IPV6 }), Decoded.Malformed);
  expectResult('LINKTYPE_LINUX_SLL', sll(ipv4({ payload: tcp() }), { proto: ETH_IPV6 }), Decoded.Malformed);
});

// ---------------------------------------------------------------------------
// Decoding: malformed input
// ---------------------------------------------------------------------------

test('bad IHL: below 5, and larger than the frame', () => {
  for (let ihl = 0; ihl < 5; ihl++) {
    expectResult('ETHERNET', ethernet(ipv4({ ihl, payload: tcp() })), Decoded.Malformed);
  }
  // IHL 15 = 60 bytes, but only 20 header bytes + a 20-byte TCP header: options run past the end.
  const frame = ethernet(ipv4({ ihl: 15, totalLen: 60 }));
  expectResult('ETHERNET', frame, Decoded.Malformed);
  // IHL 15 with exactly 60 bytes of header available but nothing after it: L4 missing.
  expectResult('RAW', ipv4({ options: Buffer.alloc(40, 1), totalLen: 60 }), Decoded.Malformed);
});

test('IPv4 total length: smaller than header or header+L4 is malformed; larger (snaplen) is fine', () => {
  expectResult('RAW', ipv4({ payload: tcp(), totalLen: 19 }), Decoded.Malformed);
  expectResult('RAW', ipv4({ payload: tcp(), totalLen: 39 }), Decoded.Malformed);
  expectResult('RAW', ipv4({ proto: IPPROTO_UDP, payload: udp(), totalLen: 27 }), Decoded.Malformed);
  expectOk('RAW', ipv4({ payload: tcp(), totalLen: 40 }), V4_SYN);
  expectOk('RAW', ipv4({ payload: tcp(), totalLen: 1500 }), V4_SYN);
  // Options in the header count: IHL 6 needs total length >= 24 + 20.
  expectResult('RAW', ipv4({ options: Buffer.alloc(4, 1), payload: tcp(), totalLen: 43 }), Decoded.Malformed);
  expectOk('RAW', ipv4({ options: Buffer.alloc(4, 1), payload: tcp(), totalLen: 44 }), V4_SYN);
});

test('IPv6 payload length: too short for the headers is malformed; 0 (jumbo) and larger are fine', () => {
  expectResult('RAW', ipv6({ payload: tcp(), payloadLen: 19 }), Decoded.Malformed);
  expectResult(
    'RAW',
    ipv6({ next: 0, payload: Buffer.concat([optionsHeader(6), tcp()]), payloadLen: 7 }),
    Decoded.Malformed,
  );
  expectOk('RAW', ipv6({ payload: tcp(), payloadLen: 1400 }), V6_SYN);
  expectOk('RAW', ipv6({ payload: tcp(), payloadLen: 0 }), V6_SYN);
});

test('TCP data offset below 5 is malformed', () => {
  for (let doff = 0; doff < 5; doff++) {
    expectResult('ETHERNET', ethernet(ipv4({ payload: tcp({ dataOffset: doff }) })), Decoded.Malformed);
    expectResult('RAW', ipv6({ payload: tcp({ dataOffset: doff }) }), Decoded.Malformed);
  }
  // Options cut off by snaplen are fine: we only need the fixed header.
  const withOptions = ipv4({ payload: tcp({ options: Buffer.from('020405b4010303070402080a', 'hex') }) });
  expectOk('RAW', withOptions, V4_SYN, 40);
});

test('IPv6 extension header running past the end is malformed', () => {
  expectResult('RAW', ipv6({ next: 0, payload: optionsHeader(IPPROTO_TCP, 3).subarray(0, 16) }), Decoded.Malformed);
  expectResult('RAW', ipv6({ next: 0, payload: Buffer.from([6]) }), Decoded.Malformed); // no length byte
  expectResult('RAW', ipv6({ next: 44, payload: Buffer.alloc(7) }), Decoded.Malformed);
  expectResult(
    'RAW',
    ipv6({ next: 51, payload: Buffer.from([6, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) }),
    Decoded.Malformed,
  );
});

/** Valid frames with nothing after the L4 header: every proper prefix must be Malformed. */
const TIGHT_FRAMES: Array<[string, LinkType, Buffer, Expect]> = [
  ['eth/v4/tcp', 'ETHERNET', ethernet(ipv4({ payload: tcp() })), V4_SYN],
  [
    'eth/v4+opts/udp',
    'ETHERNET',
    ethernet(ipv4({ proto: IPPROTO_UDP, options: Buffer.alloc(8, 1), payload: udp() })),
    {
      ...V4_SYN,
      proto: IPPROTO_UDP,
      sport: 50000,
      dport: 9000,
      flags: 0,
    },
  ],
  ['eth/vlan/vlan/v4/tcp', 'ETHERNET', ethernet(ipv4({ payload: tcp() }), { vlans: [0x88a8, 0x8100] }), V4_SYN],
  ['eth/v6/tcp', 'ETHERNET', ethernet(ipv6({ payload: tcp() }), { type: ETH_IPV6 }), V6_SYN],
  [
    'eth/v6/hbh/frag/dst/tcp',
    'ETHERNET',
    ethernet(
      ipv6({
        next: 0,
        payload: Buffer.concat([optionsHeader(44, 1), fragmentHeader(60, 0, true), optionsHeader(6), tcp()]),
      }),
      { type: ETH_IPV6 },
    ),
    V6_SYN,
  ],
  ['sll/vlan/v4/tcp', 'LINKTYPE_LINUX_SLL', sll(ipv4({ payload: tcp() }), { vlans: [0x8100] }), V4_SYN],
  ['sll/v6/tcp', 'LINKTYPE_LINUX_SLL', sll(ipv6({ payload: tcp() }), { proto: ETH_IPV6 }), V6_SYN],
  ['raw/v4/tcp', 'RAW', ipv4({ payload: tcp() }), V4_SYN],
  [
    'raw/v6/ah/udp',
    'RAW',
    ipv6({ next: 51, payload: Buffer.concat([ahHeader(17, 2), udp()]) }),
    {
      ...V6_SYN,
      proto: IPPROTO_UDP,
      sport: 50000,
      dport: 9000,
      flags: 0,
    },
  ],
  ['null/v4/tcp', 'NULL', nullLoop(ipv4({ payload: tcp() }), 2), V4_SYN],
  ['null/v6/tcp', 'NULL', nullLoop(ipv6({ payload: tcp() }), 30, false), V6_SYN],
];

test('truncation at every length is Malformed, never Ok or a throw', () => {
  for (const [name, link, frame, want] of TIGHT_FRAMES) {
    // In an exactly-sized buffer, and at the start of a larger reused capture
    // buffer holding the *whole* frame: a decoder that peeked past `len`
    // would find valid data there and wrongly say Ok.
    const big = Buffer.alloc(frame.length + 64, 0xee);
    frame.copy(big);
    for (let len = 0; len < frame.length; len++) {
      assert.equal(decode(link, frame.subarray(0, len)).result, Decoded.Malformed, `${name} exact len=${len}`);
      assert.equal(decode(link, big, len).result, Decoded.Malformed, `${name} in big buffer len=${len}`);
    }
    expectOk(link, frame, want);
    const { result, pkt } = decode(link, big, frame.length);
    assert.equal(result, Decoded.Ok, name);
    assert.equal(formatAddress(pkt.buf, pkt.srcOff, pkt.family), want.src, name);
  }
});

test('len larger than buf.length is clamped', () => {
  const frame = ethernet(ipv4({ payload: tcp() }));
  expectOk('ETHERNET', frame, V4_SYN, 65535);
  expectOk('ETHERNET', frame, V4_SYN, Number.POSITIVE_INFINITY);
  expectResult('ETHERNET', frame.subarray(0, 40), Decoded.Malformed, 65535);
  expectResult('ETHERNET', Buffer.alloc(0), Decoded.Malformed, 100);
  expectResult('ETHERNET', frame, Decoded.Malformed, 0);
  expectResult('ETHERNET', frame, Decoded.Malformed, -5);
});

test('a failed decode leaves the Packet untouched', () => {
  const pkt = newPacket();
  const good = ethernet(ipv4({ payload: tcp({ sport: 1111, dport: 2222 }) }));
  assert.equal(decodeFrame('ETHERNET', good, good.length, pkt), Decoded.Ok);
  const bad = ethernet(ipv6({ payload: tcp({ sport: 3333, dport: 4444, dataOffset: 2 }) }), { type: ETH_IPV6 });
  assert.equal(decodeFrame('ETHERNET', bad, bad.length, pkt), Decoded.Malformed);
  assert.equal(pkt.family, 4);
  assert.equal(pkt.sport, 1111);
  assert.equal(pkt.buf, good);
});

test('srcOff/dstOff point at the address bytes', () => {
  const v4 = ethernet(ipv4({ src: '10.1.2.3', dst: '172.16.254.1', options: Buffer.alloc(12, 1), payload: tcp() }), {
    vlans: [0x8100],
  });
  const r4 = decode('ETHERNET', v4);
  assert.equal(r4.result, Decoded.Ok);
  assert.equal(r4.pkt.srcOff, 18 + 12);
  assert.equal(r4.pkt.dstOff, 18 + 16);
  assert.equal(formatAddress(r4.pkt.buf, r4.pkt.srcOff, 4), '10.1.2.3');
  assert.equal(formatAddress(r4.pkt.buf, r4.pkt.dstOff, 4), '172.16.254.1');

  const v6 = sll(
    ipv6({ src: 'fe80::1:0:0:1', dst: '::ffff:192.0.2.1', next: 0, payload: Buffer.concat([optionsHeader(6), tcp()]) }),
    {
      proto: ETH_IPV6,
    },
  );
  const r6 = decode('LINKTYPE_LINUX_SLL', v6);
  assert.equal(r6.result, Decoded.Ok);
  assert.equal(r6.pkt.srcOff, 16 + 8);
  assert.equal(r6.pkt.dstOff, 16 + 24);
  assert.equal(formatAddress(r6.pkt.buf, r6.pkt.srcOff, 6), 'fe80::1:0:0:1');
  assert.equal(formatAddress(r6.pkt.buf, r6.pkt.dstOff, 6), '::ffff:192.0.2.1');
});

test('unknown link type at run time is ignored, not thrown', () => {
  const frame = ethernet(ipv4({ payload: tcp() }));
  assert.equal(decodeFrame('IEEE802_11' as unknown as LinkType, frame, frame.length, newPacket()), Decoded.Ignored);
});

test('randomized: 20 000 random buffers never throw and always give a valid result', () => {
  const links: LinkType[] = ['ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL'];
  const rand = rng(0x6b6e6f63);
  const pkt = newPacket();
  const seeds = TIGHT_FRAMES.map(([, link, frame]) => ({ link, frame }));
  const counts = [0, 0, 0];
  for (let n = 0; n < 20000; n++) {
    const link = links[n % links.length];
    let buf: Buffer;
    if (n % 2 === 0) {
      // Pure noise, with the first byte biased towards IP versions 4/6 for RAW.
      buf = Buffer.alloc(Math.floor(rand() * 200));
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
      if (buf.length > 0 && rand() < 0.5) buf[0] = (rand() < 0.5 ? 0x45 : 0x60) | (buf[0] & 0x0f);
    } else {
      // A valid frame with a few bytes corrupted (reaches the deeper layers).
      const seed = seeds[Math.floor(rand() * seeds.length)];
      buf = Buffer.from(seed.frame);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
    }
    const useLink = n % 2 === 0 ? link : seeds[n % seeds.length].link;
    const len = rand() < 0.1 ? buf.length + Math.floor(rand() * 100) : Math.floor(rand() * (buf.length + 1));
    const result = decodeFrame(useLink, buf, len, pkt);
    counts[result]++;
    if (result === Decoded.Ok) {
      const end = Math.min(len, buf.length);
      const size = pkt.family === 4 ? 4 : 16;
      assert.ok(pkt.proto === IPPROTO_TCP || pkt.proto === IPPROTO_UDP);
      assert.ok(pkt.sport >= 0 && pkt.sport <= 0xffff && pkt.dport >= 0 && pkt.dport <= 0xffff);
      assert.ok(pkt.flags >= 0 && pkt.flags <= 0x3f);
      assert.ok(pkt.proto === IPPROTO_TCP || pkt.flags === 0);
      assert.equal(pkt.buf, buf);
      assert.ok(pkt.srcOff >= 0 && pkt.srcOff + size <= end && pkt.dstOff + size <= end);
    }
  }
  // Sanity: the corpus exercised every outcome.
  assert.ok(
    counts[Decoded.Ok] > 100 && counts[Decoded.Ignored] > 100 && counts[Decoded.Malformed] > 100,
    counts.join(','),
  );
});

// ---------------------------------------------------------------------------
// Address text
// ---------------------------------------------------------------------------

test('formatAddress: IPv4', () => {
  assert.equal(formatAddress(Buffer.from([192, 0, 2, 1]), 0, 4), '192.0.2.1');
  assert.equal(formatAddress(Buffer.from([9, 0, 0, 0, 0, 255, 255, 255, 255]), 5, 4), '255.255.255.255');
  assert.equal(formatAddress(Buffer.from([0, 0, 0, 0]), 0, 4), '0.0.0.0');
});

test('formatAddress: out-of-range offset throws RangeError', () => {
  assert.throws(() => formatAddress(Buffer.alloc(4), 1, 4), RangeError);
  assert.throws(() => formatAddress(Buffer.alloc(16), 1, 6), RangeError);
  assert.throws(() => formatAddress(Buffer.alloc(20), -1, 4), RangeError);
});

/** [input, canonical form]: hand-checked against RFC 5952 and inet_ntop. */
const V6_CASES: Array<[string, string]> = [
  ['::', '::'],
  ['0:0:0:0:0:0:0:0', '::'],
  ['::1', '::1'],
  ['0:0:0:0:0:0:0:1', '::1'],
  ['1::', '1::'],
  ['2001:db8::1', '2001:db8::1'],
  ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
  ['fe80::1:0:0:1', 'fe80::1:0:0:1'],
  ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // tie: first run wins
  ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // longer run wins
  ['1:0:2:0:3:0:4:0', '1:0:2:0:3:0:4:0'], // single zero groups are not compressed
  ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
  ['0:0:1::', '0:0:1::'],
  ['0:0:0:1:0:0:0:2', '::1:0:0:0:2'], // tie between a leading and a later run: first wins
  ['0:0:0:1::', '0:0:0:1::'], // the trailing run is longer
  ['1:0:0:2:3:0:0:4', '1::2:3:0:0:4'],
  ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff'],
  ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
  ['::ffff:c000:201', '::ffff:192.0.2.1'],
  ['0:0:0:0:0:FFFF:0:0', '::ffff:0.0.0.0'],
  ['::192.0.2.1', '::192.0.2.1'], // IPv4-compatible, as inet_ntop prints it
  ['::1:2', '::0.1.0.2'], // ... the same rule, however odd it looks
  ['::1:0:0', '::1:0:0'],
  ['::ffff:1:2:3', '::ffff:1:2:3'],
  ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'], // NAT64 prefix: inet_ntop prints hex
  ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
];

test('formatAddress / canonicalAddress: IPv6 canonical form', () => {
  for (const [input, want] of V6_CASES) {
    assert.equal(canonicalAddress(input), want, input);
    const parsed = parseAddress(input);
    assert.ok(parsed !== undefined && parsed.family === 6, input);
    assert.equal(formatAddress(parsed.bytes, 0, 6), want, input);
  }
});

test("formatAddress agrees with Node's inet_ntop (net.SocketAddress) on the hand-written cases", () => {
  for (const [input, want] of V6_CASES) {
    assert.equal(new SocketAddress({ address: input, family: 'ipv6' }).address, want, input);
  }
});

test('parseAddress: valid inputs and bytes', () => {
  assert.deepEqual(parseAddress('192.0.2.1'), { family: 4, bytes: Buffer.from([192, 0, 2, 1]) });
  assert.deepEqual(parseAddress('0.0.0.0'), { family: 4, bytes: Buffer.alloc(4) });
  assert.deepEqual(parseAddress('255.255.255.255'), { family: 4, bytes: Buffer.alloc(4, 255) });
  const v6 = parseAddress('2001:db8::1');
  assert.ok(v6 !== undefined);
  assert.equal(v6.family, 6);
  assert.equal(v6.bytes.toString('hex'), '20010db8000000000000000000000001');
  assert.equal(parseAddress('::ffff:1.2.3.4')?.bytes.toString('hex'), '00000000000000000000ffff01020304');
  assert.equal(parseAddress('1:2:3:4:5::1.2.3.4')?.bytes.toString('hex'), '00010002000300040005000001020304');
  assert.equal(parseAddress('ABCD::EF')?.bytes.toString('hex'), 'abcd00000000000000000000000000ef');
});

test('parseAddress: invalid inputs', () => {
  const bad = [
    '',
    ' ',
    '1.2.3',
    '1.2.3.4.5',
    '256.0.0.1',
    '01.2.3.4',
    '1.2.3.04',
    '1.2.3.-4',
    '1..2.3',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '0x1.2.3.4',
    '1e2.1.1.1',
    'localhost',
    ':',
    ':::',
    '1::2::3',
    ':1::',
    '1::2:',
    ':1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8:',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7::8',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '12345::1',
    '00000::1',
    'g::1',
    'fe80::1%eth0',
    '[::1]',
    '::1.2.3',
    '::1.2.3.4:5',
    '1.2.3.4::',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::256.1.1.1',
    '::01.2.3.4',
    '::ffff:1.2.3.04',
  ];
  for (const text of bad) {
    assert.equal(parseAddress(text), undefined, JSON.stringify(text));
    assert.equal(canonicalAddress(text), undefined, JSON.stringify(text));
  }
});

test('canonicalAddress: IPv4 is unchanged, IPv6 canonicalised', () => {
  assert.equal(canonicalAddress('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
});

/** Random 16 bytes biased towards zero groups so that every compression case shows up. */
function randomV6(rand: () => number): Buffer {
  const b = Buffer.alloc(16);
  const zeroBias = rand();
  for (let g = 0; g < 8; g++) {
    const r = rand();
    if (r < zeroBias) continue; // zero group
    const value =
      r < zeroBias + 0.05 ? 0xffff : Math.floor(rand() * 0x10000) >> (rand() < 0.5 ? 0 : 8 + Math.floor(rand() * 8));
    b.writeUInt16BE(value, 2 * g);
  }
  if (rand() < 0.1) {
    b.fill(0, 0, 10);
    b[10] = 0xff;
    b[11] = 0xff; // IPv4-mapped
  }
  return b;
}

test('randomized IPv6: format round-trips through parse and equals inet_ntop', () => {
  const rand = rng(0x1f0a);
  for (let n = 0; n < 5000; n++) {
    const bytes = randomV6(rand);
    const text = formatAddress(bytes, 0, 6);
    const back = parseAddress(text);
    assert.ok(back !== undefined && back.family === 6, text);
    assert.ok(back.bytes.equals(bytes), `${text} != ${bytes.toString('hex')}`);
    assert.equal(text, text.toLowerCase());
    assert.ok(!/(^|:)0[0-9a-f]/.test(text), `leading zero in ${text}`);
    // Ground truth: Node's libuv inet_pton/inet_ntop.
    const viaNode = new SocketAddress({
      address: bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:'),
      family: 'ipv6',
    });
    assert.equal(text, viaNode.address, bytes.toString('hex'));
    // The fully expanded form canonicalises to the same text.
    assert.equal(canonicalAddress(bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:')), text);
  }
});

test('randomized IPv4: format round-trips through parse', () => {
  const rand = rng(4);
  for (let n = 0; n < 2000; n++) {
    const bytes = Buffer.from([0, 0, 0, 0].map(() => (rand() < 0.2 ? 0 : Math.floor(rand() * 256))));
    const text = formatAddress(bytes, 0, 4);
    assert.ok(parseAddress(text)?.bytes.equals(bytes), text);
  }
});

test('randomized: parseAddress accepts exactly what inet_pton accepts', () => {
  const rand = rng(0xadd7);
  const alphabet = '0123456789abcdefABCDEF:.:.::0010ffg';
  const seeds = V6_CASES.map(([input]) => input).concat(['1.2.3.4', '255.0.10.200', '::ffff:10.0.0.1']);
  for (let n = 0; n < 20000; n++) {
    let text: string;
    if (n % 2 === 0) {
      text = '';
      const len = Math.floor(rand() * 24);
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(rand() * alphabet.length)];
    } else {
      // Mutate a valid address: insert, delete or replace a character.
      const chars = seeds[Math.floor(rand() * seeds.length)].split('');
      const edits = 1 + Math.floor(rand() * 2);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (chars.length + 1));
        const c = alphabet[Math.floor(rand() * alphabet.length)];
        const op = rand();
        if (op < 0.33) chars.splice(at, 0, c);
        else if (op < 0.66) chars.splice(at, 1);
        else chars[Math.min(at, chars.length - 1)] = c;
      }
      text = chars.join('');
    }
    let viaNode: string | undefined;
    try {
      viaNode = new SocketAddress({ address: text, family: text.includes(':') ? 'ipv6' : 'ipv4' }).address;
    } catch {
      viaNode = undefined;
    }
    assert.equal(canonicalAddress(text), viaNode, JSON.stringify(text));
  }
});

test('tcpSeq: the TCP sequence number of a decoded packet (its signed 32-bit pattern), over IPv4 with options, IPv6 with extension headers, VLANs; 0 for UDP', () => {
  for (const seq of [0, 1, 0x01020304, 0x7fffffff, 0x80000000, 0xfedcba98, 0xffffffff]) {
    for (const frame of [
      ethernet(ipv4({ payload: tcp({ seq }) })),
      ethernet(ipv4({ options: Buffer.alloc(8, 1), payload: tcp({ seq }) }), { vlans: [0x88a8, 0x8100] }),
      ethernet(
        ipv6({ next: 0, payload: Buffer.concat([optionsHeader(60, 1), optionsHeader(IPPROTO_TCP, 0), tcp({ seq })]) }),
        { type: 0x86dd },
      ),
    ]) {
      const { result, pkt } = decode('ETHERNET', frame);
      assert.equal(result, Decoded.Ok);
      assert.equal(tcpSeq(pkt), seq | 0);
      assert.equal(tcpSeq(pkt) >>> 0, seq);
    }
  }
  const pkt = newPacket();
  assert.equal(
    decodeFrame('ETHERNET', ethernet(ipv4({ payload: tcp({ seq: 0xabcdef01 }) })), 1 << 16, pkt),
    Decoded.Ok,
  );
  assert.equal(
    decodeFrame('ETHERNET', ethernet(ipv4({ proto: IPPROTO_UDP, payload: udp({}) })), 1 << 16, pkt),
    Decoded.Ok,
  );
  assert.equal(tcpSeq(pkt), 0, 'UDP has none');
});
