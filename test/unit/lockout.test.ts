/**
 * Lock-out safety, the config-only part (src/config/lockout.ts); the
 * firewalld part runs against the lab's firewalld (test/e2e/lockout.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse';
import { lockoutConfigWarnings } from '../../src/config/lockout';

const warnings = (text: string): string[] => {
  const r = parseConfigText(text, 'k.conf');
  assert.deepEqual(r.errors, []);
  return lockoutConfigWarnings(r.config!).map((w) => `${w.line} [${w.door}] ${w.message}`);
};
const door = (seq: string, extra = ''): string => `[d]\n  sequence = ${seq}\n  command = /bin/true\n${extra}`;

test('well-known example sequences, and fewer than 3 knocks', () => {
  for (const s of ['3333,4444,5555', '6666,7777,8888', '7000,8000,9000', '7000:udp,8000,9000'])
    assert.match(warnings(door(s)).join('\n'), /^2 \[d\] sequence .* is a well-known example/, s);
  for (const s of ['1234', '1234,2345'])
    assert.match(warnings(door(s)).join('\n'), /^2 \[d\] sequence has \d knock/, s);
  for (const s of ['3333,4444,5555,6666', '5555,4444,3333', '1234,2345,3456'])
    assert.deepEqual(warnings(door(s)), [], s);
});

test('a firewall-cmd line with --permanent that adds', () => {
  const perm = `[d]\n  sequence = 1234,2345,3456\n  start_command = sudo /usr/bin/firewall-cmd --permanent --add-service=ssh\n`;
  assert.match(warnings(perm).join('\n'), /^3 \[d\] this firewall-cmd line has --permanent/);
  const removes = `[d]\n  sequence = 1234,2345,3456\n  start_command = firewall-cmd --permanent --remove-service=ssh\n`;
  assert.deepEqual(warnings(removes), []);
  const runtime = `[d]\n  sequence = 1234,2345,3456\n  start_command = firewall-cmd --add-service=ssh --timeout=60\n`;
  assert.deepEqual(warnings(runtime), []);
});

test('a converted IPv4-only firewall-cmd door that an IPv6 knock completes', () => {
  const rule = (f: 4 | 6) => `"rule family="ipv${f}" source address="%IP%" service name="ssh" accept"`;
  const v4 = `[d]\n  sequence = 1234,2345,3456\n  start_command = firewall-cmd --add-rich-rule=${rule(4)}\n`;
  assert.match(warnings(v4).join('\n'), /^3 \[d\] an IPv6 knock completes this door/);
  assert.deepEqual(warnings(`${v4}  start_command_6 = firewall-cmd --add-rich-rule=${rule(6)}\n`), []);
  assert.deepEqual(warnings(`${v4}  start_command_6 =\n`), [], 'IPv6 knocks ignored on purpose');
  assert.deepEqual(warnings(`${v4}  target = 10.0.0.1\n`), [], 'only IPv4 can knock');
});
