/**
 * Spoofed knocks for the lab: a python3 raw socket (IP_HDRINCL) in the client
 * namespace sends, for each of `count` source addresses, one TCP SYN to each
 * port of a sequence, paced over `seconds`: a sniffed sequence completed from
 * that many sources. Sources are 10.<100+hi>.<mid>.<lo>, never the lab's own
 * subnet; the lab has no default route, so the server's answers go nowhere.
 */
import type { Lab } from '../test/lab/lab';

const SCRIPT = `
import socket, struct, sys, time
dst, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ports = [int(p) for p in sys.argv[4].split(',')]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
d = socket.inet_aton(dst)
t0 = time.monotonic()
sent = 0
for i in range(count):
    src = socket.inet_aton('10.%d.%d.%d' % (100 + (i >> 16), (i >> 8) & 255, (i & 255) or 1))
    for p in ports:
        tcp = struct.pack('!HHIIBBHHH', 40000 + (i % 20000), p, i, 0, 5 << 4, 0x02, 64240, 0, 0)
        c = csum(src + d + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, d)
        s.sendto(ip + tcp, (dst, 0))
        sent += 1
    ahead = t0 + seconds * (i + 1) / count - time.monotonic()
    if ahead > 0: time.sleep(ahead)
print(sent)
`;

/** Complete `ports` from `count` spoofed sources over `seconds`; resolves with the packets sent. */
export async function spoofCompletions(
  lab: Lab,
  opts: { count: number; seconds: number; ports: number[] },
): Promise<number> {
  const r = await lab.execIn(
    'client',
    ['python3', '-c', SCRIPT, lab.serverAddr, String(opts.count), String(opts.seconds), opts.ports.join(',')],
    { timeoutMs: (opts.seconds + 60) * 1000 },
  );
  if (r.code !== 0) throw new Error(`spoofed completions failed (${r.code}): ${r.stderr}`);
  return Number(r.stdout.trim());
}
