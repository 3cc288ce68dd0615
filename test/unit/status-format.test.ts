import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, type StatusSnapshot } from '../../src/daemon/status';
import { interfaceAddresses } from '../../src/capture/addresses';
import { networkInterfaces } from 'node:os';

const base: StatusSnapshot = {
  pid: 1,
  version: '0.1.0',
  iface: 'eno1',
  status: 'listening on eno1, 1 door, 0 open',
  listening: true,
  doors: [],
  grants: [],
  pendingStops: [],
};

test('knockd --status lists each interface when there are several; one interface: no table (as before)', () => {
  const two = formatStatus({
    ...base,
    iface: 'eno1,eno2',
    status: 'listening on eno1 (waiting for an address on eno2), 1 door, 0 open',
    interfaces: [
      { name: 'eno1', listening: true, state: 'listening (ETHERNET)' },
      { name: 'eno2', listening: false, state: 'waiting for an address on eno2' },
    ],
  });
  assert.match(
    two,
    /^interfaces:\n {2}INTERFACE {2}STATE\n {2}eno1 {7}listening \(ETHERNET\)\n {2}eno2 {7}waiting for an address on eno2\n\ndoors:/m,
  );
  const one = formatStatus({ ...base, interfaces: [{ name: 'eno1', listening: true, state: 'listening (ETHERNET)' }] });
  assert.doesNotMatch(one, /interfaces:/);
  assert.equal(one, formatStatus(base));
});

test("interfaceAddresses('any'): every address of every interface", () => {
  const any = interfaceAddresses('any');
  assert.equal(any.exists, true);
  assert.ok(any.addrs.includes('127.0.0.1'));
  const each = new Set(Object.keys(networkInterfaces()).flatMap((i) => interfaceAddresses(i).addrs));
  assert.deepEqual(any.addrs, [...each].sort());
  assert.ok(interfaceAddresses('any', true).addrs.every((a) => !a.includes(':')));
});
