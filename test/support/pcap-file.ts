/** Writes classic pcap files of Ethernet/IPv4/UDP frames (for feeding the real fwknopd with --pcap-file). */

function checksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s >>> 16) + (s & 0xffff);
  return ~s & 0xffff;
}

export interface UdpDatagram {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

/** Ethernet II + IPv4 (checksummed, no options) + UDP (checksum 0: none) frame. */
export function udpFrame(d: UdpDatagram): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(d.sport, 0);
  udp.writeUInt16BE(d.dport, 2);
  udp.writeUInt16BE(8 + d.payload.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + d.payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(d.src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(d.dst.split('.').map(Number)).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const eth = Buffer.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
  return Buffer.concat([eth, ip, udp, d.payload]);
}

/** A pcap file (LINKTYPE_ETHERNET, microsecond timestamps) holding `frames`. */
export function pcapFile(frames: readonly Buffer[], startSeconds = Math.floor(Date.now() / 1000)): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const parts: Buffer[] = [head];
  frames.forEach((f, i) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(startSeconds + i, 0);
    rec.writeUInt32LE(f.length, 8);
    rec.writeUInt32LE(f.length, 12);
    parts.push(rec, f);
  });
  return Buffer.concat(parts);
}
