/**
 * fail2ban (issue #19, item 7): real log lines, made by the daemon in the lab
 * from real clients (Debian's knock in the wrong order, fwknop with the wrong
 * keys, bad SPA datagrams from a second address), are run through the real
 * `fail2ban-regex` with packaging/fail2ban/knockd.conf: every wrong knock and
 * every bad-SPA line matches, with the client's address as the host, and
 * nothing else does (a correct knock, an accepted SPA packet).
 *
 * On the old code the bad-SPA part fails: such packets left no line at all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { SLOW, DEFAULT_CONF, REPO, debianKnock, startKnockd, type RunningDaemon, withLab } from './helpers';

const FILTER = join(REPO, 'packaging', 'fail2ban', 'knockd.conf');
// Test keys (fwknop --key-gen; only for this lab), and a wrong pair.
const KEY = 'JfqyVlEWbEMy9Oj72I0zuDVJcXyrtkLMpSYMZRsC/HY=';
const HMAC = 'wPkUeYdpzH8gzq/U4xywnkvtBGtTyKuqjYQ2ss21Bcj3zdyEnnq8hqTGm5W11bMWpLcc+ZE2wayC+/ydGIzU6w==';
const OTHER_KEY = 'dGhpcy1pcy1ub3QtdGhlLWRvb3Itcy1rZXktMDEyMzQ=';
const OTHER_HMAC = 'c2VjcmV0LWJ1dC13cm9uZy1obWFjLWtleS1mb3ItdGhpcy1kb29yLW9mLW91cnMtMTIzNDU2Nzg5MA==';

const CONF = `${DEFAULT_CONF()}
[spaSSH]
    spa_port            = 62201
    spa_key_base64      = ${KEY}
    spa_hmac_key_base64 = ${HMAC}
    spa_open_ports      = tcp/22
    cmd_timeout         = 30
    firewalld_zone      = public
`;

describe("fail2ban-regex with packaging/fail2ban/knockd.conf on the daemon's real log", () => {
  let lab!: Lab;
  withLab({ ipv6: false, extraClientAddrs: 1 }, (l) => (lab = l));
  let d: RunningDaemon;
  let home: string;

  before(async () => {
    home = await mkdtemp(join(lab.tmpDir, 'fwknop-home-'));
    d = await startKnockd(lab, CONF);
  });
  after(async () => {
    await d?.stop();
  });

  /** The fwknop client; `--test` only builds the packet and prints it. */
  async function fwknop(keys: { key: string; hmac: string }, extra: string[] = []): Promise<string> {
    const r = await lab.execIn(
      'client',
      [
        'env',
        `HOME=${home}`,
        'fwknop',
        '--no-rc-file',
        '--no-save-args',
        '-D',
        lab.serverAddr,
        '-A',
        'tcp/22',
        '-a',
        lab.clientAddr,
        '--key-base64-rijndael',
        keys.key,
        '--key-base64-hmac',
        keys.hmac,
        '--use-hmac',
        ...extra,
      ],
      { timeoutMs: 10_000 },
    );
    assert.equal(r.code, 0, `fwknop: ${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  async function fail2banRegex(out: string): Promise<string> {
    const r = await lab.execIn('server', ['fail2ban-regex', ...(out ? ['-o', out] : []), d.logFile, FILTER], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, `fail2ban-regex: ${r.stderr}`);
    return r.stdout;
  }

  test('wrong knocks and bad SPA packets match, with the source as host; one bad-SPA line per source and minute', async () => {
    const from = (await d.log()).length;
    // Two wrong knocks: 5555 where 4444 is wanted (stage 1), twice.
    for (let i = 0; i < 2; i++) await debianKnock(lab, lab.serverAddr, [3333, 5555]);
    // A good knock and a good SPA packet: no match.
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await fwknop({ key: KEY, hmac: HMAC });
    await d.waitForLog(/spaSSH: SPA packet accepted/, SLOW, from);
    // Three SPA packets with the wrong keys from the client's address: one line.
    for (let i = 0; i < 3; i++) await fwknop({ key: OTHER_KEY, hmac: OTHER_HMAC });
    // Two from the second address (the packet fwknop builds, sent from there): one line of its own.
    const spa = /Final SPA Data: (\S+)/.exec(await fwknop({ key: OTHER_KEY, hmac: OTHER_HMAC }, ['--test']))?.[1];
    assert.ok(spa, 'fwknop --test printed the packet');
    const other = lab.extraClientAddrs[0];
    for (let i = 0; i < 2; i++) {
      const py =
        'import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[3],0)); s.sendto(sys.argv[1].encode(),(sys.argv[2],62201))';
      const r = await lab.execIn('client', ['python3', '-c', py, spa, lab.serverAddr, other]);
      assert.equal(r.code, 0, r.stderr);
    }
    await d.waitForLog(new RegExp(`${other.replace(/\./g, '\\.')}: spaSSH: bad SPA packet`), SLOW, from);
    await d.waitForLog(/openSSH: OPEN SESAME/, SLOW, from);

    const log = (await d.log()).slice(from);
    const bad = log.split('\n').filter((l) => l.includes('bad SPA packet'));
    assert.equal(bad.length, 2, `one line per source:\n${bad.join('\n')}`);
    assert.equal(log.split('\n').filter((l) => l.includes('wrong knock')).length, 2);

    const ips = (await fail2banRegex('ip')).trim().split('\n').sort();
    assert.deepEqual(ips, [lab.clientAddr, lab.clientAddr, lab.clientAddr, other].sort());
    const summary = await fail2banRegex('');
    assert.match(summary, /Lines: \d+ lines, 0 ignored, 4 matched/);
  });
});
