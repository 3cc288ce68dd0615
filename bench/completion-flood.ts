/**
 * A sniffed sequence completed from many spoofed sources (issue 18.7): 5 000
 * sources complete the open sequence in 10 s (bench/spoof.ts, raw packets
 * from the client namespace), our daemon with its default bounds. Then a real
 * client knocks (Debian's knock).
 *
 *   node dist/bench/completion-flood.js            # 5 000 sources in 10 s
 *   node dist/bench/completion-flood.js --quick    # 1 000 sources in 2 s
 *
 * Reports: rich rules created from spoofed sources, completions refused by
 * the bound (--status), time from the real client's last knock to its rule in
 * firewalld, `firewall-cmd --zone=public --list-rich-rules` answer time right
 * after the flood and idle, and the RSS of the daemon and its capture process
 * (before, peak during, after).
 */
import { execFileSync } from 'node:child_process';
import type { Lab } from '../test/lab/lab';
import { KNOCKD_BIN } from '../test/e2e/helpers';
import { OPEN_PORTS, sleep, startBenchLab, startOurs, writeResult } from './latency';
import { spoofCompletions } from './spoof';

export interface CompletionFloodResult {
  sources: number;
  seconds: number;
  packetsSent: number;
  spoofedRules: number;
  completionsRefused: number | null;
  realClientOpenMs: number | null;
  firewallCmdMsIdle: number;
  firewallCmdMsAfter: number;
  rssMB: { before: number; peak: number; after: number };
}

const rssMB = (pids: number[]): number =>
  pids.reduce((sum, pid) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }));
      return sum + (m ? Number(m[1]) / 1024 : 0);
    } catch {
      return sum;
    }
  }, 0);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function runCompletionFloodBench(opts: {
  quick: boolean;
  lab: Lab;
  log: (s: string) => void;
}): Promise<CompletionFloodResult> {
  const { lab, log } = opts;
  const sources = opts.quick ? 1000 : 5000;
  const seconds = opts.quick ? 2 : 10;
  const d = await startOurs(lab);
  try {
    const pids = (): number[] => d.sample().pids;
    const listRules = (): Promise<string> => lab.firewallCmd('--zone=public', '--list-rich-rules');
    const firewallCmdMsIdle = await timed(listRules);
    const before = rssMB(pids());
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMB(pids()))), 200);
    log(`completion flood: ${sources} spoofed sources complete the open sequence in ${seconds} s`);
    let packetsSent: number;
    try {
      packetsSent = await spoofCompletions(lab, { count: sources, seconds, ports: OPEN_PORTS });
      await sleep(1000);
    } finally {
      clearInterval(sampler);
    }
    const firewallCmdMsAfter = await timed(listRules);
    const spoofedRules = (await lab.richRules()).filter((r) => r.includes('source address="10.1')).length;
    const t0 = Date.now();
    await lab.execIn('client', ['knock', lab.serverAddr, ...OPEN_PORTS.map(String)]);
    let realClientOpenMs: number | null = null;
    while (Date.now() - t0 < 10_000) {
      if ((await lab.richRules()).some((r) => r.includes(`source address="${lab.clientAddr}"`))) {
        realClientOpenMs = Date.now() - t0;
        break;
      }
      await sleep(10);
    }
    const st = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
    const refused = /--max-completions\)\s+\S+, burst \d+\s+(\d+) refused/.exec(st.stdout);
    const after = rssMB(pids());
    const r: CompletionFloodResult = {
      sources,
      seconds,
      packetsSent,
      spoofedRules,
      completionsRefused: refused ? Number(refused[1]) : null,
      realClientOpenMs,
      firewallCmdMsIdle,
      firewallCmdMsAfter,
      rssMB: { before, peak, after },
    };
    log(`completion flood: ${JSON.stringify(r)}`);
    return r;
  } finally {
    await d.stop();
    for (const rule of await lab.richRules()) await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`);
  }
}

export function completionFloodRows(r: CompletionFloodResult): string[][] {
  const mb = (x: number): string => `${x.toFixed(1)} MB`;
  return [
    ['completion flood: spoofed sources', `${r.sources} in ${r.seconds} s`, '', '', '', ''],
    ['  rules from spoofed sources', String(r.spoofedRules), '', '', '', ''],
    ['  completions refused (bound)', String(r.completionsRefused ?? 'n/a'), '', '', '', ''],
    [
      '  real client knock → open',
      r.realClientOpenMs === null ? 'not opened' : `${r.realClientOpenMs} ms`,
      '',
      '',
      '',
      '',
    ],
    [
      '  firewall-cmd --list-rich-rules',
      `${r.firewallCmdMsAfter.toFixed(0)} ms after (idle ${r.firewallCmdMsIdle.toFixed(0)} ms)`,
      '',
      '',
      '',
      '',
    ],
    [
      '  RSS before / peak / after',
      `${mb(r.rssMB.before)} / ${mb(r.rssMB.peak)} / ${mb(r.rssMB.after)}`,
      '',
      '',
      '',
      '',
    ],
  ];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const t0 = Date.now();
  const log = (s: string): void => void process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${s}\n`);
  const lab = await startBenchLab();
  try {
    const r = await runCompletionFloodBench({ quick, lab, log });
    const file = writeResult('completion-flood', {
      ...r,
      quick,
      node: process.version,
      date: new Date().toISOString(),
    });
    process.stdout.write(
      `${completionFloodRows(r)
        .map((row) => row.filter(Boolean).join(': '))
        .join('\n')}\n(${file})\n`,
    );
  } finally {
    await lab.stop();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`completion-flood failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
