/**
 * "The knock worked but ssh times out" (issue #19, item 3): a server name with
 * both an A and an AAAA record; a client that knocks over one family and then
 * connects over the other finds the door shut, because the door opens for the
 * address that knocked. Our `knock -46` sends every hit over both families,
 * so both addresses get a rule.
 *
 * The name is given to the client by a hosts file of the lab's own, bind-mounted
 * over /etc/hosts in a private mount namespace for that one command (the host's
 * /etc/hosts is never touched). Resolution is the real getaddrinfo.
 *
 * On the old code the -46 case fails: `-46` meant "the last of -4/-6", so only
 * the IPv6 address knocked and IPv4 stayed shut.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, DEFAULT_CONF, REPO, sleep, sshRule, startKnockd, type RunningDaemon, withLab } from './helpers';

const KNOCK_BIN = join(REPO, 'bin', 'knock');
const NAME = 'server.knock-lab.test';
const SSH_BANNER = /^SSH-2\.0-OpenSSH/;

describe('knock -46: one knock opens the door for both address families', () => {
  let lab!: Lab;
  withLab({}, (l) => (lab = l));
  let d: RunningDaemon;
  let hosts: string;

  before(async () => {
    hosts = join(lab.tmpDir, 'hosts');
    await writeFile(hosts, `127.0.0.1 localhost\n${lab.serverAddr} ${NAME}\n${lab.serverAddr6} ${NAME}\n`);
    d = await startKnockd(lab, DEFAULT_CONF());
  });
  after(async () => {
    await d?.stop();
  });

  /** Our knock in the client namespace, with the lab's hosts file as /etc/hosts. */
  async function knock(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    const r = await lab.execIn(
      'client',
      [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$0" /etc/hosts && exec "$@"',
        hosts,
        process.execPath,
        KNOCK_BIN,
        ...args,
      ],
      { timeoutMs: 15_000 },
    );
    assert.equal(r.code, 0, `knock ${args.join(' ')}: ${r.stderr}`);
    return r;
  }

  const rules = async (): Promise<string[]> => (await lab.richRules()).sort();

  test('the failure: knocked over IPv4, ssh over IPv6 times out', async () => {
    const out = await knock('-v', '-4', NAME, '3333', '4444', '5555');
    assert.equal(out.stdout, [3333, 4444, 5555].map((p) => `hitting tcp ${lab.serverAddr}:${p}\n`).join(''));
    await lab.waitFor(async () => (await rules()).length === 1, SLOW, 50);
    assert.deepEqual(await rules(), [sshRule(lab.clientAddr)]);
    assert.match((await lab.sshBanner()) ?? '', SSH_BANNER, 'IPv4 is open');
    assert.equal(
      await lab.sshBanner({ host: lab.serverAddr6 }),
      null,
      'IPv6 is not: "the knock worked but ssh times out"',
    );
    await knock('-4', NAME, '6666', '7777', '8888');
    await lab.waitFor(async () => (await rules()).length === 0, SLOW, 50);
  });

  for (const opt of [['-46'], ['--both']]) {
    test(`the fix: knock ${opt.join(' ')} opens both families, and closes both`, async () => {
      const from = (await d.log()).length;
      const out = await knock('-v', ...opt, NAME, '3333', '4444', '5555');
      assert.equal(
        out.stdout,
        [3333, 4444, 5555]
          .map((p) => `hitting tcp ${lab.serverAddr}:${p}\nhitting tcp ${lab.serverAddr6}:${p}\n`)
          .join(''),
      );
      assert.equal(out.stderr, '');
      const want = [sshRule(lab.clientAddr), sshRule(lab.clientAddr6, 6)].sort();
      await lab.waitFor(async () => (await rules()).length === 2, SLOW, 50);
      assert.deepEqual(await rules(), want);
      assert.match((await lab.sshBanner()) ?? '', SSH_BANNER, 'IPv4 open');
      assert.match((await lab.sshBanner({ host: lab.serverAddr6 })) ?? '', SSH_BANNER, 'IPv6 open');
      const log = (await d.log()).slice(from);
      assert.match(log, new RegExp(`${lab.clientAddr.replace(/\./g, '\\.')}: openSSH: OPEN SESAME`));
      assert.match(log, new RegExp(`${lab.clientAddr6}: openSSH: OPEN SESAME`));
      await knock(...opt, NAME, '6666', '7777', '8888');
      await lab.waitFor(async () => (await rules()).length === 0, SLOW, 50);
      await sleep(100);
      assert.equal(await lab.sshBanner({ host: lab.serverAddr6 }), null);
    });
  }

  test('knock -46 to an IPv4 literal: a warning, the knock over IPv4, exit 0', async () => {
    const out = await knock('-46', lab.serverAddr, '3333', '4444', '5555');
    assert.match(out.stderr, /has no IPv6 address .* knocking over IPv4 only/);
    await lab.waitFor(async () => (await rules()).length === 1, SLOW, 50);
    assert.deepEqual(await rules(), [sshRule(lab.clientAddr)]);
    await knock(lab.serverAddr, '6666', '7777', '8888');
    await lab.waitFor(async () => (await rules()).length === 0, SLOW, 50);
  });
});
