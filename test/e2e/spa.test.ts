/**
 * Issue 14: fwknop Single Packet Authorization, spoken by the real fwknop
 * client (Debian's fwknop-client 2.6.10), against a real firewalld in the lab.
 * An accepted packet opens one rich rule per requested port with a
 * firewalld-owned timeout; everything fwknopd refuses opens nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import {
  SLOW,
  DEFAULT_CONF,
  KNOCKD_BIN,
  debianKnock,
  sleep,
  sshRule,
  startKnockd,
  type RunningDaemon,
  withLab,
  withDaemon as sharedWithDaemon,
} from './helpers';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

// Test keys (made with `fwknop --key-gen`; used only in this lab).
const KEY = 'JfqyVlEWbEMy9Oj72I0zuDVJcXyrtkLMpSYMZRsC/HY=';
const HMAC = 'wPkUeYdpzH8gzq/U4xywnkvtBGtTyKuqjYQ2ss21Bcj3zdyEnnq8hqTGm5W11bMWpLcc+ZE2wayC+/ydGIzU6w==';
const OTHER_HMAC = 'c2VjcmV0LWJ1dC13cm9uZy1obWFjLWtleS1mb3ItdGhpcy1kb29yLW9mLW91cnMtMTIzNDU2Nzg5MA==';
const OTHER_KEY = 'dGhpcy1pcy1ub3QtdGhlLWRvb3Itcy1rZXktMDEyMzQ=';

const CONF = (extra = ''): string => `[spaSSH]
    spa_port            = 62201
    spa_key_base64      = ${KEY}
    spa_hmac_key_base64 = ${HMAC}
    spa_open_ports      = tcp/22,udp/53
    spa_max_timeout     = 300
    cmd_timeout         = 30
    firewalld_zone      = public
${extra}`;

const portRule = (src: string, port: number, proto = 'tcp'): string =>
  `rule family="ipv4" source address="${src}" port port="${port}" protocol="${proto}" accept`;

let home = '';
/** The real client, in the client namespace, with no rc file and a private HOME. */
async function fwknop(args: string[], keys: { key?: string; hmac?: string } = {}): Promise<void> {
  home ||= await mkdtemp(join(lab.tmpDir, 'fwknop-home-'));
  const argv = [
    'env',
    `HOME=${home}`,
    'fwknop',
    '--no-rc-file',
    '--no-save-args',
    '-D',
    lab.serverAddr,
    '--key-base64-rijndael',
    keys.key ?? KEY,
    '--key-base64-hmac',
    keys.hmac ?? HMAC,
    '--use-hmac',
    ...args,
  ];
  const r = await lab.execIn('client', argv, { timeoutMs: 10_000 });
  assert.equal(r.code, 0, `fwknop ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

/** Send exactly these bytes as one datagram to the SPA port. */
async function sendRaw(payload: Buffer): Promise<void> {
  const py =
    'import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],62201))';
  const r = await lab.execIn('client', ['python3', '-c', py, payload.toString('hex'), lab.serverAddr]);
  assert.equal(r.code, 0, r.stderr);
}

const withDaemon = (conf: string, fn: (d: RunningDaemon) => Promise<void>, stateDir?: string): Promise<void> =>
  sharedWithDaemon(lab, conf, fn, stateDir ? { stateDir } : {});

const rulesNow = (): Promise<string[]> => lab.richRules();
const waitRules = (want: string[], ms = 3000): Promise<string[]> =>
  lab.waitFor(
    async () => {
      const r = await rulesNow();
      return want.every((w) => r.includes(w)) ? r : undefined;
    },
    ms,
    25,
  );

test('SPA: fwknop -A tcp/22 -a IP opens exactly that port for IP with cmd_timeout, SSH connects; the SPA port stays closed', async () => {
  await withDaemon(CONF(), async (d) => {
    await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr]);
    assert.deepEqual(await waitRules([portRule(lab.clientAddr, 22)]), [portRule(lab.clientAddr, 22)]);
    await d.waitForLog(/spaSSH: SPA packet accepted .*open tcp\/22 for [\d.]+, 30s/, SLOW);
    await d.waitForLog(
      /spaSSH: firewalld: added in zone public: rule family="ipv4" source address="[\d.]+" port port="22" protocol="tcp" accept \(timeout 30s\)/,
      SLOW,
    );
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-OpenSSH/);
    assert.equal(
      await lab.firewallCmd('--zone=public', '--query-port=62201/udp').catch((e: Error) => e.message),
      'firewall-cmd --zone=public --query-port=62201/udp failed (exit 1): no',
      'stealthy: the SPA port is not open',
    );
    assert.doesNotMatch(await d.log(), new RegExp(KEY.slice(0, 12).replace(/[+/]/g, '.')), 'keys never in the log');
  });
});

test('SPA: -s (allow the source), multi-port -A tcp/22,udp/53, -f N within spa_max_timeout', async () => {
  await withDaemon(CONF(), async (d) => {
    await fwknop(['-A', 'tcp/22,udp/53', '-s', '-f', '60']);
    await waitRules([portRule(lab.clientAddr, 22), portRule(lab.clientAddr, 53, 'udp')]);
    await d.waitForLog(/open tcp\/22,udp\/53 for [\d.]+, 60s/, SLOW);
  });
  await withDaemon(CONF(), async (d) => {
    await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr, '-f', '9999']);
    await waitRules([portRule(lab.clientAddr, 22)]);
    await d.waitForLog(/open tcp\/22 for [\d.]+, 300s/, SLOW);
  });
});

test('SPA: what fwknopd refuses opens nothing (keys, port, source, NAT, command, stale, future)', async () => {
  const conf =
    CONF() +
    `[spaOffice]\n    spa_port = 62202\n    spa_key_base64 = ${KEY}\n    spa_hmac_key_base64 = ${HMAC}\n    spa_source = 192.0.2.0/24\n`;
  await withDaemon(conf, async (d) => {
    const refused = async (
      args: string[],
      code: RegExp | null,
      keys: { key?: string; hmac?: string } = {},
    ): Promise<void> => {
      const from = (await d.log()).length;
      await fwknop(args, keys);
      if (code) await d.waitForLog(code, SLOW, from);
      else await sleep(700);
      assert.deepEqual(await rulesNow(), [], `${args.join(' ')} opened something`);
    };
    await refused(['-A', 'tcp/22', '-a', lab.clientAddr], null, { hmac: OTHER_HMAC }); // wrong HMAC key: dropped in the capture process
    await refused(['-A', 'tcp/22', '-a', lab.clientAddr], /SPA packet refused \(decrypt\)/, { key: OTHER_KEY });
    await refused(['-A', 'tcp/23', '-a', lab.clientAddr], /SPA packet refused \(port\)/);
    await refused(['-A', 'tcp/22', '-a', lab.clientAddr, '-p', '62202'], /spaOffice: SPA packet refused \(source\)/);
    await refused(['-A', 'tcp/22', '-a', lab.clientAddr, '-N', '10.0.0.5:22'], /SPA packet refused \(nat\)/);
    await refused(['-a', lab.clientAddr, '--server-cmd', 'touch /tmp/pwned'], /SPA packet refused \(command\)/);
    await refused(
      ['-A', 'tcp/22', '-a', lab.clientAddr, '--time-offset-minus', '300s'],
      /SPA packet refused \(stale\)/,
    );
    await refused(
      ['-A', 'tcp/22', '-a', lab.clientAddr, '--time-offset-plus', '300s'],
      /SPA packet refused \(future\)/,
    );
    const cap = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
    assert.equal(cap.code, 0, cap.stderr);
  });
});

test("SPA: the HMAC digest type must be the door's (spa_hmac_digest_type): a sha512 client at a sha256 door opens nothing, and the other way round", async () => {
  const conf =
    CONF() +
    `[spa512]\n    spa_port = 62203\n    spa_key_base64 = ${KEY}\n    spa_hmac_key_base64 = ${HMAC}\n    spa_hmac_digest_type = sha512\n`;
  await withDaemon(conf, async () => {
    await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr, '--hmac-digest-type', 'sha512']); // to spaSSH (sha256)
    await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr, '-p', '62203']); // sha256 to spa512
    await sleep(700);
    assert.deepEqual(await rulesNow(), [], 'a digest type mismatch opened something');
    await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr, '-p', '62203', '--hmac-digest-type', 'sha512']);
    await waitRules([portRule(lab.clientAddr, 22)]);
  });
});

test('SPA: a packet sent again, disguised, or after a restart never opens anything', async () => {
  const stateDir = join(lab.tmpDir, 'spa-replay');
  const file = join(home || (home = await mkdtemp(join(lab.tmpDir, 'fwknop-home-'))), 'spa.pkt');
  await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr, '-T', '-B', file]);
  const packet = Buffer.from((await readFile(file, 'utf8')).trim(), 'latin1');
  const rule = portRule(lab.clientAddr, 22);
  const removeByHand = async (): Promise<void> => {
    await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`);
  };
  await withDaemon(
    CONF(),
    async (d) => {
      await sendRaw(packet);
      await waitRules([rule]);
      await removeByHand();
      await d.waitForLog(/rule removed outside knockd/, SLOW);
      let from = (await d.log()).length;
      await sendRaw(packet);
      await d.waitForLog(/SPA packet refused \(replay\)/, SLOW, from);
      for (const disguised of [
        Buffer.concat([packet, Buffer.from('\n')]),
        Buffer.concat([Buffer.from('U2FsdGVkX1'), packet]),
        Buffer.concat([packet, Buffer.from('==')]),
      ]) {
        await sendRaw(disguised);
      }
      await sleep(700);
      assert.deepEqual(await rulesNow(), []);
      from = (await d.log()).length;
      assert.doesNotMatch((await d.log()).slice(from), /accepted/);
    },
    stateDir,
  );
  await withDaemon(
    CONF(),
    async (d) => {
      await d.waitForLog(/SPA replay cache: 1 packet digest\(s\) from the previous run/, SLOW);
      await sendRaw(packet);
      await d.waitForLog(/SPA packet refused \(replay\)/, SLOW);
      assert.deepEqual(await rulesNow(), []);
    },
    stateDir,
  );
});

test('SPA: knockd --check validates the keys and prints the matching client command line and ~/.fwknoprc stanza', async () => {
  const d = await startKnockd(lab, CONF());
  try {
    const r = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--check', '-c', d.confFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /spaSSH: fwknop -A tcp\/22,udp\/53 .*--use-hmac/);
    assert.match(r.stdout, /\[spaSSH\]/);
    assert.match(r.stdout, /SPA_SERVER_PORT\s+62201/);
    assert.ok(!r.stdout.includes(KEY) && !r.stdout.includes(HMAC), 'keys are not printed');
    const bad = join(lab.tmpDir, 'badkey.conf');
    await lab.execIn('server', [
      'sh',
      '-c',
      `sed 's#^    spa_key_base64 .*#    spa_key_base64 = not*base64#' ${d.confFile} > ${bad}`,
    ]);
    const b = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--check', '-c', bad]);
    assert.equal(b.code, 1);
    assert.match(b.stdout, /badkey\.conf:3: error: \[spaSSH\] spa_key_base64/);
  } finally {
    await d.stop();
  }
});

test('SPA: a random-source UDP flood of SPA-sized datagrams at the SPA port starves no SPA packet and no knock', async () => {
  // DEFAULT_CONF's knock doors beside the SPA door: both must keep working while the flood runs.
  await withDaemon(DEFAULT_CONF() + CONF(), async (d) => {
    // As in flood.test.ts: on two or more cores the generator (and the kernel receive path it drives) gets core 0.
    const pin = availableParallelism() >= 2 ? ['taskset', '-c', '0'] : [];
    const flood = lab.spawnIn('client', [
      ...pin,
      'timeout',
      '-s',
      'INT',
      '60',
      'hping3',
      '--udp',
      '--flood',
      '--rand-source',
      '-d',
      '204',
      '-p',
      '62201',
      lab.serverAddr,
    ]);
    try {
      await sleep(2000);
      for (let i = 0; i < 3; i++) {
        const rule = portRule(lab.clientAddr, 22);
        await fwknop(['-A', 'tcp/22', '-a', lab.clientAddr]);
        await waitRules([rule], SLOW);
        await lab.firewallCmd('--zone=public', `--remove-rich-rule=${rule}`);
        await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
        await waitRules([sshRule(lab.clientAddr)], SLOW);
        await lab.firewallCmd('--zone=public', `--remove-rich-rule=${sshRule(lab.clientAddr)}`);
      }
      assert.equal(flood.exitCode, null, 'hping3 was still flooding at the end');
    } finally {
      flood.kill('SIGINT');
    }
    assert.doesNotMatch(
      await d.log(),
      /SPA packet refused/,
      'the flood never reached the daemon: its datagrams fail the HMAC in the capture process',
    );
  });
});
