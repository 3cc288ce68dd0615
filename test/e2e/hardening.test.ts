/**
 * Issue 18, items 4, 8 and 12, end to end in the lab (real firewalld, real
 * packets): a one-time sequence used once never opens again although the
 * admin edited the file while the daemon ran; a state directory others can
 * write is refused; a capture process that ignores its disconnect is ended,
 * and two capture processes never run side by side beyond a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import {
  SLOW,
  capturePid,
  debianKnock,
  knockUntilOpen,
  REPO,
  sleep,
  sshRule,
  startKnockd,
  DEFAULT_CONF,
  withLab,
} from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

test('18.12: a world-writable state directory is refused at start, naming the directory and the fix', async () => {
  const state = join(lab.tmpDir, 'state-open');
  await mkdir(state, { mode: 0o700 });
  await chmod(state, 0o777);
  await writeFile(join(state, 'commands.json'), '{"version":2,"stops":[\n]}\n');
  await assert.rejects(
    startKnockd(lab, DEFAULT_CONF(), [], { stateDir: state }),
    new RegExp(`state directory ${state}: it is world-writable \\(mode 0777\\).*chmod 0700 ${state}`),
  );
  assert.deepEqual(await lab.richRules(), []);
});

test('18.4: a comment line prepended while the daemon runs: the used sequence is marked and never opens again', async () => {
  const file = join(lab.tmpDir, 'onetime-edit.seq');
  await writeFile(file, '1111,2222,3333\n4444,5555:udp,6666\n');
  const conf = `[oneTime]
  one_time_sequences = ${file}
  seq_timeout        = 10
  tcpflags           = syn
  firewalld_action   = open
  firewalld_zone     = public
  firewalld_service  = ssh
  cmd_timeout        = 60
`;
  const d = await startKnockd(lab, conf);
  try {
    await d.waitForLog(/oneTime: one-time sequence from .* line 1/);
    // The admin edits the file after the daemon read it.
    await writeFile(file, `# added by the admin\n${await readFile(file, 'utf8')}`);
    await debianKnock(lab, lab.serverAddr, [1111, 2222, 3333]);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`);
    await d.waitForLog(/oneTime: next one-time sequence from .* line 3/, SLOW);
    assert.equal(await readFile(file, 'utf8'), '# added by the admin\n#111,2222,3333\n4444,5555:udp,6666\n');
    // The used sequence again, then the next one: packets are matched in order, so a second opening by the
    // used sequence would be logged before the next one's.
    await debianKnock(lab, lab.serverAddr, [1111, 2222, 3333]);
    await debianKnock(lab, lab.serverAddr, ['4444', '5555:udp', '6666']);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, SLOW, 20);
    await d.waitForLog(/no more sequences left in the one time sequences file/, SLOW);
    const opens = (await d.log()).split('\n').filter((l) => l.includes('OPEN SESAME'));
    assert.equal(opens.length, 2, opens.join('\n'));
  } finally {
    await d.stop();
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`).catch(() => '');
  }
});

/** Pids below `pid` whose command line is the capture process's, read from /proc now. */
async function captureProcesses(pid: number): Promise<number[]> {
  const out: number[] = [];
  const walk = async (p: number): Promise<void> => {
    for (const t of await readdir(`/proc/${p}/task`).catch(() => [] as string[])) {
      const kids = (await readFile(`/proc/${p}/task/${t}/children`, 'utf8').catch(() => ''))
        .split(' ')
        .filter(Boolean)
        .map(Number);
      for (const k of kids) {
        if ((await readFile(`/proc/${k}/cmdline`, 'utf8').catch(() => '')).includes('capture/worker.js')) out.push(k);
        await walk(k);
      }
    }
  };
  await walk(pid);
  return out;
}

test("18.8: under the unit's bounding set, a stopped capture process is ended on replacement; never two alive at once", async () => {
  const unit = await readFile(join(REPO, 'packaging/knockd.service'), 'utf8');
  const caps = /^CapabilityBoundingSet=(.*)$/m
    .exec(unit)![1]
    .trim()
    .split(/\s+/)
    .map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  const wrap = ['setpriv', `--bounding-set=-all,${caps.join(',')}`, '--inh-caps=-all', '--no-new-privs'];
  const d = await startKnockd(lab, DEFAULT_CONF(), [], { wrap });
  const old = await capturePid(lab, d);
  // Sample /proc until the end: how many capture processes of this daemon exist at each look.
  const samples: number[][] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(await captureProcesses(d.proc.pid!));
      await sleep(20);
    }
  })();
  let now = 0;
  try {
    process.kill(old, 'SIGSTOP'); // it reads no message and answers no signal but SIGKILL
    const from = (await d.log()).length;
    await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf, 'down']);
    await d
      .waitForLog(/link is down; waiting for it|has no address|capture on \S+ failed/, SLOW, from)
      .catch(async (err) => {
        throw new Error(`${(err as Error).message}\n${(await d.log()).slice(from)}`);
      });
    await lab.execIn('server', ['ip', 'link', 'set', lab.serverIf, 'up']);
    await knockUntilOpen(lab, SLOW);
    now = await capturePid(lab, d, old);
    assert.notEqual(now, old);
    const gone = await lab.waitFor(
      async () => ((await readFile(`/proc/${old}/stat`, 'utf8').catch(() => '')) === '' ? true : undefined),
      SLOW,
      25,
    );
    assert.ok(gone, `the stopped capture process ${old} is gone`);
    assert.doesNotMatch((await d.log()).slice(from), /cannot send SIG/);
  } finally {
    sampling = false;
    await sampler;
    try {
      process.kill(old, 'SIGKILL'); // whatever happened: no stopped process left behind
    } catch {
      /* gone, as it should be */
    }
    await d.stop();
    for (const r of await lab.richRules()) await lab.firewallCmd('--zone=public', `--remove-rich-rule=${r}`);
  }
  // The supervisor starts the next capture process only once the old one has exited: no look sees two.
  const most = Math.max(...samples.map((s) => s.length));
  process.stdout.write(`capture processes: ${samples.length} samples, at most ${most} at once\n`);
  assert.ok(
    samples.some((s) => s.includes(old)) && samples.some((s) => s.includes(now)),
    'sampled the old and the new',
  );
  assert.ok(most <= 1, `two capture processes side by side: ${JSON.stringify(samples.filter((s) => s.length > 1)[0])}`);
});
