/**
 * Type=notify: READY=1 only once capture is open and firewalld answered;
 * STATUS= says what the daemon is doing; STOPPING=1 at a stop. A NOTIFY_SOCKET
 * of our own (python3, SO_PASSCRED like systemd's) receives the datagrams
 * with the sender's credentials: each must come from the daemon's own
 * process, which is what NotifyAccess=main in knockd.service accepts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Lab } from '../lab/lab';
import { SLOW, DEFAULT_CONF, debianKnock, startKnockd, withLab } from './helpers';
import { NotifySocket } from './notify-socket';

let lab!: Lab;
withLab({ ipv6: false }, (l) => (lab = l));

test('READY=1 and STATUS= reach NOTIFY_SOCKET; STATUS counts open grants', async () => {
  const sock = new NotifySocket(join(lab.tmpDir, 'notify-1.sock'));
  await sock.bound(lab);
  const d = await startKnockd(lab, DEFAULT_CONF(), [], { env: { NOTIFY_SOCKET: sock.path } });
  try {
    const ready = await lab.waitFor(async () => sock.find(/READY=1/), SLOW);
    assert.match(ready, new RegExp(`STATUS=listening on ${lab.serverIf}, 2 doors, 0 open`));
    assert.ok(ready.startsWith(`pid=${d.proc.pid} `), `sent by the daemon itself (pid ${d.proc.pid}): ${ready}`);
    // The daemon sends with sdnotify.node, which brings no libpcap into it (only its capture process captures).
    const maps = await readFile(`/proc/${d.proc.pid}/maps`, 'utf8');
    assert.match(maps, /sdnotify\.node/);
    assert.doesNotMatch(maps, /libpcap|cap\.node/, 'libpcap or cap.node mapped in the daemon');
    await debianKnock(lab, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(async () => sock.find(/STATUS=listening on .*, 2 doors, 1 open/), SLOW);
    assert.equal(sock.messages.filter((m) => m.includes('READY=1')).length, 1, 'READY=1 is sent once');
    await d.stop();
    const stopping = await lab.waitFor(async () => sock.find(/STOPPING=1/), SLOW);
    assert.match(stopping, /STATUS=stopping/);
    const others = sock.messages.filter((m) => m !== 'BOUND' && !m.startsWith(`pid=${d.proc.pid} `));
    assert.deepEqual(others, [], "every message comes from the daemon's own process");
  } finally {
    await d.stop();
    sock.close();
  }
});

test('a missing interface: the daemon waits (STATUS=waiting for ...), READY=1 comes when it appears', async () => {
  const sock = new NotifySocket(join(lab.tmpDir, 'notify-2.sock'));
  await sock.bound(lab);
  const iface = `kd${lab.id.slice(-6)}`;
  const d = await startKnockd(lab, DEFAULT_CONF(), ['-i', iface], {
    env: { NOTIFY_SOCKET: sock.path },
    waitFor: /waiting for/,
  });
  try {
    await lab.waitFor(async () => sock.find(new RegExp(`STATUS=waiting for ${iface}`)), SLOW);
    assert.equal(sock.find(/READY=1/), undefined, 'not ready without the interface');
    // (no dummy driver in every kernel: a veth pair inside the server namespace will do)
    const ip = async (...a: string[]): Promise<void> => {
      const r = await lab.execIn('server', ['ip', ...a]);
      assert.equal(r.code, 0, `ip ${a.join(' ')}: ${r.stderr}`);
    };
    await ip('link', 'add', iface, 'type', 'veth', 'peer', 'name', `${iface}p`);
    await ip('link', 'set', iface, 'addrgenmode', 'none'); // no IPv6 link-local address
    await ip('link', 'set', `${iface}p`, 'up');
    await ip('link', 'set', iface, 'up');
    await lab.waitFor(async () => sock.find(new RegExp(`STATUS=waiting for an address on ${iface}`)), SLOW);
    assert.equal(sock.find(/READY=1/), undefined, 'not ready without an address');
    await ip('addr', 'add', '10.201.0.1/24', 'dev', iface);
    const ready = await lab.waitFor(async () => sock.find(/READY=1/), SLOW);
    assert.match(ready, new RegExp(`STATUS=listening on ${iface}`));
    assert.match(await d.log(), new RegExp(`interface ${iface} does not exist \\(yet\\); waiting for it`));
  } catch (err) {
    throw new Error(`${(err as Error).message}\nnotify messages: ${sock.messages.join('\n')}\nlog:\n${await d.log()}`);
  } finally {
    await d.stop();
    sock.close();
    await lab.execIn('server', ['ip', 'link', 'del', iface]);
  }
});
