/**
 * Repeats each fault of docs/reliability.md N times in the lab (real
 * firewalld, real packets) and reports how often the daemon recovered and how
 * long it took. A script, not a test: the end-to-end tests assert the
 * behaviour once; this measures it over many runs.
 *
 *   node dist/bench/reliability.js [--runs N]     (default 20; --quick: 3)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, requireRoot, type Lab } from '../test/lab/lab';
import { DEFAULT_CONF, debianKnock, sleep, startKnockd, type RunningDaemon } from '../test/e2e/helpers';

interface Row {
  fault: string;
  measure: string;
  ok: number;
  runs: number;
  ms: number[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

async function clearRules(lab: Lab): Promise<void> {
  for (const r of await lab.richRules()) await lab.firewallCmd('--zone=public', `--remove-rich-rule=${r}`);
}

/** ms until `fn` is true (polling every 10 ms), or undefined after `limitMs`. */
async function timeUntil(fn: () => Promise<boolean>, limitMs: number): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs) {
    if (await fn().catch(() => false)) return Date.now() - t0;
    await sleep(10);
  }
  return undefined;
}

const hasRule = (lab: Lab) => async (): Promise<boolean> => (await lab.richRules()).length > 0;

async function knockOpen(lab: Lab): Promise<boolean> {
  await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
  return (await timeUntil(hasRule(lab), 2000)) !== undefined;
}

/** One trial: `ms` until recovery (undefined: never), a success when within `limitMs`. */
function record(r: Row, ms: number | undefined, limitMs: number): void {
  r.runs++;
  if (ms === undefined) return;
  r.ms.push(ms);
  if (ms <= limitMs) r.ok++;
}

/** ms until a full knock opens the door again, knocking over and over (undefined after 8 s). */
function knockUntilOpen(lab: Lab): Promise<number | undefined> {
  return timeUntil(async () => {
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    return (await timeUntil(hasRule(lab), 150)) !== undefined;
  }, 8000);
}

async function main(): Promise<void> {
  requireRoot();
  const quick = process.argv.includes('--quick');
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : quick ? 3 : 20;
  const lab = await startLab({ ipv6: false });
  const rows: Row[] = [];
  const row = (fault: string, measure: string): Row => {
    const r = { fault, measure, ok: 0, runs: 0, ms: [] };
    rows.push(r);
    return r;
  };
  let d: RunningDaemon | undefined;
  try {
    d = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 600 }));

    const fwRestart = row('firewalld restarts with a grant open', 'grant back after firewalld returns');
    const reload = row('firewall-cmd --reload', 'grant back after the reload');
    const away = row('knock while firewalld is stopped', 'rule in place after firewalld returns');
    const link = row('link down 1 s, up', 'a knock opens again after link up');
    const addr = row('address removed, re-added', 'a knock opens again after the address is back');
    for (let n = 0; n < runs; n++) {
      // firewalld restart
      await clearRules(lab);
      if (await knockOpen(lab)) {
        await lab.stopFirewalld();
        await lab.startFirewalld();
        record(fwRestart, await timeUntil(hasRule(lab), 5000), 2000);
      }
      // reload
      await clearRules(lab);
      if (await knockOpen(lab)) {
        await lab.firewallCmd('--reload');
        record(reload, await timeUntil(hasRule(lab), 5000), 2000);
        await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
        await lab.firewallCmd('--zone=public', '--remove-service=ssh');
      }
      // knock while firewalld away
      await clearRules(lab);
      await lab.stopFirewalld();
      await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
      await sleep(200);
      await lab.startFirewalld();
      record(away, await timeUntil(hasRule(lab), 5000), 2000);
      // link flap
      await clearRules(lab);
      await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf, 'down']);
      await sleep(1000);
      await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf, 'up']);
      record(link, await knockUntilOpen(lab), 5000);
      // address flap
      await clearRules(lab);
      const cidr = `${lab.serverAddr}/${lab.prefix4}`;
      await lab.execIn('server', ['ip', 'addr', 'del', cidr, 'dev', lab.serverIf]);
      await sleep(2500);
      await lab.execIn('server', ['ip', 'addr', 'add', cidr, 'dev', lab.serverIf]);
      record(addr, await knockUntilOpen(lab), 5000);
      process.stderr.write(`run ${n + 1}/${runs}\n`);
    }
    await d.stop();
    d = undefined;

    // SIGKILL: firewalld's own timeout closes the door.
    const kill = row('daemon SIGKILLed, cmd_timeout = 3', 'rule gone after opening (ms)');
    const restart = row('daemon SIGTERM + start', 'grant taken over, exactly one rule');
    const stateDir = join(lab.tmpDir, 'rel-state');
    for (let n = 0; n < Math.min(runs, 10); n++) {
      await clearRules(lab);
      const k = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 3 }));
      if (await knockOpen(lab)) {
        const opened = Date.now();
        await k.stop('SIGKILL');
        const ms = await timeUntil(async () => (await lab.richRules()).length === 0, 6000);
        kill.runs++;
        if (ms !== undefined) {
          const lasted = Date.now() - opened;
          kill.ms.push(lasted);
          if (lasted > 2000 && lasted < 4500) kill.ok++;
        }
      } else await k.stop('SIGKILL');
      await clearRules(lab);
      const a = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 120 }), [], { stateDir });
      const opened = await knockOpen(lab);
      await a.stop();
      const t0 = Date.now();
      const b = await startKnockd(lab, DEFAULT_CONF({ cmdTimeout: 120 }), [], { stateDir });
      restart.runs++;
      try {
        await b.waitForLog(/took over 1 grant\(s\)/, 3000);
        if (opened && (await lab.richRules()).length === 1) {
          restart.ok++;
          restart.ms.push(Date.now() - t0);
        }
      } catch {
        /* counted as a failure */
      }
      await b.stop();
    }
  } finally {
    await d?.stop();
    await lab.stop();
  }

  const outDir = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'reliability.json'),
    `${JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2)}\n`,
  );
  const lines = ['| fault | measured | result | median | min | max |', '| --- | --- | --- | --- | --- | --- |'];
  for (const r of rows) {
    const f = (x: number): string => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : '–');
    lines.push(
      `| ${r.fault} | ${r.measure} | ${r.ok} of ${r.runs} | ${f(median(r.ms))} | ${f(Math.min(...r.ms))} | ${f(Math.max(...r.ms))} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
