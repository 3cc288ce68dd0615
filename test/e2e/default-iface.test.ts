/**
 * No `-i` and no `Interface`: knockd's default is eth0, which a RHEL server
 * with `eno1` does not have. Then the daemon listens on the interface of the
 * default route, and says so; where eth0 exists it keeps eth0, as knockd does.
 * The lab's server namespace has no eth0; the test gives it a default route
 * through its veth (inside the namespace only).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { SLOW, DEFAULT_CONF, debianKnock, sshRule, startKnockd, type RunningDaemon, withLab } from './helpers';

describe('no -i, no Interface', () => {
  let lab!: Lab;
  withLab({ ipv6: false }, (l) => (lab = l));
  let d: RunningDaemon | undefined;
  after(async () => {
    await d?.stop();
  });

  test('no eth0: the daemon listens on the default-route interface, says so, and a knock opens the door', async () => {
    const links = await lab.execIn('server', ['ip', '-o', 'link', 'show']);
    assert.doesNotMatch(links.stdout, /: eth0[:@]/, 'the server namespace has no eth0');
    const r = await lab.execIn('server', ['ip', 'route', 'add', 'default', 'via', lab.clientAddr, 'dev', lab.serverIf]);
    assert.equal(r.code, 0, r.stderr);
    d = await startKnockd(lab, DEFAULT_CONF(), [], { iface: null, waitFor: /starting up, listening on/ });
    const log = await d.log();
    assert.match(log, new RegExp(`no -i given and no eth0: listening on ${lab.serverIf}, the default-route interface`));
    assert.match(log, new RegExp(`starting up, listening on ${lab.serverIf} `));
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => (await lab.richRules()).includes(sshRule(lab.clientAddr)), SLOW, 50);
    assert.match((await lab.sshBanner()) ?? '', /^SSH-2\.0-OpenSSH/);
    assert.equal(await d.stop(), 0);
    d = undefined;
  });

  test('with an eth0 it keeps eth0, as knockd does (even with the default route elsewhere)', async () => {
    // (no dummy module in every CI kernel: a veth pair, both ends in the server namespace)
    const r = await lab.execIn('server', ['ip', '-batch', '-'], {
      input:
        'link add eth0 type veth peer name eth0peer\naddr add 192.0.2.1/24 dev eth0\nlink set eth0peer up\nlink set eth0 up\n',
    });
    assert.equal(r.code, 0, r.stderr);
    d = await startKnockd(lab, DEFAULT_CONF(), [], { iface: null, waitFor: /starting up, listening on/ });
    const log = await d.log();
    assert.match(log, /starting up, listening on eth0 /);
    assert.doesNotMatch(log, /default-route interface/);
  });
});
