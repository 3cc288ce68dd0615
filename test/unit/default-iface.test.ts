import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseInterface, defaultRoute4, defaultRoute6, defaultRouteInterface } from '../../src/capture/default-iface';

const HEAD =
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n';
const row = (dev: string, dest: string, gw: string, flags: string, metric: number, mask: string): string =>
  `${dev}\t${dest}\t${gw}\t${flags}\t0\t0\t${metric}\t${mask}\t0\t0\t0                                                                               \n`;

/** A RHEL server: eno1 with a gateway, eno2 on a private subnet only, libvirt's bridge. */
const RHEL_ROUTE =
  HEAD +
  row('eno1', '00000000', '0102A8C0', '0003', 100, '00000000') +
  row('eno1', '0002A8C0', '00000000', '0001', 100, '00FFFFFF') +
  row('eno2', '00000A0A', '00000000', '0001', 101, '0000FFFF') +
  row('virbr0', '007AA8C0', '00000000', '0001', 0, '00FFFFFF');

test("/proc/net/route: the default route's interface", () => {
  assert.equal(defaultRoute4(RHEL_ROUTE), 'eno1');
});

test('/proc/net/route: the lowest metric of several default routes wins; routes that are down or reject are skipped', () => {
  const text =
    HEAD +
    row('wlp2s0', '00000000', '0101A8C0', '0003', 600, '00000000') +
    row('enp0s31f6', '00000000', '0100000A', '0003', 100, '00000000') +
    row('eno9', '00000000', '0100000A', '0002', 1, '00000000') + // not RTF_UP
    row('eno8', '00000000', '00000000', '0201', 0, '00000000'); // RTF_REJECT
  assert.equal(defaultRoute4(text), 'enp0s31f6');
});

test('/proc/net/route: a default route without a gateway (dev only) counts; a 0.0.0.0/1 route is not a default route', () => {
  assert.equal(
    defaultRoute4(
      HEAD +
        row('tun0', '00000000', '00000080', '0003', 0, '00000080') +
        row('veth1', '00000000', '00000000', '0001', 0, '00000000'),
    ),
    'veth1',
  );
});

test('/proc/net/route: no default route, empty, garbage', () => {
  assert.equal(defaultRoute4(HEAD + row('eno1', '0002A8C0', '00000000', '0001', 100, '00FFFFFF')), undefined);
  assert.equal(defaultRoute4(''), undefined);
  assert.equal(defaultRoute4(HEAD), undefined);
  assert.equal(defaultRoute4('x\n../etc\t00000000\t0\t0003\t0\t0\t0\t00000000\n'), undefined, 'not an interface name');
});

const V6 = [
  'fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eno1',
  '20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eno1',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00450003     eno2',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000064 00000002 00000000 00450003     eno1',
  '00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo',
].join('\n');

test('/proc/net/ipv6_route: the default route with the lowest metric (hex); the unreachable default on lo is skipped', () => {
  assert.equal(defaultRoute6(V6), 'eno1', 'metric 0x64 < 0x400');
  const onlyLo = V6.split('\n')
    .filter((l) => l.endsWith(' lo'))
    .join('\n');
  assert.equal(defaultRoute6(onlyLo), undefined);
  assert.equal(defaultRoute6(''), undefined);
});

test('defaultRouteInterface: IPv4 first, then IPv6; unreadable files are no route', () => {
  const files =
    (m: Record<string, string>) =>
    (p: string): string | undefined =>
      m[p];
  assert.equal(
    defaultRouteInterface({
      read: files({ '/proc/net/route': RHEL_ROUTE, '/proc/net/ipv6_route': V6.replace(/eno1$/gm, 'eno7') }),
    }),
    'eno1',
  );
  assert.equal(defaultRouteInterface({ read: files({ '/proc/net/route': HEAD, '/proc/net/ipv6_route': V6 }) }), 'eno1');
  assert.equal(
    defaultRouteInterface({ read: files({ '/proc/net/ipv6_route': V6.replace(/eno1$/gm, 'eno7') }) }),
    'eno7',
  );
  assert.equal(defaultRouteInterface({ read: files({}) }), undefined);
});

test('chooseInterface: -i/Interface first; then eth0 if it exists (as knockd); then the default route, said in the log; then eth0, with a warning', () => {
  const read = (p: string): string | undefined => (p === '/proc/net/route' ? RHEL_ROUTE : undefined);
  assert.deepEqual(chooseInterface('ens3', { exists: () => false, read }), { iface: 'ens3' });
  assert.deepEqual(chooseInterface(undefined, { exists: (n) => n === 'eth0', read }), { iface: 'eth0' });
  assert.deepEqual(chooseInterface(undefined, { exists: () => false, read }), {
    iface: 'eno1',
    note: 'no -i given and no eth0: listening on eno1, the default-route interface',
  });
  const none = chooseInterface(undefined, { exists: () => false, read: () => undefined });
  assert.equal(none.iface, 'eth0');
  assert.equal(none.warn, true);
  assert.match(none.note ?? '', /no default route: waiting for eth0/);
});
