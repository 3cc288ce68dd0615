/**
 * Issue 18.12: a persisted stop command or grant is taken only if a door of
 * the current configuration could have made it. A commands.json planted with
 * `touch /tmp/pwned` is never run (the real stop command next to it is); a
 * grants.json entry for a rule no door makes is neither removed (it is in
 * firewalld: knockd cannot prove it added it) nor added.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { DEFAULT_CONF, sleep, withDaemon, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

const PWNED = '/tmp/pwned';

test('18.12: planted commands.json and grants.json entries no door could have made: not run, not removed, not added', async () => {
  const stateDir = join(lab.tmpDir, 'origin-state');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  rmSync(PWNED, { force: true });
  const src = lab.clientAddr;
  const legit = join(lab.tmpDir, 'origin-legit-stop');
  const conf = `${DEFAULT_CONF()}\n[shellDoor]\n    sequence = 7001,7002,7003\n    start_command = /usr/bin/true %IP%\n    stop_command = touch ${legit}.%IP%\n`;
  const due = Date.now() - 1000;
  await writeFile(
    join(stateDir, 'commands.json'),
    JSON.stringify({
      version: 2,
      stops: [
        { door: 'shellDoor', src, family: 4, stopCommand: `touch ${PWNED}`, dueAt: due },
        { door: 'openSSH', src, family: 4, stopCommand: `touch ${PWNED}`, dueAt: due },
        { door: 'shellDoor', src, family: 4, stopCommand: `touch ${legit}.${src}`, dueAt: due },
      ],
    }),
    { mode: 0o600 },
  );
  // The admin's rule, which no door of the config makes; and one that is not in firewalld.
  const admins = `rule family="ipv4" source address="${src}" port port="23" protocol="tcp" accept`;
  const absent = `rule family="ipv4" source address="${src}" port port="24" protocol="tcp" accept`;
  await lab.firewallCmd('--zone=public', `--add-rich-rule=${admins}`);
  const entry = (rule: string, state: string) => ({
    zone: 'public',
    rule,
    src,
    door: 'openSSH',
    timeout: 300,
    expiresAt: Date.now() + 290_000,
    state,
    firewalld: 'another firewalld',
    expiry: 'knockd',
  });
  await writeFile(
    join(stateDir, 'grants.json'),
    JSON.stringify({ version: 3, grants: [entry(admins, 'closing'), entry(absent, 'opening')] }),
    { mode: 0o600 },
  );
  try {
    await withDaemon(
      lab,
      conf,
      async (d) => {
        await d.waitForLog(/stop command\(s\) pending from the previous run/, 5000);
        await sleep(1500); // time for a command, a removal or an add, had one been started
        assert.equal(existsSync(PWNED), false, `${PWNED} was created: a planted stop command ran`);
        // The real stop command next to the planted ones runs: the file was read and acted on.
        await lab.waitFor(() => Promise.resolve(existsSync(`${legit}.${src}`)), 5000, 50);
        const rules = await lab.richRules();
        assert.ok(rules.includes(admins), `the admin's rule was removed: ${rules.join(' | ')}`);
        assert.ok(!rules.includes(absent), `a rule no door makes was added: ${rules.join(' | ')}`);
        const log = await d.waitForLog(/grants\.json: entry 2 refused/, 5000);
        assert.match(
          log,
          /commands\.json: entry 1 refused: no door of the current configuration could have made it \(door shellDoor's stop command for \S+ is not this command\)/,
        );
        assert.match(log, /commands\.json: entry 2 refused: .*door openSSH runs no shell commands/);
        assert.match(
          log,
          /grants\.json: entry 1 refused: no door of the current configuration could have made it \(door openSSH makes no such rule .* left as it is in firewalld, neither added nor removed/,
        );
        assert.doesNotMatch(await d.log(), /port="2[34]".*(added|removed|closing)/);
        const files = await readdir(stateDir);
        assert.ok(
          files.some((f) => f.startsWith('commands.json.corrupt-')),
          files.join(' '),
        );
      },
      { stateDir },
    );
  } finally {
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${admins}`).catch(() => undefined);
    rmSync(PWNED, { force: true });
  }
});
