/** Hand-built Ethernet/IPv4/TCP|UDP frames for benchmarks. */
import { IPPROTO_TCP, IPPROTO_UDP, TH_SYN } from '../src/decode/types';

function v4(addr: string): number[] {
  return addr.split('.').map(Number);
}

/** An Ethernet II + IPv4 (no options) + TCP (20 bytes) or UDP (8 bytes, 1 byte payload) frame. */
export function ipv4Frame(o: {
  src: string;
  dst: string;
  proto?: 6 | 17;
  sport?: number;
  dport: number;
  flags?: number;
}): Buffer {
  const proto = o.proto ?? IPPROTO_TCP;
  const l4 = proto === IPPROTO_UDP ? 9 : 20;
  const buf = Buffer.alloc(14 + 20 + l4);
  buf.writeUInt16BE(0x0800, 12);
  const ip = 14;
  buf[ip] = 0x45;
  buf.writeUInt16BE(20 + l4, ip + 2);
  buf[ip + 8] = 64;
  buf[ip + 9] = proto;
  Buffer.from(v4(o.src)).copy(buf, ip + 12);
  Buffer.from(v4(o.dst)).copy(buf, ip + 16);
  const t = ip + 20;
  buf.writeUInt16BE(o.sport ?? 40000, t);
  buf.writeUInt16BE(o.dport, t + 2);
  if (proto === IPPROTO_TCP) {
    buf[t + 12] = 5 << 4;
    buf[t + 13] = o.flags ?? TH_SYN;
  } else {
    buf.writeUInt16BE(9, t + 4);
  }
  return buf;
}
