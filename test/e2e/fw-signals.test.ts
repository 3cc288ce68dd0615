/**
 * Issue 17.5, end to end: an unprivileged local user (uid 65534) on the lab's
 * system bus forges the signals the daemon listens to — NameOwnerChanged
 * (claiming firewalld changed owner), RichRuleRemoved and Reloaded — sent
 * straight to the daemon's unique names (the stock bus policy lets anyone
 * send a unicast signal) and broadcast. Nothing the daemon holds changes:
 * the grant stays in --status and in firewalld, the close knock still
 * removes it, and the real firewalld's signals are still believed afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import type { ExecResult, Lab } from '../lab/lab';
import { DEFAULT_CONF, KNOCKD_BIN, debianKnock, sshRule, withDaemon, withLab, type RunningDaemon } from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

const OPEN = [3333, 4444, 5555];
const CLOSE = [6666, 7777, 8888];
const FW = 'org.fedoraproject.FirewallD1';

/** Run argv as uid/gid 65534 on the lab bus (lab.execAsNobody where the lab has it). */
async function asNobody(argv: string[]): Promise<ExecResult> {
  const l = lab as Lab & { execAsNobody?: (a: string[]) => Promise<ExecResult> };
  if (typeof l.execAsNobody === 'function') return l.execAsNobody(argv);
  await chmod(lab.tmpDir, 0o711); // the bus socket lives there; nobody may reach it, as on a real system bus
  return lab.execIn('server', [
    'setpriv',
    '--reuid',
    '65534',
    '--regid',
    '65534',
    '--clear-groups',
    'env',
    `DBUS_SYSTEM_BUS_ADDRESS=${lab.busAddress}`,
    ...argv,
  ]);
}

async function busCall(method: string, ...args: string[]): Promise<string> {
  const r = await lab.execIn('server', [
    'dbus-send',
    '--system',
    '--print-reply',
    '--dest=org.freedesktop.DBus',
    '/org/freedesktop/DBus',
    `org.freedesktop.DBus.${method}`,
    ...args,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The daemon's unique names on the bus (its firewalld client and its status service), found by pid. */
async function daemonNames(d: RunningDaemon): Promise<string[]> {
  const names = [...(await busCall('ListNames')).matchAll(/string "(:[0-9.]+)"/g)].map((m) => m[1]);
  const out: string[] = [];
  for (const n of names) {
    const pid = /uint32 (\d+)/.exec(await busCall('GetConnectionUnixProcessID', `string:${n}`).catch(() => ''));
    if (pid && Number(pid[1]) === d.proc.pid) out.push(n);
  }
  return out;
}

async function firewalldOwner(): Promise<string> {
  return /string "(:[0-9.]+)"/.exec(await busCall('GetNameOwner', `string:${FW}`))![1];
}

async function status(): Promise<string> {
  const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function forge(dest: string | undefined, path: string, member: string, args: string[]): Promise<void> {
  const r = await asNobody([
    'dbus-send',
    '--system',
    '--type=signal',
    ...(dest ? [`--dest=${dest}`] : []),
    path,
    member,
    ...args,
  ]);
  assert.equal(r.code, 0, `uid 65534 could not send the signal: ${r.stderr}`);
}

test('17.5: forged NameOwnerChanged, RichRuleRemoved and Reloaded from uid 65534 change nothing the daemon holds', async () => {
  const rule = sshRule(lab.clientAddr);
  await withDaemon(lab, DEFAULT_CONF({ cmdTimeout: 300 }), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), 3000, 25);
    assert.match(await status(), /grants held \(1\)/);
    const names = await daemonNames(d);
    assert.ok(names.length >= 1, 'the daemon is on the bus');
    const owner = await firewalldOwner();
    const fake = names[0]; // any unique name but firewalld's
    for (const dest of [...names, undefined]) {
      // "firewalld went away" and "firewalld is back as me"
      await forge(dest, '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameOwnerChanged', [
        `string:${FW}`,
        `string:${owner}`,
        'string:',
      ]);
      await forge(dest, '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameOwnerChanged', [
        `string:${FW}`,
        'string:',
        `string:${fake}`,
      ]);
      // "the admin removed your rule", in firewalld's canonical text and in the caller's words
      await forge(dest, '/org/fedoraproject/FirewallD1', `${FW}.zone.RichRuleRemoved`, [
        'string:public',
        `string:${rule}`,
      ]);
      await forge(dest, '/org/fedoraproject/FirewallD1', `${FW}.zone.RichRuleRemoved`, [
        'string:',
        `string:rule family=ipv4 source address=${lab.clientAddr} service name=ssh accept`,
      ]);
      await forge(dest, '/org/fedoraproject/FirewallD1', `${FW}.Reloaded`, []);
    }
    await d.waitForLog(/ignored \d+ D-Bus signal\(s\) about firewalld from a sender that may not send them/, 3000);
    await new Promise((r) => setTimeout(r, 1000));
    const s = await status();
    assert.match(s, /grants held \(1\)/, 'the grant is still held');
    assert.match(s, new RegExp(`${lab.clientAddr.replace(/\./g, '\\.')}\\s+openSSH`));
    const ignored = Number(/signals ignored \(wrong sender\) (\d+)/.exec(s)?.[1] ?? 0);
    assert.ok(ignored >= 4, `forged signals counted (${ignored})`);
    assert.deepEqual(await lab.richRules(), [rule], 'still in firewalld');
    const log = await d.log();
    assert.doesNotMatch(log, /not added by knockd|removed outside knockd|firewalld is back|firewalld reloaded/);

    // The real firewalld is still believed: its Reloaded puts the grant back...
    const from = (await d.log()).length;
    await lab.firewallCmd('--reload');
    await lab.firewallCmd('--zone=public', `--change-interface=${lab.serverIf}`);
    await d.waitForLog(/firewalld reloaded: restoring 1 rule/, 5000, from);
    await lab.waitFor(async () => (await lab.richRules()).includes(rule), 5000, 50);
    // ...and the close knock still removes it.
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await d.waitForLog(/closeSSH: firewalld: removed from zone public/, 3000, from);
    assert.deepEqual(await lab.richRules(), []);
    assert.match(await status(), /grants held \(0\)/);
  });
});
