/**
 * Micro-benchmark of the SPA decoder (src/spa/handle.ts, one door, one core):
 * packets per second through handleSpaPacket() for
 *  - garbage: random bytes of a typical SPA length (refused by the precheck);
 *  - short:   random bytes under 140 (refused on length alone);
 *  - forged:  valid-looking base64 of a real packet's length with a wrong HMAC
 *             (precheck, replay lookup, one HMAC: the cost of a flood of fakes);
 *  - valid:   distinct authentic packets (HMAC, decryption, parsing, replay
 *             insert, access check: the cost of a legitimate one).
 *
 *   npm run build && node dist/bench/spa.js [--quick]
 *
 * Writes bench/results/spa.json. A script, not a test: nothing here fails on a number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SpaDoor } from '../src/model';
import { handleSpaPacket } from '../src/spa/handle';
import { makeSpaKeys } from '../src/spa/keys';
import { ReplayCache } from '../src/spa/replay';
import { Rng } from '../test/support/rng';
import { b64, encodeSpa, spaPlaintext } from '../test/support/spa-encode';

const quick = process.argv.includes('--quick');
const N = quick ? 5_000 : 100_000;
const ROUNDS = quick ? 1 : 5;
const rng = new Rng(0x5ba);
const now = Date.now();
const door: SpaDoor = {
  name: 'spaSSH',
  port: 62201,
  keys: makeSpaKeys(rng.bytes(32), rng.bytes(64), 'sha256'),
  sources: [],
  openPorts: [{ proto: 'tcp', port: 22 }],
  maxTimeout: 300,
  defaultTimeout: 30,
  requireSourceAddress: false,
};
const ALPHABET = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'];

function validPacket(i: number): Buffer {
  const rand = String(1e15 + i).padStart(16, '1');
  const pt = spaPlaintext([rand, b64('root'), String(Math.floor(now / 1000)), '3.0.0', '1', b64('10.99.0.2,tcp/22')]);
  return Buffer.from(encodeSpa(pt, door.keys, rng.bytes(8)), 'latin1');
}

const sets: Record<string, () => Buffer[]> = {
  garbage: () => Array.from({ length: N }, () => rng.bytes(204)),
  short: () => Array.from({ length: N }, () => rng.bytes(rng.int(0, 139))),
  forged: () =>
    Array.from({ length: N }, () =>
      Buffer.from(Array.from({ length: 204 }, () => rng.pick(ALPHABET)).join(''), 'latin1'),
    ),
  valid: () => Array.from({ length: N }, (_, i) => validPacket(i)),
};

interface Row {
  case: string;
  packets: number;
  ppsMedian: number;
  usPerPacket: number;
  verdicts: Record<string, number>;
}

const rows: Row[] = [];
for (const [name, make] of Object.entries(sets)) {
  const rates: number[] = [];
  const verdicts: Record<string, number> = {};
  for (let r = 0; r < ROUNDS; r++) {
    const packets = make();
    const cache = new ReplayCache({ maxEntries: N + 1 });
    const t0 = process.hrtime.bigint();
    for (const p of packets) {
      const v = handleSpaPacket(p, '198.51.100.7', [door], cache, now);
      if (r === 0) {
        const k = v.ok ? 'granted' : v.code;
        verdicts[k] = (verdicts[k] ?? 0) + 1;
      }
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(packets.length / s);
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)];
  rows.push({
    case: name,
    packets: N,
    ppsMedian: Math.round(median),
    usPerPacket: Number((1e6 / median).toFixed(2)),
    verdicts,
  });
}

const outDir = join(__dirname, '..', '..', 'bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'spa.json'),
  `${JSON.stringify({ node: process.version, quick, rounds: ROUNDS, rows }, null, 2)}\n`,
);
process.stdout.write(`SPA decode+verify, one door, one core (${ROUNDS} rounds of ${N}, median)\n`);
for (const r of rows)
  process.stdout.write(
    `${r.case.padEnd(8)} ${String(r.ppsMedian).padStart(10)} packets/s  ${String(r.usPerPacket).padStart(7)} µs/packet  ${JSON.stringify(r.verdicts)}\n`,
  );
