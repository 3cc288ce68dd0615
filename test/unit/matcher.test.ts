import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Matcher, type DoorSpec, type Knock, type MatchEvent } from '../../src/matcher/matcher';
import { IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_SYN } from '../../src/decode/types';

const SERVER = '10.0.0.1';
const tcp = (port: number) => ({ proto: IPPROTO_TCP, port }) as const;
const udp = (port: number) => ({ proto: IPPROTO_UDP, port }) as const;

function door(name: string, ports: DoorSpec['sequence'], extra: Partial<DoorSpec> = {}): DoorSpec {
  return { name, sequence: ports, seqTimeoutMs: 15_000, tcpFlags: { set: TH_SYN, clear: 0 }, action: 'open', ...extra };
}

const openSSH = door('openSSH', [tcp(3333), tcp(4444), tcp(5555)]);
const closeSSH = door('closeSSH', [tcp(6666), tcp(7777), tcp(8888)], { action: 'close' });

/** A matcher with a fake clock and a log of events. */
function rig(doors: DoorSpec[] = [openSSH, closeSSH], maxAttempts?: number) {
  const events: MatchEvent[] = [];
  const m = new Matcher(doors, (e) => events.push(e), maxAttempts !== undefined ? { maxAttempts } : {});
  m.setLocalAddresses([SERVER, 'fd00::1']);
  let now = 1_000;
  /** Every knock is a new connection attempt (its own source port and sequence number) unless `sport`/`seq` are given. */
  let conn = 0;
  const knock = (
    src: string,
    port: number,
    o: { proto?: 6 | 17; flags?: number; dst?: string; family?: 4 | 6; sport?: number; seq?: number } = {},
  ) => {
    conn++;
    const k: Knock = {
      sport: o.sport ?? 30000 + (conn % 30000),
      seq: o.seq ?? Math.imul(conn, 0x9e3779b1) >>> 0,
      family: o.family ?? (src.includes(':') ? 6 : 4),
      proto: o.proto ?? IPPROTO_TCP,
      dport: port,
      flags: o.flags ?? ((o.proto ?? IPPROTO_TCP) === IPPROTO_TCP ? TH_SYN : 0),
      src,
      dst: o.dst ?? (src.includes(':') ? 'fd00::1' : SERVER),
    };
    m.handle(k, now);
  };
  const advance = (ms: number) => {
    now += ms;
  };
  const opened = () =>
    events.filter((e) => e.type === 'open' || e.type === 'close').map((e) => `${e.type} ${e.door.name} ${e.src}`);
  return { m, events, knock, advance, opened, now: () => now };
}

test('the full sequence opens, with stage events 1..3', () => {
  const r = rig();
  for (const p of [3333, 4444, 5555]) {
    r.knock('10.0.0.2', p);
    r.advance(100);
  }
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.deepEqual(
    r.events.filter((e) => e.type === 'stage').map((e) => (e.type === 'stage' ? e.stage : 0)),
    [1, 2, 3],
  );
  assert.equal(r.m.size, 0, 'a completed attempt is gone');
});

test('the close door emits close', () => {
  const r = rig();
  for (const p of [6666, 7777, 8888]) r.knock('10.0.0.2', p);
  assert.deepEqual(r.opened(), ['close closeSSH 10.0.0.2']);
});

test('wrong order opens nothing', () => {
  const r = rig();
  for (const p of [3333, 5555, 4444]) r.knock('10.0.0.2', p);
  assert.deepEqual(r.opened(), []);
  for (const p of [4444, 3333, 5555]) r.knock('10.0.0.3', p);
  assert.deepEqual(r.opened(), []);
});

test('a knock on a wrong port spoils the attempt; the sequence must restart', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 7777); // another door's port: a candidate packet, wrong for openSSH
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), []);
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.door.name === 'openSSH' && e.stage === 2));
  for (const p of [3333, 4444, 5555]) r.knock('10.0.0.2', p);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('a port no door uses is not a candidate and spoils nothing (knockd never sees it)', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 22);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.equal(r.m.stats.ignored, 1);
});

test('a TCP packet whose flags do not match is ignored, it does not spoil', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 7777, { flags: TH_ACK }); // not SYN: ignored by every door
  r.knock('10.0.0.2', 4444, { flags: TH_ACK }); // right port, wrong flags: does not advance
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555, { flags: TH_SYN | TH_ACK }); // SYN set (others don't care): counts
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.equal(r.events.filter((e) => e.type === 'spoiled').length, 0);
});

test('negated flags: tcpflags = fin,!ack', () => {
  const d = door('fin', [tcp(1000), tcp(2000)], { tcpFlags: { set: TH_FIN, clear: TH_ACK } });
  const r = rig([d]);
  r.knock('10.0.0.2', 1000, { flags: TH_FIN | TH_ACK });
  r.knock('10.0.0.2', 2000, { flags: TH_FIN | TH_ACK });
  assert.deepEqual(r.opened(), []);
  r.knock('10.0.0.2', 1000, { flags: TH_FIN });
  r.knock('10.0.0.2', 2000, { flags: TH_FIN });
  assert.deepEqual(r.opened(), ['open fin 10.0.0.2']);
});

test('a plain connect (SYN) does not knock a fin door', () => {
  const d = door('fin', [tcp(1000), tcp(2000)], { tcpFlags: { set: TH_FIN, clear: 0 } });
  const r = rig([d]);
  r.knock('10.0.0.2', 1000);
  r.knock('10.0.0.2', 2000);
  assert.deepEqual(r.opened(), []);
  assert.equal(r.m.size, 0);
});

test('an attempt older than seq_timeout is dropped (lazily, and by sweep)', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.advance(15_000);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), []);
  assert.ok(r.events.some((e) => e.type === 'timeout' && e.stage === 2));

  r.knock('10.0.0.3', 3333);
  r.advance(14_999);
  r.m.sweep(r.now());
  assert.equal(r.m.size, 1, 'not yet');
  r.advance(1);
  r.m.sweep(r.now());
  assert.equal(r.m.size, 0);
  assert.equal(r.events.filter((e) => e.type === 'timeout').length, 2);
});

test('just inside seq_timeout still opens', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.advance(7_000);
  r.knock('10.0.0.2', 4444);
  r.advance(7_999);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('two sources interleaved are tracked independently', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.3', 3333);
  r.knock('10.0.0.3', 4444);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  r.knock('10.0.0.3', 3333); // wrong for .3 (expects 5555): spoils only .3 (and restarts it)
  r.knock('10.0.0.3', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('one source cannot complete a sequence started by another', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.3', 5555);
  assert.deepEqual(r.opened(), []);
});

test('two doors sharing a first port: the second knock decides', () => {
  const a = door('a', [tcp(1000), tcp(2000), tcp(3000)]);
  const b = door('b', [tcp(1000), tcp(4000), tcp(5000)]);
  const r = rig([a, b]);
  r.knock('10.0.0.2', 1000);
  assert.equal(r.m.size, 2);
  r.knock('10.0.0.2', 4000);
  r.knock('10.0.0.2', 5000);
  assert.deepEqual(r.opened(), ['open b 10.0.0.2']);
  r.knock('10.0.0.4', 1000);
  r.knock('10.0.0.4', 2000);
  r.knock('10.0.0.4', 3000);
  assert.deepEqual(r.opened(), ['open b 10.0.0.2', 'open a 10.0.0.4']);
});

test('doors are independent: starting one door while another is in flight works', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 6666); // spoils openSSH, starts closeSSH
  r.knock('10.0.0.2', 7777);
  r.knock('10.0.0.2', 8888);
  assert.deepEqual(r.opened(), ['close closeSSH 10.0.0.2']);
});

test('repeating the first knock restarts the attempt', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('a sequence that repeats a port works', () => {
  const r = rig([door('rep', [tcp(1000), tcp(1000), tcp(2000)])]);
  r.knock('10.0.0.2', 1000);
  r.knock('10.0.0.2', 1000);
  r.knock('10.0.0.2', 2000);
  assert.deepEqual(r.opened(), ['open rep 10.0.0.2']);
});

test('TCP/UDP mix: protocol is part of each knock', () => {
  const r = rig([door('mix', [udp(2222), tcp(3333), udp(4444)])]);
  r.knock('10.0.0.2', 2222); // TCP on a UDP port: not a candidate
  assert.equal(r.m.size, 0);
  r.knock('10.0.0.2', 2222, { proto: IPPROTO_UDP });
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444, { proto: IPPROTO_UDP });
  assert.deepEqual(r.opened(), ['open mix 10.0.0.2']);
});

test('a one-port door opens on its single knock', () => {
  const r = rig([door('one', [udp(9999)])]);
  r.knock('10.0.0.2', 9999, { proto: IPPROTO_UDP });
  assert.deepEqual(r.opened(), ['open one 10.0.0.2']);
  assert.equal(r.m.size, 0);
});

test('knocks to an address that is not the server are ignored', () => {
  const r = rig();
  for (const p of [3333, 4444, 5555]) r.knock('10.0.0.2', p, { dst: '10.0.0.99' });
  assert.deepEqual(r.opened(), []);
  assert.equal(r.m.stats.candidates, 0);
});

test('a door with a Target only listens to that address', () => {
  const t = door('t', [tcp(1000), tcp(2000)], { target: '10.0.0.50' });
  const r = rig([t]);
  r.knock('10.0.0.2', 1000);
  r.knock('10.0.0.2', 2000);
  assert.deepEqual(r.opened(), [], 'the interface address is not the target');
  r.knock('10.0.0.2', 1000, { dst: '10.0.0.50' });
  r.knock('10.0.0.2', 2000, { dst: '10.0.0.50' });
  assert.deepEqual(r.opened(), ['open t 10.0.0.2']);
});

test('IPv6 knockers are matched and reported as family 6', () => {
  const r = rig();
  for (const p of [3333, 4444, 5555]) r.knock('fd00::2', p);
  const open = r.events.find((e) => e.type === 'open');
  assert.ok(open && open.type === 'open' && open.family === 6 && open.src === 'fd00::2');
});

test('memory is bounded; a spoofed stage-1 flood cannot evict a knocker past stage 1', () => {
  const r = rig([openSSH], 1000);
  r.knock('192.0.2.7', 3333);
  r.knock('192.0.2.7', 4444); // legitimate knocker now at stage 2
  for (let i = 0; i < 50_000; i++) {
    r.knock(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 3333);
    r.advance(0.01);
  }
  assert.ok(r.m.size <= 1000, `size ${r.m.size}`);
  assert.equal(r.m.stats.evicted, 50_000 + 1 - 1000);
  r.knock('192.0.2.7', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 192.0.2.7']);
});

test('when only advanced attempts are left, the oldest of them goes first', () => {
  const r = rig([openSSH], 2);
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.advance(1);
  r.knock('10.0.0.3', 3333);
  r.knock('10.0.0.3', 4444);
  r.advance(1);
  r.knock('10.0.0.4', 3333); // table full of advanced: evicts 10.0.0.2
  assert.equal(r.m.stats.evicted, 1);
  assert.equal(r.m.size, 2, '10.0.0.3 (advanced) and 10.0.0.4 (stage 1) are left');
  r.knock('10.0.0.3', 5555);
  r.knock('10.0.0.2', 5555); // evicted: its last knock starts nothing
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.3']);
});

test('setDoors keeps attempts for doors that still exist with the same sequence', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.3', 6666);
  r.m.setDoors([{ ...openSSH, seqTimeoutMs: 20_000 }, door('closeSSH', [tcp(6000), tcp(7000)], { action: 'close' })]);
  assert.equal(r.m.size, 1, 'closeSSH changed its sequence: its attempt is dropped');
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('per-packet work does not grow with the number of sources (counted, not timed)', () => {
  const r = rig([openSSH], 200_000);
  // Count the element reads of the table's hash index and row lists: the probes and walks a packet costs.
  const table = (r.m as unknown as { table: Record<string, unknown> }).table;
  let reads = 0;
  for (const field of ['index', 'next', 'prev', 'start']) {
    const arr = table[field] as Int32Array | Float64Array;
    table[field] = new Proxy(arr, {
      get: (target, key) => {
        if (typeof key === 'string' && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57) reads++;
        return Reflect.get(target, key) as unknown;
      },
      set: (target, key, value) => Reflect.set(target, key, value),
    });
  }
  const workFor = (n: number, base: number): number => {
    const before = reads;
    for (let i = 0; i < n; i++)
      r.knock(`10.${((base + i) >> 16) & 255}.${((base + i) >> 8) & 255}.${(base + i) & 255}`, 3333);
    return (reads - before) / n;
  };
  const small = workFor(20_000, 0); // 0 .. 20,000 sources held
  workFor(120_000, 20_000);
  const big = workFor(20_000, 140_000); // 140,000 .. 160,000 sources held
  assert.equal(r.m.size, 160_000, 'every source is held: nothing evicted, nothing expired');
  assert.ok(small > 0, 'the count sees the table');
  // A fuller hash table probes a little more (linear probing, load under 1/2); a scan would cost 8x.
  assert.ok(big < small * 2, `reads per packet grew from ${small.toFixed(2)} to ${big.toFixed(2)}`);
});

test('admitStage1: refused stage-1 events are never made; later stages, timeouts past stage 1 and opens still are', () => {
  const asked: string[] = [];
  const events: MatchEvent[] = [];
  const m = new Matcher([openSSH, door('one', [tcp(9999)])], (e) => events.push(e), {
    admitStage1: (type) => {
      asked.push(type);
      return false;
    },
  });
  m.setLocalAddresses([SERVER]);
  const k = (src: string, dport: number): Knock => ({
    family: 4,
    proto: IPPROTO_TCP,
    dport,
    flags: TH_SYN,
    src,
    dst: SERVER,
  });
  m.handle(k('10.0.0.2', 3333), 0);
  m.handle(k('10.0.0.3', 3333), 0);
  m.handle(k('10.0.0.2', 4444), 1);
  m.handle(k('10.0.0.2', 5555), 2);
  m.handle(k('10.0.0.4', 9999), 3); // one-port door: its stage-1 line is refused, the open is not
  m.sweep(60_000); // 10.0.0.3 times out at stage 1: refused
  assert.deepEqual(asked, ['stage', 'stage', 'stage', 'timeout']);
  assert.deepEqual(
    events.map((e) => `${e.type} ${e.src}${'stage' in e ? ` ${e.stage}` : ''}`),
    ['stage 10.0.0.2 2', 'stage 10.0.0.2 3', 'open 10.0.0.2', 'open 10.0.0.4'],
  );
  assert.equal(m.stats.timeouts, 1, 'refused events are still counted');
  assert.equal(m.size, 0);
});

test('the per-packet path reads addresses in place: handlePacket agrees with handle for IPv4 and IPv6', () => {
  const events: MatchEvent[] = [];
  const m = new Matcher([openSSH], (e) => events.push(e));
  m.setLocalAddresses([SERVER, 'fd00::1']);
  const buf = Buffer.alloc(64);
  const feed = (family: 4 | 6, src: number[], dst: number[], dport: number): void => {
    buf.set(src, 0);
    buf.set(dst, 32);
    buf.writeUInt32BE(dport * 7, 48 + 4); // the TCP header's sequence number
    m.handlePacket(
      {
        family,
        proto: IPPROTO_TCP,
        sport: 40000 + dport,
        dport,
        flags: TH_SYN,
        buf,
        srcOff: 0,
        dstOff: 32,
        l4Off: 48,
        l4End: buf.length,
      },
      0,
    );
  };
  const v6src = [0xfd, 0, ...new Array<number>(13).fill(0), 2];
  const v6dst = [0xfd, 0, ...new Array<number>(13).fill(0), 1];
  for (const p of [3333, 4444, 5555]) feed(4, [192, 0, 2, 200], [10, 0, 0, 1], p);
  for (const p of [3333, 4444, 5555]) feed(6, v6src, v6dst, p);
  feed(4, [192, 0, 2, 201], [10, 0, 0, 9], 3333); // not addressed to us
  assert.deepEqual(
    events.filter((e) => e.type === 'open').map((e) => `${e.src} ${e.type === 'open' ? e.family : ''}`),
    ['192.0.2.200 4', 'fd00::2 6'],
  );
  assert.equal(m.stats.ignored, 1);
});

// ---------------------------------------------------------------------------
// Retransmitted SYNs (a client whose SYN the zone drops silently tries again)
// ---------------------------------------------------------------------------

/** A knocker whose every connect is retransmitted: the same source port and sequence number, again. */
const withRetransmits = (
  r: ReturnType<typeof rig>,
  src: string,
  ports: { port: number; proto?: 6 | 17 }[],
  copies = 2,
): void => {
  ports.forEach(({ port, proto }, i) => {
    const sport = 41000 + i;
    const seq = (0xf0000000 + i * 0x01010101) >>> 0; // high bit set: the unsigned/signed spelling must not matter
    r.knock(src, port, { sport, seq, ...(proto !== undefined ? { proto } : {}) });
    if (proto === IPPROTO_UDP) return; // a UDP knock is one datagram
    for (let c = 0; c < copies; c++) {
      r.advance(1000);
      r.knock(src, port, { sport, seq: seq | 0 });
    }
  });
};

test('a retransmitted SYN is not a new knock: it neither spoils nor advances, at any stage', () => {
  const r = rig();
  withRetransmits(r, '10.0.0.2', [{ port: 3333 }, { port: 4444 }, { port: 5555 }]);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.equal(r.events.filter((e) => e.type === 'spoiled').length, 0);
  assert.deepEqual(
    r.events.filter((e) => e.type === 'stage').map((e) => (e.type === 'stage' ? e.stage : 0)),
    [1, 2, 3],
    'one stage per port, none per retransmission',
  );
  // The retransmissions of the last SYN come after the attempt completed: nothing is in flight, and 5555 starts nothing.
  assert.equal(r.m.stats.retransmits, 4);
  assert.equal(r.m.size, 0);
});

test('retransmissions in a TCP/UDP sequence, and in a sequence that repeats a port', () => {
  const r = rig([
    door('mix', [udp(2222), tcp(3333), udp(4444), tcp(5555)]),
    door('rep', [tcp(1000), tcp(1000), tcp(2000)]),
  ]);
  withRetransmits(r, '10.0.0.2', [
    { port: 2222, proto: IPPROTO_UDP },
    { port: 3333 },
    { port: 4444, proto: IPPROTO_UDP },
    { port: 5555 },
  ]);
  assert.deepEqual(r.opened(), ['open mix 10.0.0.2']);
  // rep: the retransmission of the first 1000 is not the second knock on 1000
  withRetransmits(r, '10.0.0.3', [{ port: 1000 }, { port: 2000 }], 1);
  assert.deepEqual(r.opened(), ['open mix 10.0.0.2'], 'rep needs two connects to 1000');
  withRetransmits(r, '10.0.0.4', [{ port: 1000 }, { port: 1000 }, { port: 2000 }], 1);
  assert.deepEqual(r.opened(), ['open mix 10.0.0.2', 'open rep 10.0.0.4']);
});

test('a second connection to the port just passed is a repeat, not a wrong knock: another sequence number, another source port, a UDP repeat', () => {
  for (const variant of ['seq', 'sport'] as const) {
    const r = rig();
    r.knock('10.0.0.2', 3333, { sport: 41000, seq: 1 });
    r.knock('10.0.0.2', 4444, { sport: 41001, seq: 2 });
    r.knock('10.0.0.2', 4444, variant === 'seq' ? { sport: 41001, seq: 3 } : { sport: 41002, seq: 2 });
    r.knock('10.0.0.2', 5555);
    assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2'], variant);
    assert.equal(r.events.filter((e) => e.type === 'spoiled').length, 0, variant);
    assert.equal(r.m.stats.repeats, 1, variant);
    assert.equal(r.m.stats.retransmits, 0, variant);
  }
  const r = rig([door('u', [udp(2222), udp(3333)])]);
  r.knock('10.0.0.2', 2222, { proto: IPPROTO_UDP, sport: 41000 });
  r.knock('10.0.0.2', 2222, { proto: IPPROTO_UDP, sport: 41000 }); // same datagram again: UDP has no sequence number
  r.knock('10.0.0.2', 3333, { proto: IPPROTO_UDP, sport: 41000 });
  assert.deepEqual(r.opened(), ['open u 10.0.0.2']);
  assert.deepEqual(
    r.events.filter((e) => e.type === 'stage').map((e) => (e.type === 'stage' ? e.stage : 0)),
    [1, 2],
    'the repeat neither spoiled nor restarted the attempt',
  );
  assert.equal(r.m.stats.repeats, 1);
  assert.equal(r.m.stats.retransmits, 0);
});

test('strict_repeats: a second connection to the port just passed spoils, as in knockd 0.8; retransmissions are still ignored', () => {
  for (const variant of ['seq', 'sport'] as const) {
    const r = rig([door('strict', [tcp(3333), tcp(4444), tcp(5555)], { strictRepeats: true })]);
    r.knock('10.0.0.2', 3333, { sport: 41000, seq: 1 });
    r.knock('10.0.0.2', 4444, { sport: 41001, seq: 2 });
    r.knock('10.0.0.2', 4444, { sport: 41001, seq: 2 }); // a retransmission: ignored
    r.knock('10.0.0.2', 4444, variant === 'seq' ? { sport: 41001, seq: 3 } : { sport: 41002, seq: 2 });
    r.knock('10.0.0.2', 5555);
    assert.deepEqual(r.opened(), [], variant);
    assert.ok(
      r.events.some((e) => e.type === 'spoiled' && e.stage === 2 && e.port === 4444),
      variant,
    );
    assert.equal(r.m.stats.retransmits, 1, variant);
    assert.equal(r.m.stats.repeats, 0, variant);
  }
  const r = rig([door('u', [udp(2222), udp(3333)], { strictRepeats: true })]);
  r.knock('10.0.0.2', 2222, { proto: IPPROTO_UDP, sport: 41000 });
  r.knock('10.0.0.2', 2222, { proto: IPPROTO_UDP, sport: 41000 });
  r.knock('10.0.0.2', 3333, { proto: IPPROTO_UDP, sport: 41000 });
  assert.deepEqual(r.opened(), ['open u 10.0.0.2'], 'the repeat spoiled and restarted the door on its first port');
  assert.ok(r.events.some((e) => e.type === 'spoiled'));
});

test('a client that knocks twice: a 3-port door fed two connections per port opens, one stage per port', () => {
  const r = rig();
  for (const p of [3333, 4444, 5555]) {
    r.knock('10.0.0.2', p);
    r.advance(5);
    r.knock('10.0.0.2', p);
    r.advance(100);
  }
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.deepEqual(
    r.events.filter((e) => e.type === 'stage').map((e) => (e.type === 'stage' ? e.stage : 0)),
    [1, 2, 3],
  );
  // The second SYN to 5555 comes after the attempt completed: nothing is in flight, and 5555 starts nothing.
  assert.equal(r.m.stats.repeats, 2);
  assert.equal(r.m.size, 0);
  // The same with IPv6 and three connections per port.
  for (const p of [3333, 4444, 5555]) for (let c = 0; c < 3; c++) r.knock('fd00::2', p);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2', 'open openSSH fd00::2']);
});

test('a sequence that repeats a port on purpose: the repeat is its next step and advances', () => {
  const r = rig([door('rep', [tcp(1000), tcp(1000), tcp(2000)]), door('rep3', [udp(7), udp(7), udp(7)])]);
  for (const p of [1000, 1000, 2000]) r.knock('10.0.0.2', p);
  assert.deepEqual(r.opened(), ['open rep 10.0.0.2']);
  // knocked twice: 1000 x4, 2000 x2
  for (const p of [1000, 1000, 1000, 1000, 2000, 2000]) r.knock('10.0.0.3', p);
  assert.deepEqual(r.opened(), ['open rep 10.0.0.2', 'open rep 10.0.0.3']);
  // one knock on 1000 is not two
  for (const p of [1000, 2000]) r.knock('10.0.0.4', p);
  assert.equal(r.opened().length, 2);
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.src === '10.0.0.4'));
  // UDP, three times the same port
  for (let c = 0; c < 3; c++) r.knock('10.0.0.5', 7, { proto: IPPROTO_UDP });
  assert.deepEqual(r.opened().slice(2), ['open rep3 10.0.0.5']);
});

test('only the port that last advanced is a repeat: an earlier port, or the same port over the other protocol, spoils', () => {
  const r = rig([
    door('d', [tcp(3333), tcp(4444), tcp(5555)]),
    door('m', [udp(6000), tcp(7000), tcp(7001)]),
    door('n', [tcp(6000), tcp(9)]),
  ]);
  r.knock('10.0.0.2', 3333);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 3333); // earlier port: wrong knock (and it restarts d)
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.door.name === 'd' && e.port === 3333));
  r.knock('10.0.0.3', 6000, { proto: IPPROTO_UDP });
  r.knock('10.0.0.3', 6000); // TCP 6000: not the UDP port just passed
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.door.name === 'm'));
  assert.equal(r.m.stats.repeats, 0);
});

test('a repeat does not restart the clock: seq_timeout runs from the first knock', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333);
  r.advance(14_000);
  r.knock('10.0.0.2', 3333);
  r.advance(1_000);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), []);
  assert.ok(r.events.some((e) => e.type === 'timeout' && e.stage === 1));
});

test('a TCP packet that matches the last knock only in ports and sequence number but came over UDP is not a retransmission', () => {
  const r = rig([door('m', [udp(3333), tcp(4444), tcp(5555)]), door('n', [tcp(3333), tcp(6666)])]);
  r.knock('10.0.0.2', 3333, { proto: IPPROTO_UDP, sport: 41000, seq: 0 }); // m at stage 1 (last packet UDP)
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 0 }); // TCP to 3333: spoils m (wants tcp/4444), starts n
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.door.name === 'm'));
  assert.equal(r.m.stats.retransmits, 0);
});

test('only the packet that last advanced counts: a late copy of an earlier knock spoils', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 });
  r.knock('10.0.0.2', 4444, { sport: 41001, seq: 20 });
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 }); // stage 2 wants 5555: spoils, restarts on 3333
  assert.deepEqual(r.opened(), []);
  assert.ok(r.events.some((e) => e.type === 'spoiled' && e.stage === 2 && e.port === 3333));
  r.knock('10.0.0.2', 4444); // the restarted attempt goes on
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
});

test('a retransmission does not restart the clock: seq_timeout runs from the first knock', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 });
  r.advance(14_000);
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 });
  r.advance(1_000);
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), []);
  assert.ok(r.events.some((e) => e.type === 'timeout' && e.stage === 1));
});

test('a retransmission with the wrong flags is still ignored as wrong flags', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 });
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10, flags: TH_ACK }); // not a candidate for a syn door
  r.knock('10.0.0.2', 4444);
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.equal(r.m.stats.retransmits, 0);
});

test('setDoors keeps the last advancing packet of a kept attempt', () => {
  const r = rig();
  r.knock('10.0.0.2', 3333, { sport: 41000, seq: 10 });
  r.knock('10.0.0.2', 4444, { sport: 41001, seq: 20 });
  r.m.setDoors([closeSSH, openSSH]); // openSSH moves to index 1
  r.knock('10.0.0.2', 4444, { sport: 41001, seq: 20 });
  r.knock('10.0.0.2', 5555);
  assert.deepEqual(r.opened(), ['open openSSH 10.0.0.2']);
  assert.equal(r.m.stats.retransmits, 1);
});

test('handlePacket: retransmissions read from the Packet (sport, seq) are ignored', () => {
  const events: MatchEvent[] = [];
  const m = new Matcher([openSSH], (e) => events.push(e));
  m.setLocalAddresses([SERVER]);
  const buf = Buffer.alloc(28);
  buf.set([192, 0, 2, 200, 10, 0, 0, 1]);
  for (const [i, dport] of [3333, 4444, 5555].entries()) {
    buf.writeUInt32BE(0x80000000 + i, 8 + 4); // TCP header at 8: its sequence number
    for (let c = 0; c < 3; c++)
      m.handlePacket(
        {
          family: 4,
          proto: IPPROTO_TCP,
          sport: 50000 + i,
          dport,
          flags: TH_SYN,
          buf,
          srcOff: 0,
          dstOff: 4,
          l4Off: 8,
          l4End: buf.length,
        },
        i * 3000 + c * 1000,
      );
  }
  assert.deepEqual(
    events.filter((e) => e.type === 'open' || e.type === 'spoiled').map((e) => e.type),
    ['open'],
  );
  assert.equal(m.stats.retransmits, 4);
});
