/**
 * Helpers the lab benchmarks share (latency.ts, flood.ts, idle.ts, spa-lab.ts,
 * run.ts): the bench lab, the result files, statistics and tables.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { requireRoot, startLab, type Lab, type LabNs } from '../test/lab/lab';
import { REPO } from '../test/e2e/helpers';

export const RESULTS_DIR = join(REPO, 'bench', 'results');
export const OPEN_PORTS = [3333, 4444, 5555];
export const CLOSE_PORTS = [6666, 7777, 8888];
export const DEBIAN_KNOCKD = '/usr/sbin/knockd';
/** Interval between the probe's connect attempts to port 22. */
export const POLL_MS = 2;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function writeResult(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  p90: number;
  mean: number;
}

/** Median (mean of the two middle values for even n), min, max, p90 (nearest rank), mean; null for no samples. */
export function summarize(xs: readonly number[]): Summary | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const mid = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    n,
    median: r(mid),
    min: r(s[0]),
    max: r(s[n - 1]),
    p90: r(s[Math.min(n - 1, Math.ceil(0.9 * n) - 1)]),
    mean: r(s.reduce((a, b) => a + b, 0) / n),
  };
}

/** "12.3 (9.8–20.1)": median and min–max with a unit-free number format. */
export function fmtSummary(s: Summary | null, digits = 1): string {
  if (!s) return 'n/a';
  const f = (x: number): string => x.toFixed(digits);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

export function fmtRatio(x: number | null, digits = 1): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(digits)}×`;
}

export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}

/** Plain-text table; the first row is the header. */
export function renderTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  const line = (row: string[]): string =>
    row
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join('\n');
}

export const nsName = (lab: Lab, ns: LabNs): string => (ns === 'server' ? lab.serverNs : lab.clientNs);

/** The one-connection-at-a-time stand-in for sshd on :22 (sshd's fork per connection would load the machine). */
const LISTENER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('error', () => {}); s.destroy(); });
srv.on('error', (e) => { console.error(e); process.exit(1); });
srv.listen({ port: 22, host: '0.0.0.0', backlog: 4096 }, () => console.log('listening'));
`;

/**
 * A lab for benchmarks: IPv4 only, a trivial TCP listener on :22 instead of
 * sshd, ICMP rate limits lifted in the server namespace (per-namespace
 * sysctls) so every rejected probe gets its admin-prohibited answer at once,
 * and a check that neither namespace has a default route (so nothing, not
 * even a reply to a spoofed flood source, can leave the lab).
 */
export async function startBenchLab(): Promise<Lab> {
  requireRoot();
  const lab = await startLab({ ipv6: false, sshd: false });
  try {
    for (const ns of ['server', 'client'] as const) {
      for (const fam of ['-4', '-6']) {
        const r = await lab.execIn(ns, ['ip', fam, 'route', 'show', 'default']);
        if (r.code !== 0 || r.stdout.trim() !== '')
          throw new Error(`bench lab: unexpected default route in the ${ns} namespace: ${r.stdout}${r.stderr}`);
      }
    }
    const r = await lab.execIn('server', [
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.icmp_ratelimit=0',
      'net.ipv4.icmp_msgs_per_sec=10000000',
      'net.ipv4.icmp_msgs_burst=10000000',
    ]);
    if (r.code !== 0) throw new Error(`sysctl in the server namespace failed: ${r.stderr}`);
    lab.spawnIn('server', [process.execPath, '-e', LISTENER], { logFile: join(lab.tmpDir, 'listener22.log') });
    await lab.waitFor(
      async () => (await lab.execIn('server', ['nc', '-z', '-w1', '127.0.0.1', '22'], { timeoutMs: 3000 })).code === 0,
      10_000,
      50,
    );
  } catch (e) {
    await lab.stop().catch(() => undefined);
    throw e;
  }
  return lab;
}
