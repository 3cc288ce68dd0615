/**
 * Hostile-input fuzzing of the real per-packet path: FramePipeline (decode →
 * address text → Matcher) fed with random, valid and mutated frames.
 *
 * N frames: 100 000 by default, 1 000 000 with FUZZ_FULL=1. The PRNG seed is
 * in the test name; set FUZZ_SEED=<number> to replay another one. A failure
 * message names the frame index, link type, len and the frame's bytes in hex.
 *
 * Checked for every frame:
 *  - no exception escapes onFrame (nor the matcher listener);
 *  - exactly one of malformed / ignored / knocks advanced, and frames by one;
 *  - matcher.size never exceeds maxAttempts;
 *  - every address the matcher reports is an IP literal;
 *  - for well-formed frames (and single, targeted mutations of them) the
 *    outcome is the one the wire format implies (an independent oracle).
 * And for the run: heap growth is bounded, and two legitimate knockers hidden
 * in the flood (IPv4/TCP and IPv6/UDP+TCP) open their door every time they
 * complete their sequence.
 */
import { Rng } from '../support/rng';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { FramePipeline } from '../../src/capture/pipeline';
import { parseAddress } from '../../src/decode/address';
import { IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_SYN, type LinkType } from '../../src/decode/types';
import { Matcher, type DoorSpec, type MatchEvent } from '../../src/matcher/matcher';

const FULL = process.env.FUZZ_FULL === '1';
const N = FULL ? 1_000_000 : 100_000;
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x6b6e6f63;
const MAX_ATTEMPTS = 5000;

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Doors
// ---------------------------------------------------------------------------

const LOCAL_V4 = '198.51.100.2';
const LOCAL_V6 = '2001:db8::2';
const OTHER_V4 = '203.0.113.9';
const OTHER_V6 = '2001:db8:aaaa::9';
const tcp = (port: number) => ({ proto: IPPROTO_TCP, port }) as const;
const udp = (port: number) => ({ proto: IPPROTO_UDP, port }) as const;

const DOORS: DoorSpec[] = [
  // TCP SYN-only, addressed to the interface's own addresses.
  {
    name: 'openA',
    sequence: [tcp(7000), tcp(8000), tcp(9000)],
    seqTimeoutMs: 30_000,
    tcpFlags: { set: TH_SYN, clear: TH_ACK },
    action: 'open',
  },
  // Mixed UDP/TCP, any flags, explicit IPv6 target.
  {
    name: 'mixB',
    sequence: [udp(1111), tcp(2222), udp(3333)],
    seqTimeoutMs: 20_000,
    tcpFlags: { set: 0, clear: 0 },
    target: LOCAL_V6,
    action: 'open',
  },
  // Shares its first port with openA.
  {
    name: 'closeC',
    sequence: [tcp(7000), tcp(6666), tcp(8888)],
    seqTimeoutMs: 10_000,
    tcpFlags: { set: 0, clear: 0 },
    action: 'close',
  },
];
const KNOCK_PORTS = [7000, 8000, 9000, 1111, 2222, 3333, 6666, 8888];
const FIRST_PORTS = [7000, 1111];

// ---------------------------------------------------------------------------
// Frame generator
// ---------------------------------------------------------------------------

type Outcome = 'knock' | 'ignored' | 'malformed';

/** A generated frame and what we know about it. */
interface Frame {
  buf: Buffer;
  link: LinkType;
  family: 4 | 6 | 0;
  /** Offset of the IP header (-1: none). */
  ipOff: number;
  /** Offset of the TCP/UDP header (-1: none). */
  l4Off: number;
  /** End of the fixed TCP (20) or UDP (8) header. */
  l4End: number;
  proto: number;
  /** The decoder returns Ok for it (then `outcome` is knock or ignored by port). */
  decodesOk: boolean;
  outcome: Outcome;
}

const ETH_V4 = 0x0800;
const ETH_V6 = 0x86dd;
const TPIDS = [0x8100, 0x88a8, 0x9100];
const EXT_TYPES = [0, 43, 60, 44, 51];
const OTHER_PROTOS = [1, 58, 50, 59, 47, 132];
const NULL_V6 = [10, 24, 28, 30];

const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff, 0);
  return b;
};

function addr(text: string): Buffer {
  const p = parseAddress(text);
  if (p === undefined) throw new Error(`test bug: ${text}`);
  return p.bytes;
}
const LOCAL_V4_B = addr(LOCAL_V4);
const LOCAL_V6_B = addr(LOCAL_V6);
const OTHER_V4_B = addr(OTHER_V4);
const OTHER_V6_B = addr(OTHER_V6);

function srcV4(r: Rng): Buffer {
  return Buffer.from([10, r.byte(), r.byte(), r.byte()]);
}

function srcV6(r: Rng): Buffer {
  const b = Buffer.alloc(16);
  const kind = r.int(0, 19);
  if (kind === 0) {
    b[10] = 0xff; // ::ffff:a.b.c.d
    b[11] = 0xff;
    r.bytes(4).copy(b, 12);
  } else if (kind === 1) {
    r.bytes(4).copy(b, 12); // ::a.b.c.d (IPv4-compatible)
  } else if (kind === 2) {
    r.bytes(16).copy(b, 0); // anything
  } else {
    b.writeUInt32BE(0x20010db8, 0);
    b[4] = 0xff;
    for (let i = 5; i < 16; i++) b[i] = r.chance(0.3) ? 0 : r.byte(); // zero runs for '::' placement
  }
  return b;
}

function l4Header(r: Rng, proto: number): Buffer {
  // Knock ports, first ports of a sequence (which start attempts) weighted up, or anything.
  const dport = r.chance(0.7) ? (r.chance(0.5) ? r.pick(FIRST_PORTS) : r.pick(KNOCK_PORTS)) : r.int(0, 65535);
  const sport = r.int(0, 65535);
  if (proto === IPPROTO_TCP) {
    const optLen = r.chance(0.7) ? 0 : 4 * r.int(1, 10);
    const h = Buffer.alloc(20 + optLen + (r.chance(0.8) ? 0 : r.int(1, 32)));
    h.writeUInt16BE(sport, 0);
    h.writeUInt16BE(dport, 2);
    h.writeUInt32BE((r.next() * 2 ** 32) >>> 0, 4);
    h[12] = (5 + optLen / 4) << 4;
    h[13] = r.chance(0.6) ? TH_SYN : r.byte();
    h.writeUInt16BE(64240, 14);
    for (let i = 20; i < 20 + optLen; i++) h[i] = 1; // NOP options
    return h;
  }
  if (proto === IPPROTO_UDP) {
    const h = Buffer.alloc(8 + (r.chance(0.5) ? 0 : r.int(1, 32)));
    h.writeUInt16BE(sport, 0);
    h.writeUInt16BE(dport, 2);
    h.writeUInt16BE(h.length, 4);
    return h;
  }
  return r.bytes(r.int(0, 40)); // ICMP, ESP, ... : opaque
}

/** IPv4 packet; returns bytes and what the decoder will make of it (ignoring the port). */
function ipv4Packet(
  r: Rng,
  src: Buffer,
  dst: Buffer,
  proto: number,
  l4: Buffer,
): { pkt: Buffer; l4Off: number; ignored: boolean } {
  const optLen = r.chance(0.6) ? 0 : 4 * r.int(1, 10);
  const h = Buffer.alloc(20 + optLen);
  h[0] = 0x40 | (5 + optLen / 4);
  h.writeUInt16BE(h.length + l4.length, 2);
  h.writeUInt16BE(r.int(0, 65535), 4);
  let nonFirst = false;
  const frag = r.int(0, 9);
  if (frag === 0)
    h.writeUInt16BE(0x2000, 6); // first fragment: MF, offset 0
  else if (frag === 1) {
    h.writeUInt16BE((r.chance(0.5) ? 0x2000 : 0) | (r.chance(0.3) ? 1 : r.int(1, 0x1fff)), 6); // non-first (offset 1: the edge)
    nonFirst = true;
  } else if (frag === 2) h.writeUInt16BE(0x4000, 6); // DF
  h[8] = 64;
  h[9] = proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  for (let i = 20; i < h.length; i++) h[i] = r.chance(0.5) ? 1 : r.byte(); // options: opaque to the decoder
  return {
    pkt: Buffer.concat([h, l4]),
    l4Off: h.length,
    ignored: nonFirst || (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP),
  };
}

/** IPv6 packet with an extension-header chain; `ignored`/`malformed` as the decoder will see it (ignoring the port). */
function ipv6Packet(
  r: Rng,
  src: Buffer,
  dst: Buffer,
  proto: number,
  l4: Buffer,
): { pkt: Buffer; l4Off: number; ignored: boolean; malformed: boolean } {
  const mode = r.int(0, 9);
  const count = mode < 5 ? 0 : mode < 9 ? r.int(1, 6) : r.int(10, 40);
  const types: number[] = [];
  for (let i = 0; i < count; i++) types.push(r.pick(EXT_TYPES));
  const exts: Buffer[] = [];
  let ignored = false;
  let malformed = false;
  for (let i = 0; i < count; i++) {
    const next = i + 1 < count ? types[i + 1] : proto;
    const type = types[i];
    let h: Buffer;
    let nonFirstFrag = false;
    if (type === 44) {
      h = Buffer.alloc(8);
      const off = r.chance(0.7) ? 0 : r.chance(0.3) ? 1 : r.int(1, 0x1fff);
      nonFirstFrag = off !== 0;
      h.writeUInt16BE((off << 3) | (r.chance(0.5) ? 1 : 0), 2);
      h.writeUInt32BE((r.next() * 2 ** 32) >>> 0, 4);
    } else if (type === 51) {
      const words = r.int(1, 4); // ICV words beyond the 12-byte minimum... AH length = (len+2)*4
      h = Buffer.alloc(12 + 4 * (words - 1));
      h[1] = h.length / 4 - 2;
    } else {
      const units = r.chance(0.7) ? 0 : r.int(1, 4);
      h = Buffer.alloc((units + 1) * 8);
      h[1] = units;
      h[2] = 1; // PadN
      h[3] = h.length - 4;
    }
    h[0] = next;
    exts.push(h);
    // The decoder's order: count limit (16), bounds, then the fragment offset.
    if (!ignored && !malformed) {
      if (i + 1 > 16) malformed = true;
      else if (nonFirstFrag) ignored = true;
    }
  }
  if (!ignored && !malformed && proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) ignored = true;
  const extBuf = Buffer.concat(exts);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((0x60000000 | r.int(0, 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(extBuf.length + l4.length, 4);
  h[6] = count > 0 ? types[0] : proto;
  h[7] = 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return { pkt: Buffer.concat([h, extBuf, l4]), l4Off: 40 + extBuf.length, ignored, malformed };
}

const watched = (proto: number, port: number): boolean =>
  DOORS.some((d) => d.sequence.some((p) => p.proto === proto && p.port === port));

/** Wrap an IP packet (or, for ARP, anything) in a link layer. */
function linkWrap(r: Rng, link: LinkType, family: 4 | 6, pkt: Buffer): { buf: Buffer; ipOff: number; tags: number } {
  const etherType = family === 4 ? ETH_V4 : ETH_V6;
  const tags = r.chance(0.7) ? 0 : r.int(1, 10);
  const tpids: number[] = [];
  for (let i = 0; i < tags; i++) tpids.push(r.pick(TPIDS));
  switch (link) {
    case 'ETHERNET': {
      const parts: Buffer[] = [Buffer.from('020000000001020000000002', 'hex')];
      for (const t of tpids) parts.push(u16(t), u16(r.int(0, 0xffff)));
      parts.push(u16(etherType));
      const head = Buffer.concat(parts);
      return { buf: Buffer.concat([head, pkt]), ipOff: head.length, tags };
    }
    case 'LINKTYPE_LINUX_SLL': {
      const h = Buffer.alloc(14);
      h.writeUInt16BE(r.int(0, 4), 0);
      h.writeUInt16BE(1, 2);
      h.writeUInt16BE(6, 4);
      const parts: Buffer[] = [h, u16(tags > 0 ? tpids[0] : etherType)];
      for (let i = 0; i < tags; i++) parts.push(u16(r.int(0, 0xffff)), u16(i + 1 < tags ? tpids[i + 1] : etherType));
      const head = Buffer.concat(parts);
      return { buf: Buffer.concat([head, pkt]), ipOff: head.length, tags };
    }
    case 'NULL': {
      const h = Buffer.alloc(4);
      const af = family === 4 ? 2 : r.pick(NULL_V6);
      if (r.chance(0.5)) h.writeUInt32LE(af, 0);
      else h.writeUInt32BE(af, 0);
      return { buf: Buffer.concat([h, pkt]), ipOff: 4, tags: 0 };
    }
    default:
      return { buf: pkt, ipOff: 0, tags: 0 };
  }
}

const LINKS: LinkType[] = ['ETHERNET', 'ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL'];

/** A well-formed frame (possibly a non-first fragment, ICMP, too many VLAN tags or extension headers...). */
function validFrame(r: Rng): Frame {
  const link = r.pick(LINKS);
  // Not IP at all: ARP over Ethernet, an unknown BSD address family over NULL.
  if (r.chance(0.02)) {
    if (link === 'NULL') {
      const buf = Buffer.concat([Buffer.from([7, 0, 0, 0]), r.bytes(r.int(20, 60))]);
      return { buf, link, family: 0, ipOff: -1, l4Off: -1, l4End: -1, proto: -1, decodesOk: false, outcome: 'ignored' };
    }
    const buf = Buffer.concat([Buffer.from('ffffffffffff020000000002', 'hex'), u16(0x0806), r.bytes(28)]);
    return {
      buf,
      link: 'ETHERNET',
      family: 0,
      ipOff: -1,
      l4Off: -1,
      l4End: -1,
      proto: -1,
      decodesOk: false,
      outcome: 'ignored',
    };
  }
  const family: 4 | 6 = r.chance(0.55) ? 4 : 6;
  const pr = r.next();
  const proto = pr < 0.6 ? IPPROTO_TCP : pr < 0.93 ? IPPROTO_UDP : r.pick(OTHER_PROTOS);
  const l4 = l4Header(r, proto);
  const local = r.chance(0.8);
  const src = family === 4 ? srcV4(r) : srcV6(r);
  const dst = family === 4 ? (local ? LOCAL_V4_B : OTHER_V4_B) : local ? LOCAL_V6_B : OTHER_V6_B;
  const ip: { pkt: Buffer; l4Off: number; ignored: boolean; malformed?: boolean } =
    family === 4 ? ipv4Packet(r, src, dst, proto, l4) : ipv6Packet(r, src, dst, proto, l4);
  const w = linkWrap(r, link, family, ip.pkt);
  const l4Off = w.ipOff + ip.l4Off;
  const isL4 = proto === IPPROTO_TCP || proto === IPPROTO_UDP;
  const l4End = isL4 ? l4Off + (proto === IPPROTO_TCP ? 20 : 8) : -1;
  let outcome: Outcome;
  let decodesOk = false;
  if (w.tags > 8 || ip.malformed === true) outcome = 'malformed';
  else if (ip.ignored) outcome = 'ignored';
  else {
    decodesOk = true;
    const dport = l4.readUInt16BE(2);
    outcome = watched(proto, dport) ? 'knock' : 'ignored';
  }
  return { buf: w.buf, link, family, ipOff: w.ipOff, l4Off: isL4 ? l4Off : -1, l4End, proto, decodesOk, outcome };
}

/** Send `frame` with a knock to `port` from a fixed source: the legitimate knockers. */
function knockFrame(family: 4 | 6, src: Buffer, proto: number, port: number): Buffer {
  const l4 = Buffer.alloc(proto === IPPROTO_TCP ? 20 : 9);
  l4.writeUInt16BE(40001, 0);
  l4.writeUInt16BE(port, 2);
  if (proto === IPPROTO_TCP) {
    l4[12] = 0x50;
    l4[13] = TH_SYN;
  } else l4.writeUInt16BE(9, 4);
  let ip: Buffer;
  if (family === 4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip[8] = 64;
    ip[9] = proto;
    src.copy(ip, 12);
    LOCAL_V4_B.copy(ip, 16);
  } else {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = proto;
    ip[7] = 64;
    src.copy(ip, 8);
    LOCAL_V6_B.copy(ip, 24);
  }
  const eth = Buffer.from('0200000000010200000000020000', 'hex');
  eth.writeUInt16BE(family === 4 ? ETH_V4 : ETH_V6, 12);
  return Buffer.concat([eth, ip, l4]);
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

/** A frame as handed to onFrame, and the outcome it must have if known. */
interface Input {
  link: LinkType;
  buf: Buffer;
  len: number;
  expect?: Outcome;
  what: string;
}

const BOGUS_LINKS = [
  'ETHERNET',
  'LINKTYPE_LINUX_SLL',
  'RAW',
  'NULL',
  'IEEE802_11',
  '',
  'ethernet',
] as unknown as LinkType[];
const WEIRD_LENS = [Number.NaN, -1, -0, 0.5, 3.7, Infinity, -Infinity, 2 ** 31, 2 ** 32 + 14, Number.MAX_SAFE_INTEGER];
/** A reused capture buffer, as libpcap hands us: stale bytes after the frame. */
const SCRATCH = Buffer.alloc(2048, 0xa5);

/** A single, targeted mutation of a well-formed frame, with the outcome the wire format implies. */
function targetedMutation(r: Rng, f: Frame): Input {
  const buf = Buffer.from(f.buf);
  const same = f.outcome;
  const ok = f.decodesOk;
  switch (r.int(0, 7)) {
    case 0: {
      // Snaplen truncation (len, or a shorter buffer).
      const len = r.chance(0.1) ? 0 : r.int(0, buf.length);
      const expect = ok
        ? len < f.l4End
          ? 'malformed'
          : same
        : len === 0 || f.outcome === 'malformed'
          ? 'malformed'
          : undefined;
      return r.chance(0.5)
        ? { link: f.link, buf, len, expect, what: `truncate len=${len}` }
        : { link: f.link, buf: buf.subarray(0, len), len: buf.length, expect, what: `truncate buffer=${len}` };
    }
    case 1: {
      if (f.family !== 4 || f.ipOff < 0) break;
      const ihl = r.int(0, 15);
      buf[f.ipOff] = 0x40 | ihl;
      const expect = ihl < 5 ? 'malformed' : ihl === (f.buf[f.ipOff] & 0x0f) ? same : undefined;
      return { link: f.link, buf, len: buf.length, expect, what: `IHL=${ihl}` };
    }
    case 2: {
      if (f.ipOff < 0 || f.family === 0) break;
      const v = r.pick([0, 1, 65535, r.int(0, 65535), r.int(0, 200)]);
      let expect: Outcome | undefined;
      if (f.family === 4) {
        buf.writeUInt16BE(v, f.ipOff + 2);
        const ihl4 = (buf[f.ipOff] & 0x0f) * 4;
        if (v < ihl4) expect = 'malformed';
        else if (ok) expect = f.ipOff + v < f.l4End ? 'malformed' : same;
        else expect = same; // still a non-first fragment / not TCP or UDP / too many VLAN tags
        return { link: f.link, buf, len: buf.length, expect, what: `IPv4 total length=${v}` };
      }
      buf.writeUInt16BE(v, f.ipOff + 4);
      if (ok) expect = v === 0 ? same : f.ipOff + 40 + v < f.l4End ? 'malformed' : same;
      else if (f.outcome === 'malformed') expect = 'malformed'; // a shorter datagram cannot make it well-formed
      return { link: f.link, buf, len: buf.length, expect, what: `IPv6 payload length=${v}` };
    }
    case 3: {
      if (f.proto !== IPPROTO_TCP || f.l4Off < 0) break;
      const doff = r.int(0, 15);
      buf[f.l4Off + 12] = (doff << 4) | (buf[f.l4Off + 12] & 0x0f);
      const expect = ok ? (doff < 5 ? 'malformed' : same) : undefined;
      return { link: f.link, buf, len: buf.length, expect, what: `TCP data offset=${doff}` };
    }
    case 4: {
      // len beyond the buffer, or a nonsense number: clamped.
      const len = r.chance(0.5) ? buf.length + r.int(1, 100_000) : r.pick(WEIRD_LENS);
      const clampsToFull = len >= buf.length; // (NaN: no expectation)
      const clampsToZero = !clampsToFull && len < 1;
      return {
        link: f.link,
        buf,
        len,
        expect: clampsToFull ? same : clampsToZero ? 'malformed' : undefined,
        what: `len=${len}`,
      };
    }
    case 5: {
      // In a larger reused capture buffer with stale bytes after it.
      if (buf.length > SCRATCH.length) break;
      SCRATCH.fill(r.byte(), buf.length);
      buf.copy(SCRATCH, 0);
      return { link: f.link, buf: SCRATCH, len: buf.length, expect: same, what: 'in a reused capture buffer' };
    }
    case 6:
      return { link: r.pick(BOGUS_LINKS), buf, len: buf.length, what: 'link type swapped' };
    default:
      break;
  }
  return { link: f.link, buf, len: buf.length, expect: same, what: 'unmutated' };
}

/** Chaos: stack several mutations; only the invariants apply. */
function chaosMutation(r: Rng, f: Frame): Input {
  let buf = Buffer.from(f.buf);
  let len = buf.length;
  let link = f.link;
  const steps = r.int(1, 4);
  const what: string[] = [];
  for (let s = 0; s < steps; s++) {
    switch (r.int(0, 8)) {
      case 0:
      case 1: {
        const flips = r.int(1, 8);
        for (let k = 0; k < flips && buf.length > 0; k++) {
          const at = r.int(0, buf.length - 1);
          buf[at] = buf[at] ^ r.int(1, 255);
        }
        what.push(`flip ${flips}`);
        break;
      }
      case 2:
        if (f.family === 4 && f.ipOff >= 0 && f.ipOff < buf.length) buf[f.ipOff] = (buf[f.ipOff] & 0xf0) | r.int(0, 15);
        what.push('ihl');
        break;
      case 3:
        if (f.ipOff >= 0 && f.ipOff + 6 <= buf.length)
          buf.writeUInt16BE(r.pick([0, 1, 65535, r.int(0, 65535)]), f.ipOff + (f.family === 6 ? 4 : 2));
        what.push('iplen');
        break;
      case 4:
        if (f.l4Off >= 0 && f.l4Off + 13 <= buf.length) buf[f.l4Off + 12] = r.int(0, 15) << 4;
        what.push('doff');
        break;
      case 5:
        link = r.pick(BOGUS_LINKS);
        what.push(`link ${link}`);
        break;
      case 6:
        len = r.chance(0.5) ? r.int(0, buf.length) : r.chance(0.5) ? buf.length + r.int(1, 1000) : r.pick(WEIRD_LENS);
        what.push(`len ${len}`);
        break;
      case 7:
        buf = buf.subarray(0, r.int(0, buf.length));
        what.push('cut');
        break;
      default: {
        // Overwrite a random next-header / protocol / ethertype-ish byte with an interesting value.
        if (buf.length > 0)
          buf[r.int(0, buf.length - 1)] = r.pick([
            0, 4, 6, 17, 41, 43, 44, 50, 51, 59, 60, 0x45, 0x60, 0x81, 0x86, 0xdd, 0xff,
          ]);
        what.push('poke');
      }
    }
  }
  return { link, buf, len, what: `chaos: ${what.join(', ')}` };
}

function randomInput(r: Rng): Input {
  const n = r.chance(0.1) ? 0 : r.int(1, r.chance(0.9) ? 120 : 1600);
  const buf = r.bytes(n);
  // Random bytes with a plausible IP version nibble now and then, to get past the first checks.
  if (n > 0 && r.chance(0.5)) buf[0] = (r.pick([4, 6]) << 4) | (buf[0] & 0x0f);
  return { link: r.pick(BOGUS_LINKS), buf, len: r.chance(0.8) ? n : r.int(0, n + 10), what: 'random bytes' };
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/** Obtain gc() even without --expose-gc (test runner children do not get our flags). */
function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : undefined;
  } catch {
    return undefined;
  }
}

function heapAfterGc(gc: (() => void) | undefined): number {
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

interface Knocker {
  name: string;
  family: 4 | 6;
  src: string;
  srcBytes: Buffer;
  door: string;
  seq: { proto: number; port: number }[];
  /** Frame index offset within each 1000-frame period. */
  phase: number;
  next: number;
  completed: number;
  opens: number;
}

test(`fuzz FramePipeline: ${N} random/mutated frames, 3 doors, maxAttempts ${MAX_ATTEMPTS} (seed ${SEED}${FULL ? ', FUZZ_FULL' : ''})`, (t) => {
  const r = new Rng(SEED);
  const knockers: Knocker[] = [
    {
      name: 'v4',
      family: 4,
      src: '192.0.2.200',
      srcBytes: addr('192.0.2.200'),
      door: 'openA',
      seq: [tcp(7000), tcp(8000), tcp(9000)],
      phase: 0,
      next: 0,
      completed: 0,
      opens: 0,
    },
    {
      name: 'v6',
      family: 6,
      src: '2001:db8:1::beef',
      srcBytes: addr('2001:db8:1::beef'),
      door: 'mixB',
      seq: [udp(1111), tcp(2222), udp(3333)],
      phase: 500,
      next: 0,
      completed: 0,
      opens: 0,
    },
  ];
  const bySrc = new Map(knockers.map((k) => [k.src, k]));
  const eventCounts: Record<string, number> = {};
  let badEvent: string | undefined;
  const listener = (e: MatchEvent): void => {
    eventCounts[e.type] = (eventCounts[e.type] ?? 0) + 1;
    if (badEvent === undefined && isIP(e.src) === 0)
      badEvent = `${e.type} event with non-IP src ${JSON.stringify(e.src)}`;
    if (e.type === 'open' || e.type === 'close') {
      const k = bySrc.get(e.src);
      if (k !== undefined && e.door.name === k.door) k.opens++;
    }
  };
  const matcher = new Matcher(DOORS, listener, { maxAttempts: MAX_ATTEMPTS });
  matcher.setLocalAddresses([LOCAL_V4, LOCAL_V6]);
  const pipe = new FramePipeline(matcher);
  // A second, IPv4-only pipeline gets the same frames: IPv6 must only ever be "ignored" there.
  const matcher4 = new Matcher(DOORS, () => undefined, { maxAttempts: MAX_ATTEMPTS });
  matcher4.setLocalAddresses([LOCAL_V4, LOCAL_V6]);
  const pipe4 = new FramePipeline(matcher4, true);

  const gc = getGc();
  const heapBefore = heapAfterGc(gc);
  const t0 = process.hrtime.bigint();
  let now = 1_000_000;
  let maxSize = 0;
  let oracleChecks = 0;
  const s = pipe.stats;
  const s4 = pipe4.stats;

  for (let i = 0; i < N; i++) {
    // About 0.3 ms per frame: attempts pile up to the bound, and the shorter seq_timeouts still expire.
    if (r.chance(0.3)) now += 1;
    if (i % 1000 === 0) {
      matcher.sweep(now);
      matcher4.sweep(now);
    }

    let input: Input;
    const k = i % 500 === 0 ? knockers.find((x) => i % 1000 === x.phase) : undefined;
    if (k !== undefined) {
      const step = k.seq[k.next];
      input = {
        link: 'ETHERNET',
        buf: knockFrame(k.family, k.srcBytes, step.proto, step.port),
        len: -1,
        expect: 'knock',
        what: `knocker ${k.name} step ${k.next + 1}`,
      };
      input.len = input.buf.length;
      k.next++;
      if (k.next === k.seq.length) {
        k.next = 0;
        k.completed++;
      }
    } else {
      const kind = r.next();
      if (kind < 0.05) input = randomInput(r);
      else {
        const f = validFrame(r);
        if (kind < 0.5) input = { link: f.link, buf: f.buf, len: f.buf.length, expect: f.outcome, what: 'valid' };
        else if (kind < 0.75) input = targetedMutation(r, f);
        else input = chaosMutation(r, f);
      }
    }

    const before = { m: s.malformed, ig: s.ignored, k: s.knocks, f: s.frames };
    const ig4 = s4.ignored;
    const knocks4 = s4.knocks;
    const where = (): string =>
      `frame #${i} (seed ${SEED}): ${input.what}; link=${String(input.link)} len=${input.len} buf(${input.buf.length})=${input.buf.subarray(0, 256).toString('hex')}`;
    try {
      pipe.onFrame(input.link, input.buf, input.len, now);
      pipe4.onFrame(input.link, input.buf, input.len, now);
    } catch (err) {
      assert.fail(`exception escaped onFrame at ${where()}: ${(err as Error).stack ?? String(err)}`);
    }
    const dm = s.malformed - before.m;
    const di = s.ignored - before.ig;
    const dk = s.knocks - before.k;
    if (s.frames - before.f !== 1 || dm + di + dk !== 1 || dm < 0 || di < 0 || dk < 0) {
      assert.fail(
        `counters moved by malformed=${dm} ignored=${di} knocks=${dk} frames=${s.frames - before.f} at ${where()}`,
      );
    }
    if (s4.frames !== s.frames || s4.malformed + s4.ignored + s4.knocks !== s4.frames)
      assert.fail(`IPv4-only pipeline counters out of step at ${where()}`);
    const got: Outcome = dm === 1 ? 'malformed' : di === 1 ? 'ignored' : 'knock';
    if (input.expect !== undefined) {
      oracleChecks++;
      if (got !== input.expect) assert.fail(`expected ${input.expect}, got ${got} at ${where()}`);
    }
    // With -4, what the full pipeline counts as an IPv6 knock is ignored instead.
    if (got === 'knock' && s4.knocks === knocks4 && s4.ignored !== ig4 + 1)
      assert.fail(`IPv4-only pipeline: knock neither passed nor ignored at ${where()}`);
    const size = matcher.size;
    if (size > maxSize) maxSize = size;
    if (size > MAX_ATTEMPTS || matcher4.size > MAX_ATTEMPTS)
      assert.fail(`matcher.size ${size} exceeds maxAttempts ${MAX_ATTEMPTS} at ${where()}`);
    if (badEvent !== undefined) assert.fail(`${badEvent} at ${where()}`);
  }

  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const heapAfter = heapAfterGc(gc);
  const growthMb = (heapAfter - heapBefore) / 2 ** 20;

  assert.equal(s.frames, N);
  assert.equal(s.frames, s.malformed + s.ignored + s.knocks);
  assert.equal(s4.frames, s4.malformed + s4.ignored + s4.knocks);
  assert.ok(s4.knocks <= s.knocks);

  // The run exercised what it was meant to.
  assert.ok(s.malformed > N / 20, `malformed frames: ${s.malformed}`);
  assert.ok(s.ignored > N / 20, `ignored frames: ${s.ignored}`);
  assert.ok(s.knocks > N / 10, `knocks: ${s.knocks}`);
  assert.ok(
    matcher.stats.evicted > 0,
    `the attempt bound was reached (evictions happened): max size ${maxSize}, stats ${JSON.stringify(matcher.stats)}`,
  );
  assert.equal(maxSize, MAX_ATTEMPTS, 'the table filled up to its bound');
  assert.ok(oracleChecks > N / 3, `oracle checks: ${oracleChecks}`);

  // The flood did not starve the legitimate knockers.
  for (const k of knockers) {
    assert.ok(k.completed >= Math.floor(N / 3000) - 1, `knocker ${k.name} completed ${k.completed} sequences`);
    assert.equal(k.opens, k.completed, `knocker ${k.name}: ${k.completed} sequences completed, ${k.opens} opens`);
  }

  // Memory: nothing per frame is retained beyond the bounded attempt table.
  const limitMb = gc ? 50 : 150;
  assert.ok(
    growthMb < limitMb,
    `heap grew by ${growthMb.toFixed(1)} MB (limit ${limitMb} MB, gc ${gc ? 'available' : 'not available'})`,
  );

  t.diagnostic(
    `fuzz-packets: ${N} frames in ${ms.toFixed(0)} ms (${((N / ms) * 1000).toFixed(0)}/s); malformed=${s.malformed} ignored=${s.ignored} knocks=${s.knocks}; ` +
      `oracle checks=${oracleChecks}; matcher max size=${maxSize}, evicted=${matcher.stats.evicted}; events=${JSON.stringify(eventCounts)}; ` +
      `opens v4=${knockers[0]?.opens} v6=${knockers[1]?.opens}; heap growth ${growthMb.toFixed(1)} MB (gc ${gc ? 'yes' : 'no'})`,
  );
});
