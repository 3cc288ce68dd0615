/**
 * Issue 17.6: the daemon tells a broken firewalld (its state is not RUNNING,
 * or a zone it had answers INVALID_ZONE: what a failed `--reload` on 2.5
 * leaves) from a config problem, says what to do, and reports when it works
 * again. A reload that finished (Reloaded) may remove a zone on purpose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { FirewalldError } from '../../src/firewalld/client';
import { FirewalldHealth, type HealthFirewall } from '../../src/firewalld/health';
import { Clock, flush } from './fake-firewalld';

const invalidZone = (z: string): FirewalldError =>
  new FirewalldError(`INVALID_ZONE: ${z}`, 'org.fedoraproject.FirewallD1.Exception', 'INVALID_ZONE');

class Fw extends EventEmitter implements HealthFirewall {
  state = 'RUNNING';
  zones = ['public', 'work'];
  broken = false;
  async firewalldState(): Promise<string> {
    return this.state;
  }
  async getServices(zone: string): Promise<string[]> {
    if (this.broken || !this.zones.includes(zone)) throw invalidZone(zone);
    return [];
  }
  async getZones(): Promise<string[]> {
    return this.zones;
  }
}

function rig() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({}, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  const fw = new Fw();
  const clock = new Clock();
  const h = new FirewalldHealth(fw, log, { setTimer: clock.setTimer, pollMs: 10_000 });
  h.knowZones(fw.zones);
  const events: string[] = [];
  h.on('broken', (why) => events.push(`broken: ${why}`));
  h.on('healed', () => events.push('healed'));
  return { fw, clock, h, lines, events };
}

test('17.6: INVALID_ZONE for a zone that existed is firewalld broken, said with what to do; another zone is the config', async () => {
  const { fw, h, lines, events } = rig();
  assert.equal(h.judge('nosuch', invalidZone('nosuch')), false);
  assert.equal(h.broken, '');
  fw.broken = true;
  assert.equal(h.judge('public', invalidZone('public')), true);
  await flush();
  assert.match(h.broken, /zone "public"/);
  const err = lines.find((l) => l.level >= 50)!.msg;
  assert.match(err, /firewalld itself is broken/);
  assert.match(err, /not knockd\.conf: run "systemctl restart firewalld"/);
  fw.broken = false;
  fw.emit('up'); // restarted
  await flush();
  assert.equal(h.broken, '');
  assert.deepEqual(
    events.map((e) => e.split(':')[0]),
    ['broken', 'healed'],
  );
});

test("17.6: firewalld's state FAILED is noticed by the periodic look, without a knock", async () => {
  const { fw, clock, h } = rig();
  h.start();
  fw.state = 'FAILED';
  await clock.advance(10_000);
  assert.match(h.broken, /state is FAILED/);
  fw.state = 'RUNNING';
  await clock.advance(10_000);
  assert.equal(h.broken, '');
  h.stop();
});

test('17.6: a zone removed by a reload that finished (Reloaded) is the config, not a broken firewalld', async () => {
  const { fw, clock, h } = rig();
  h.start();
  fw.zones = ['public'];
  fw.emit('reloaded');
  await flush();
  await clock.advance(10_000);
  assert.equal(h.broken, '');
  assert.equal(h.judge('work', invalidZone('work')), false);
  h.stop();
});
