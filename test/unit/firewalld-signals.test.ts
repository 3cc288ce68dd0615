/**
 * Issue 17.5: the firewalld client believes a signal by its sender, which the
 * bus sets: NameOwnerChanged only from org.freedesktop.DBus (and then it asks
 * the bus who owns firewalld's name, never the signal's body), firewalld's
 * signals only from that owner. Driven through the client's message handler
 * with a fake bus that answers GetNameOwner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dbus from 'dbus-next';
import { FirewalldClient, FIREWALLD } from '../../src/firewalld/client';
import { CallLimiter } from '../../src/firewalld/limiter';
import { parseVersion, versionPolicy } from '../../src/firewalld/versions';

const DBUS = 'org.freedesktop.DBus';

interface Internals {
  owner: string;
  bus: unknown;
  onMessage(bus: unknown, msg: dbus.Message): void;
}

function rig(owner = ':1.5') {
  const client = new FirewalldClient();
  const inner = client as unknown as Internals;
  const bus = {
    busOwner: owner,
    asked: 0,
    call: async (m: dbus.Message): Promise<dbus.Message> => {
      assert.equal(m.member, 'GetNameOwner');
      bus.asked++;
      if (bus.busOwner === '') throw new dbus.DBusError('org.freedesktop.DBus.Error.NameHasNoOwner', 'no owner');
      return new dbus.Message({
        type: dbus.MessageType.METHOD_RETURN,
        replySerial: '1',
        body: [bus.busOwner],
        signature: 's',
      });
    },
  };
  inner.owner = owner;
  inner.bus = bus;
  const events: string[] = [];
  client.on('up', () => events.push('up'));
  client.on('down', () => events.push('down'));
  client.on('reloaded', () => events.push('reloaded'));
  client.on('ruleRemoved', (z, r) => events.push(`removed ${z}|${r}`));
  const signal = (sender: string, iface: string, member: string, body: unknown[], signature: string): void =>
    inner.onMessage(
      bus,
      new dbus.Message({
        type: dbus.MessageType.SIGNAL,
        sender,
        path: '/x',
        interface: iface,
        member,
        body,
        signature,
      }),
    );
  const noc = (sender: string, oldOwner: string, newOwner: string): void =>
    signal(sender, DBUS, 'NameOwnerChanged', [FIREWALLD, oldOwner, newOwner], 'sss');
  const removed = (sender: string): void =>
    signal(sender, 'org.fedoraproject.FirewallD1.zone', 'RichRuleRemoved', ['public', 'rule x'], 'ss');
  const reloaded = (sender: string): void => signal(sender, 'org.fedoraproject.FirewallD1', 'Reloaded', [], '');
  const settle = () => new Promise((r) => setTimeout(r, 10));
  return { client, inner, bus, events, noc, removed, reloaded, settle };
}

test('17.5: a NameOwnerChanged from anyone but the bus is ignored and counted; firewalld stays who the bus says', async () => {
  const { client, inner, bus, events, noc, removed, reloaded, settle } = rig();
  noc(':1.66', ':1.5', ':1.66'); // uid 65534 claims firewalld moved to itself
  noc(':1.66', ':1.5', '');
  await settle();
  assert.equal(inner.owner, ':1.5');
  assert.deepEqual(events, []);
  assert.equal(bus.asked, 0);
  removed(':1.66');
  reloaded(':1.66');
  assert.deepEqual(events, [], "the attacker's RichRuleRemoved and Reloaded are not believed");
  removed(':1.5');
  reloaded(':1.5');
  assert.deepEqual(events, ['removed public|rule x', 'reloaded'], "the real firewalld's still are");
  assert.equal(client.ignoredSignals, 4);
});

test("17.5: a NameOwnerChanged from the bus only means 'ask again': the owner is GetNameOwner's answer, not the body's", async () => {
  const { inner, bus, events, noc, removed, settle } = rig();
  noc(DBUS, ':1.5', ':1.66'); // a body that lies (cannot come from the real bus, but is not believed either)
  await settle();
  assert.equal(bus.asked, 1);
  assert.equal(inner.owner, ':1.5', 'the bus still says :1.5');
  assert.deepEqual(events, []);
  bus.busOwner = ':1.9'; // firewalld really restarted
  noc(DBUS, ':1.5', ':1.9');
  removed(':1.5'); // arrives while the owner is being asked: judged by the answer
  removed(':1.9');
  await settle();
  assert.equal(inner.owner, ':1.9');
  assert.deepEqual(events, ['down', 'up', 'removed public|rule x']);
});

test('17.5: firewalld gone (the bus says no owner): its old name is not believed any more', async () => {
  const { inner, bus, events, noc, reloaded, settle } = rig();
  bus.busOwner = '';
  noc(DBUS, ':1.5', '');
  await settle();
  assert.equal(inner.owner, '');
  reloaded(':1.5');
  assert.deepEqual(events, ['down']);
});

test('18.7: at most `max` calls in flight; the rest wait their turn, in order', async () => {
  const l = new CallLimiter(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  const op = (i: number) => async (): Promise<number> => {
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    order.push(i);
    return i;
  };
  const results = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => l.run(op(i))));
  assert.deepEqual(results, [1, 2, 3, 4, 5, 6]);
  assert.equal(peak, 2);
  assert.equal(l.peakQueued, 4);
  assert.equal(l.inFlight, 0);
});

test('17.3: the version table: old timer code keeps timed rules, the new code and anything unknown does not', () => {
  assert.deepEqual(parseVersion('2.5.2'), [2, 5, 2]);
  assert.deepEqual(parseVersion('1.3.3-rc1'), [1, 3, 3]);
  assert.equal(parseVersion('x'), undefined);
  const expiry = (v: string): string => versionPolicy(v).expiry;
  for (const v of ['0.9.3', '0.9.11', '1.3.3', '1.3.4', '2.2.0', '2.3.1', '2.3.2', '2.4.0'])
    assert.equal(expiry(v), 'firewalld', v);
  for (const v of ['2.3.3', '2.3.9', '2.4.1', '2.4.3', '2.5.0', '2.5.2', '2.6.0', '3.0', '', 'garbage'])
    assert.equal(expiry(v), 'knockd', v);
  assert.equal(versionPolicy('1.3.3').orphanTimers, true);
  assert.equal(versionPolicy('2.5.2').orphanTimers, false);
});
