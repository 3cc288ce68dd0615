/**
 * Issue 18.5: shell-command doors never depend on firewalld. With firewalld
 * away at start the daemon starts, runs the overdue stop commands the previous
 * run left in commands.json, serves its shell doors, and says (STATUS=) that
 * its firewalld doors wait for firewalld; READY=1 comes once firewalld
 * answers and those doors are armed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, clearRichRules, debianKnock, sshRule, startKnockd, withLab, type RunningDaemon } from './helpers';
import { NotifySocket } from './notify-socket';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

test('18.5 firewalld down at start: overdue stop commands run, shell doors work, firewalld doors wait; READY=1 once firewalld answers', async () => {
  const stateDir = join(lab.tmpDir, 'fw-down-state');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const stopFile = join(lab.tmpDir, 'fw-down-overdue-stop');
  const startFile = join(lab.tmpDir, 'fw-down-shell-start');
  await writeFile(
    join(stateDir, 'commands.json'),
    JSON.stringify({
      version: 2,
      stops: [
        {
          door: 'shellDoor',
          src: lab.clientAddr,
          family: 4,
          stopCommand: `touch ${stopFile}`,
          dueAt: Date.now() - 60_000,
        },
      ],
    }),
    { mode: 0o600 },
  );
  const conf =
    `[shellDoor]\n sequence = 7001,7002,7003\n seq_timeout = 10\n start_command = touch ${startFile}\n stop_command = touch ${stopFile}\n` +
    `[openDoor]\n sequence = 3333,4444,5555\n seq_timeout = 10\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = ssh\n cmd_timeout = 60\n`;
  const sock = new NotifySocket(join(lab.tmpDir, 'notify-fw-down.sock'));
  let d: RunningDaemon | undefined;
  await lab.stopFirewalld();
  try {
    await sock.bound(lab);
    d = await startKnockd(lab, conf, [], { stateDir, env: { NOTIFY_SOCKET: sock.path } });
    await lab.waitFor(async () => existsSync(stopFile), SLOW, 50);
    await debianKnock(lab, lab.serverAddr, [7001, 7002, 7003]);
    await lab.waitFor(async () => existsSync(startFile), SLOW, 50);
    await lab.waitFor(async () => sock.find(/STATUS=.*waiting for firewalld for door\(s\) openDoor/), SLOW);
    assert.equal(sock.find(/READY=1/), undefined, 'not ready while a door waits for firewalld');
    await lab.startFirewalld();
    await lab.waitFor(async () => sock.find(/READY=1/), SLOW, 100);
    const armed = await d.waitForLog(/firewalld answers: door\(s\) openDoor armed/, SLOW);
    // Its ports join the capture filter, which is locked in each capture process: a new one starts.
    await d.waitForLog(/listening on \S+ (again|\()/, SLOW, armed.search(/firewalld answers/));
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
  } finally {
    sock.close();
    await d?.stop();
    await lab.startFirewalld().catch(() => undefined);
    await clearRichRules(lab);
  }
});
