/**
 * firewalld_source_prefix / firewalld_source_prefix6 (issue #19, item 4):
 * canonical networks of both families, the prefix bounds, the rule text a
 * knock makes, and the state-file checks that must take the network form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse';
import { canonicalNetwork, isCanonicalSource } from '../../src/decode/network';
import { grantSource } from '../../src/daemon/actions';
import { toRuntimeDoors } from '../../src/daemon/doors';
import { whyNoDoorMade } from '../../src/daemon/state-origin';
import { validGrantEntry } from '../../src/firewalld/grant-entry';
import { IP_PLACEHOLDER } from '../../src/model';

test('canonical networks, IPv4 and IPv6', () => {
  assert.equal(canonicalNetwork('10.1.2.3', 24), '10.1.2.0/24');
  assert.equal(canonicalNetwork('10.1.2.3', 16), '10.1.0.0/16');
  assert.equal(canonicalNetwork('10.1.2.255', 25), '10.1.2.128/25');
  assert.equal(canonicalNetwork('10.1.2.3', 32), '10.1.2.3');
  assert.equal(canonicalNetwork('2001:DB8:1:2:a:b:c:d', 64), '2001:db8:1:2::/64');
  assert.equal(canonicalNetwork('2001:db8:1:2:a:b:c:d', 48), '2001:db8:1::/48');
  assert.equal(canonicalNetwork('2001:db8::1', 128), '2001:db8::1');
  assert.equal(canonicalNetwork('10.1.2.3', 0), undefined);
  assert.equal(canonicalNetwork('10.1.2.3', 33), undefined);
  assert.equal(canonicalNetwork('x', 24), undefined);
  for (const ok of ['10.1.2.0/24', '2001:db8:1:2::/64', '10.1.2.3', '2001:db8::1'])
    assert.ok(isCanonicalSource(ok), ok);
  for (const bad of ['10.1.2.3/24', '10.1.2.0/024', '10.1.2.0/32', '10.1.2.0/0', '2001:DB8::/32', '10.1.2.0/24"', ''])
    assert.ok(!isCanonicalSource(bad), bad);
});

const conf = (extra: string) =>
  `[open]\nsequence = 1,2,3\nfirewalld_action = open\nfirewalld_zone = public\nfirewalld_service = ssh\n${extra}`;

test('prefix bounds: errors outside 1..32 / 1..128; --check warns wider than /16 and /48', () => {
  const r = parseConfigText(conf('firewalld_source_prefix = 24\nfirewalld_source_prefix6 = 64\n'), 'k.conf');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.config?.doors[0]?.sourcePrefix, { 4: 24, 6: 64 });
  for (const bad of [
    'firewalld_source_prefix = 0',
    'firewalld_source_prefix = 33',
    'firewalld_source_prefix6 = 129',
    'firewalld_source_prefix = 24x',
  ])
    assert.match(
      parseConfigText(conf(bad + '\n'), 'k.conf').errors[0]?.message ?? '',
      /must be a prefix length from 1 to/,
      bad,
    );
  const wide = parseConfigText(conf('firewalld_source_prefix = 15\nfirewalld_source_prefix6 = 47\n'), 'k.conf');
  assert.deepEqual(wide.errors, []);
  assert.equal(wide.warnings.filter((w) => /keep it at \/(16|48) or narrower/.test(w.message)).length, 2);
  const notFw = parseConfigText(
    '[c]\nsequence = 1,2,3\nstart_command = true\nfirewalld_source_prefix = 24\n',
    'k.conf',
  );
  assert.match(notFw.errors[0]?.message ?? '', /firewalld_source_prefix needs a firewalld door/);
});

test('the rule a knock makes is for the canonical network; state files take it back only from that door', () => {
  const r = parseConfigText(conf('firewalld_source_prefix = 24\nfirewalld_source_prefix6 = 64\n'), 'k.conf');
  const doors = r.config!.doors;
  const [door] = toRuntimeDoors(doors);
  const net = grantSource(door, '10.200.1.3', 4);
  assert.equal(net, '10.200.1.0/24');
  assert.equal(grantSource(door, '10.200.1.77', 4), net, 'another address of the network: the same grant');
  assert.equal(grantSource(door, '2001:db8:1:2::99', 6), '2001:db8:1:2::/64');
  const rule = door.config.firewalld!.rules[4][0].rule.split(IP_PLACEHOLDER).join(net);
  assert.equal(rule, 'rule family="ipv4" source address="10.200.1.0/24" service name="ssh" accept');
  const entry = { zone: 'public', rule, src: net, door: 'open', timeout: 30, expiresAt: 1, state: 'open' };
  const g = validGrantEntry(entry);
  assert.equal(typeof g, 'object', typeof g === 'string' ? g : '');
  assert.equal(whyNoDoorMade(entry, doors), undefined);
  const plain = parseConfigText(conf(''), 'k.conf').config!.doors;
  assert.match(whyNoDoorMade(entry, plain) ?? '', /grants single addresses, not 10.200.1.0\/24/);
  assert.equal(
    validGrantEntry({ ...entry, src: '10.200.1.3/24' }),
    'src is not a canonical IP address or network (firewalld_source_prefix)',
  );
  const narrower = parseConfigText(conf('firewalld_source_prefix = 28\n'), 'k.conf').config!.doors;
  assert.match(whyNoDoorMade(entry, narrower) ?? '', /grants \/28 networks/);
});
