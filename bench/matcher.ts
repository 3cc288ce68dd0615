/**
 * In-process throughput of the per-packet path (decode + match) on one core,
 * on pre-built frames: a realistic mix of 90% packets to non-knock ports and
 * 10% knocks from 10 000 sources working through the door's sequence.
 *
 *   node dist/bench/matcher.js            # full run (5 M frames, 5 rounds)
 *   node dist/bench/matcher.js --quick    # a few hundred ms: CI proves it still runs
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Matcher, type DoorSpec } from '../src/matcher/matcher';
import { FramePipeline } from '../src/capture/pipeline';
import { IPPROTO_TCP, TH_SYN } from '../src/decode/types';
import { ipv4Frame } from './frames';

const SERVER = '10.0.0.1';
const SOURCES = 10_000;

export interface MatcherBenchResult {
  frames: number;
  rounds: number;
  ppsMedian: number;
  ppsMin: number;
  ppsMax: number;
  opened: number;
  heapUsedMB: number;
}

export function runMatcherBench(quick: boolean): MatcherBenchResult {
  const door: DoorSpec = {
    name: 'openSSH',
    sequence: [3333, 4444, 5555].map((port) => ({ proto: IPPROTO_TCP, port })),
    seqTimeoutMs: 15_000,
    tcpFlags: { set: TH_SYN, clear: 0 },
    action: 'open',
  };
  let opened = 0;
  const matcher = new Matcher([door], (e) => {
    if (e.type === 'open') opened++;
  });
  matcher.setLocalAddresses([SERVER]);
  const pipeline = new FramePipeline(matcher);

  // Frame set: each source sends its 3 knocks, interleaved with 9 non-knock packets per knock.
  const frames: Buffer[] = [];
  const others = [80, 443, 22, 53, 8080, 25, 993, 5432, 6379];
  for (let i = 0; i < SOURCES; i++) {
    const src = `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}`;
    for (const port of [3333, 4444, 5555]) {
      frames.push(ipv4Frame({ src, dst: SERVER, dport: port }));
      for (const o of others)
        frames.push(ipv4Frame({ src: `198.51.100.${(i + o) & 255}`, dst: SERVER, dport: o, flags: 0x18 }));
    }
  }
  const total = quick ? 200_000 : 5_000_000;
  const rounds = quick ? 1 : 5;
  const pps: number[] = [];
  let now = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let n = 0; n < total; n++) {
      const f = frames[n % frames.length];
      if ((n & 1023) === 0) now += 1; // 1 ms per 1024 frames
      pipeline.onFrame('ETHERNET', f, f.length, now);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    pps.push(total / secs);
  }
  pps.sort((a, b) => a - b);
  return {
    frames: total,
    rounds,
    ppsMedian: Math.round(pps[Math.floor(pps.length / 2)]),
    ppsMin: Math.round(pps[0]),
    ppsMax: Math.round(pps[pps.length - 1]),
    opened,
    heapUsedMB: Math.round(process.memoryUsage().heapUsed / 1e5) / 10,
  };
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const r = runMatcherBench(quick);
  const outDir = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'matcher.json'),
    `${JSON.stringify({ ...r, node: process.version, date: new Date().toISOString() }, null, 2)}\n`,
  );
  const m = (x: number): string => `${(x / 1e6).toFixed(2)} M`;
  process.stdout.write(
    `matcher throughput (decode + match, 90% non-knock, knocks from ${SOURCES} sources, one core)\n` +
      `  frames/round ${r.frames}, rounds ${r.rounds}\n` +
      `  packets/s   median ${m(r.ppsMedian)}   min ${m(r.ppsMin)}   max ${m(r.ppsMax)}   (target >= 2 M)\n` +
      `  doors opened ${r.opened}, heap ${r.heapUsedMB} MB\n`,
  );
}
