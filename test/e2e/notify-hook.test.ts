/**
 * notify_command (issue #19, item 5) in the lab: a firewalld door whose
 * notify_command appends "%EVENT% %DOOR% %IP%" to a file; a real knock opens
 * it, a close knock closes it, a second open expires on its own. Each event
 * lands once, with the knocker's address and the door's name. On the old
 * code the config is refused (unknown directive) and nothing is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { debianKnock, sshRule, withDaemon, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

const has = async (rule: string): Promise<boolean> => (await lab.richRules()).includes(rule);
const events = async (file: string): Promise<string[]> =>
  (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

test('notify_command: open, close and expire land with the right door and address', async () => {
  const file = join(lab.tmpDir, 'notify.log');
  const conf = `[options]
    logfile = /dev/null
[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 5
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 3
    notify_command    = echo "%EVENT% %DOOR% %IP%" >> ${file}
[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = 5
    tcpflags          = syn
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh
`;
  const ip = lab.clientAddr;
  const rule = sshRule(ip);
  await withDaemon(lab, conf, async () => {
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(() => has(rule), 3000, 25);
    await lab.waitFor(async () => (await events(file)).length >= 1, 5000, 25);
    assert.deepEqual(await events(file), [`open openSSH ${ip}`]);

    await debianKnock(lab, lab.serverAddr, [6666, 7777, 8888]);
    await lab.waitFor(async () => !(await has(rule)), 3000, 25);
    await lab.waitFor(async () => (await events(file)).length >= 2, 5000, 25);
    assert.deepEqual(await events(file), [`open openSSH ${ip}`, `close openSSH ${ip}`]);

    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(() => has(rule), 3000, 25);
    await lab.waitFor(async () => !(await has(rule)), 10_000, 50);
    await lab.waitFor(async () => (await events(file)).length >= 4, 5000, 25);
    assert.deepEqual(await events(file), [
      `open openSSH ${ip}`,
      `close openSSH ${ip}`,
      `open openSSH ${ip}`,
      `expire openSSH ${ip}`,
    ]);
  });
});
