/**
 * Issue 18, items 1-3: a reload (SIGHUP) leaves the daemon as a fresh start
 * with the new config would, keeping what it holds; grants of changed or
 * removed doors are closed at the reload; a door without firewalld_zone
 * follows firewalld's default zone, and a close finds the rule in the zone it
 * was added to. Real firewalld, real packets, the real fwknop client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, KNOCKD_BIN, debianKnock, sshRule, startKnockd, withLab, type RunningDaemon } from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

const OPEN = [3333, 4444, 5555];
const CLOSE = [6666, 7777, 8888];
const SHELL = [7001, 7002, 7003];

const shellDoor = (file: string): string =>
  `[shellDoor]\n sequence = ${SHELL.join(',')}\n seq_timeout = 10\n start_command = touch ${file}\n`;

/** An open door and its close door for `service`, in `zone` (none: firewalld's default zone). */
const pair = (service: string, zone?: string): string => {
  const z = zone ? ` firewalld_zone = ${zone}\n` : '';
  return (
    `[openDoor]\n sequence = ${OPEN.join(',')}\n seq_timeout = 10\n firewalld_action = open\n${z} firewalld_service = ${service}\n cmd_timeout = 3600\n` +
    `[closeDoor]\n sequence = ${CLOSE.join(',')}\n seq_timeout = 10\n firewalld_action = close\n${z} firewalld_service = ${service}\n`
  );
};

const svcRule = (service: string): string =>
  `rule family="ipv4" source address="${lab.clientAddr}" service name="${service}" accept`;

/** SIGHUP with `conf`; resolves once the reload is done and, if the capture filter changed (a new capture process), it listens again. */
async function reload(d: RunningDaemon, conf: string): Promise<number> {
  const from = (await d.log()).length;
  await writeFile(d.confFile, conf);
  d.proc.kill('SIGHUP');
  const text = await d.waitForLog(/configuration reloaded|reload refused/, SLOW, from);
  if (/capture restarts|capture process/.test(text) || /spa/i.test(conf))
    await d.waitForLog(/listening on \S+ (again|\()/, SLOW, from);
  return from;
}

const waitRules = (zone: string, want: string[]): Promise<unknown> =>
  lab.waitFor(
    async () => {
      const now = (await lab.richRules(zone)).sort();
      return JSON.stringify(now) === JSON.stringify([...want].sort()) ? now : undefined;
    },
    SLOW,
    50,
  );

async function clearAll(): Promise<void> {
  for (const zone of ['public', 'work'])
    for (const r of await lab.richRules(zone)) await lab.firewallCmd(`--zone=${zone}`, `--remove-rich-rule=${r}`);
}

async function withD(conf: string, fn: (d: RunningDaemon) => Promise<void>, stateDir?: string): Promise<void> {
  const d = await startKnockd(lab, conf, [], stateDir ? { stateDir } : {});
  try {
    await fn(d);
  } finally {
    await d.stop();
    await clearAll();
    await lab.firewallCmd('--set-default-zone=public');
  }
}

test('18.1 a SIGHUP that adds the first firewalld door works as a fresh start would: the knock opens the rule', async () => {
  const touched = join(lab.tmpDir, 'r1-touched');
  await withD(shellDoor(touched), async (d) => {
    await reload(d, shellDoor(touched) + pair('ssh', 'public'));
    await debianKnock(lab, lab.serverAddr, OPEN);
    await d.waitForLog(/openDoor: OPEN SESAME/, SLOW);
    await waitRules('public', [sshRule(lab.clientAddr)]);
    // The shell door still works beside it.
    await debianKnock(lab, lab.serverAddr, SHELL);
    await lab.waitFor(async () => existsSync(touched), SLOW);
  });
});

// The real fwknop client, as spa.test.ts runs it.
const KEY = 'JfqyVlEWbEMy9Oj72I0zuDVJcXyrtkLMpSYMZRsC/HY=';
const HMAC = 'wPkUeYdpzH8gzq/U4xywnkvtBGtTyKuqjYQ2ss21Bcj3zdyEnnq8hqTGm5W11bMWpLcc+ZE2wayC+/ydGIzU6w==';
const SPA = `[spaSSH]\n spa_port = 62201\n spa_key_base64 = ${KEY}\n spa_hmac_key_base64 = ${HMAC}\n spa_open_ports = tcp/22\n spa_max_timeout = 300\n cmd_timeout = 30\n firewalld_zone = public\n`;

test('18.1 a SIGHUP that adds the first SPA door loads the replay cache: a packet accepted before a restart never opens again', async () => {
  const stateDir = join(lab.tmpDir, 'r1-spa-state');
  const home = await mkdtemp(join(lab.tmpDir, 'fwknop-home-'));
  const file = join(home, 'spa.pkt');
  const fw = await lab.execIn('client', [
    'env',
    `HOME=${home}`,
    'fwknop',
    '--no-rc-file',
    '--no-save-args',
    '-D',
    lab.serverAddr,
    '--key-base64-rijndael',
    KEY,
    '--key-base64-hmac',
    HMAC,
    '--use-hmac',
    '-A',
    'tcp/22',
    '-a',
    lab.clientAddr,
    '-T',
    '-B',
    file,
  ]);
  assert.equal(fw.code, 0, fw.stderr);
  const packet = (await readFile(file, 'utf8')).trim();
  const send = async (): Promise<void> => {
    const py =
      'import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(sys.argv[1].encode("latin1"),(sys.argv[2],62201))';
    const r = await lab.execIn('client', ['python3', '-c', py, packet, lab.serverAddr]);
    assert.equal(r.code, 0, r.stderr);
  };
  const rule = `rule family="ipv4" source address="${lab.clientAddr}" port port="22" protocol="tcp" accept`;
  await withD(
    SPA,
    async (d) => {
      await send();
      await waitRules('public', [rule]);
      await d.waitForLog(/SPA packet accepted/, SLOW);
    },
    stateDir,
  );
  // Restart with no SPA door, then a SIGHUP adds it back: the replay cache on disk must be read.
  const touched = join(lab.tmpDir, 'r1-spa-touched');
  await withD(
    shellDoor(touched),
    async (d) => {
      const from = await reload(d, shellDoor(touched) + SPA);
      await d.waitForLog(/SPA replay cache: 1 packet digest/, SLOW, from);
      await send();
      await d.waitForLog(/SPA packet refused \(replay\)/, SLOW, from);
      assert.deepEqual(await lab.richRules('public'), []);
    },
    stateDir,
  );
});

test('18.2 a door changed by SIGHUP: its grant is closed at the reload; the new door opens and closes its own rule', async () => {
  await withD(pair('ssh', 'public'), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('public', [svcRule('ssh')]);
    const from = await reload(d, pair('https', 'public'));
    await d.waitForLog(
      /openDoor: door openDoor no longer makes this rule in zone public: closing its grant at reload/,
      SLOW,
      from,
    );
    await waitRules('public', []);
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('public', [svcRule('https')]);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await waitRules('public', []);
  });
});

test('18.2 a door removed by SIGHUP: its grant is closed; an unchanged door keeps its grant, expiring as added', async () => {
  const other = `[other]\n sequence = 4001,4002\n seq_timeout = 10\n firewalld_action = open\n firewalld_zone = public\n firewalld_service = http\n cmd_timeout = 3600\n`;
  await withD(pair('ssh', 'public') + other, async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await debianKnock(lab, lab.serverAddr, [4001, 4002]);
    await waitRules('public', [svcRule('ssh'), svcRule('http')]);
    const from = await reload(d, pair('ssh', 'public'));
    await d.waitForLog(/other: door other is no longer in the config: closing its grant at reload/, SLOW, from);
    await waitRules('public', [svcRule('ssh')]);
    const st = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
    assert.match(st.stdout, /openDoor\s+public\s+(59m|1h00m)/);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await waitRules('public', []);
  });
});

test('18.3 a door without firewalld_zone follows the default zone; its close finds the rule where it was added, SIGHUP or not', async () => {
  await withD(pair('ssh'), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('public', [svcRule('ssh')]);
    await lab.firewallCmd('--set-default-zone=work');
    await d.waitForLog(/default zone changed from public to work/, SLOW);
    await reload(d, pair('ssh'));
    // The close knock removes the rule from public, where it was added.
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await waitRules('public', []);
    // A new open goes to the default zone as it is now, without any SIGHUP.
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('work', [svcRule('ssh')]);
    await lab.firewallCmd('--set-default-zone=public');
    await d.waitForLog(/default zone changed from work to public/, SLOW);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await waitRules('work', []);
    assert.deepEqual(await lab.richRules('public'), []);
  });
});

test('18.3 a refused reload changes nothing: doors, zone and grants as before', async () => {
  await withD(pair('ssh'), async (d) => {
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('public', [svcRule('ssh')]);
    const from = await reload(d, pair('ssh', 'nosuchzone'));
    await d.waitForLog(/reload refused, keeping the running config: .*firewalld has no zone "nosuchzone"/, SLOW, from);
    await debianKnock(lab, lab.serverAddr, CLOSE);
    await waitRules('public', []);
    await debianKnock(lab, lab.serverAddr, OPEN);
    await waitRules('public', [svcRule('ssh')]);
    assert.doesNotMatch((await d.log()).slice(from), /closing its grant at reload/);
  });
});
