/**
 * The config grammars that several readers share, each tested once here:
 * zone names (firewalld_zone, firewall-cmd --zone, grants.json), knock
 * sequences (Sequence = and the one-time file), seconds, yes/no words, clip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { recognizeFirewallCmd } from '../../src/config/firewallcmd';
import { parseConfigText } from '../../src/config/parse';
import { MAX_TIMEOUT_SECONDS, parseSeconds } from '../../src/config/seconds';
import { parseSequence, SEQ_MAX, sequenceText } from '../../src/config/sequence';
import { clip, MAX_QUOTE } from '../../src/config/text';
import { parseYesNo } from '../../src/config/yesno';
import { isZoneName, MAX_ZONE_NAME_CHARS } from '../../src/config/zone';
import { IPPROTO_TCP as TCP, IPPROTO_UDP as UDP } from '../../src/decode/types';
import { validGrantEntry } from '../../src/firewalld/grant-entry';

const GOOD_ZONES = ['public', 'internal/x-1', 'a', 'my_zone-2', 'a'.repeat(17), `${'a'.repeat(17)}/${'b'.repeat(46)}`];
const BAD_ZONES = [
  '',
  'my zone',
  '"public"',
  'a'.repeat(18),
  `a/${'b'.repeat(MAX_ZONE_NAME_CHARS)}`,
  '/public',
  'public/',
  'a/b/c',
  'pub.lic',
  'pub+lic',
  '%IP%',
  'zoné',
];

test('zone names: firewalld grammar (letters, digits, _ -, one inner /, 17 before it)', () => {
  for (const z of GOOD_ZONES) assert.equal(isZoneName(z), true, z);
  for (const z of BAD_ZONES) assert.equal(isZoneName(z), false, z);
});

test('zone names: the config, firewall-cmd conversion and grants.json take the same names', () => {
  const rule = 'rule family="ipv4" source address="%IP%" service name="ssh" accept';
  const fwConfig = (z: string) =>
    parseConfigText(
      `[d]\nsequence = 1,2\nfirewalld_action = open\nfirewalld_service = ssh\nfirewalld_zone = ${z}\n`,
      'k.conf',
    ).config !== undefined;
  const fwCmd = (z: string) =>
    recognizeFirewallCmd(`firewall-cmd --zone='${z}' --add-rich-rule='${rule}'`) !== undefined;
  const entry = (z: string) =>
    typeof validGrantEntry({
      zone: z,
      rule: rule.replace('%IP%', '192.0.2.1'),
      src: '192.0.2.1',
      door: 'd',
      timeout: 30,
      expiresAt: 1,
      state: 'open',
    }) !== 'string';
  for (const z of [...GOOD_ZONES, ...BAD_ZONES.filter((b) => b !== '')]) {
    const want = isZoneName(z);
    assert.equal(fwConfig(z), want, `firewalld_zone = ${z}`);
    assert.equal(fwCmd(z), want, `firewall-cmd --zone=${z}`);
    assert.equal(entry(z), want, `grants.json zone ${z}`);
  }
});

test('sequences: port[:tcp|udp], ASCII blanks around items and ":", at most SEQ_MAX', () => {
  assert.deepEqual(parseSequence('7000 : udp,8000, 9000:TCP'), {
    ports: [
      { port: 7000, proto: UDP },
      { port: 8000, proto: TCP },
      { port: 9000, proto: TCP },
    ],
    errors: [],
  });
  assert.deepEqual(parseSequence('0,65535:udp').errors, []);
  for (const bad of ['', '7000,', '65536', '1:icmp', '1:tcp:udp', '-1', 'x', '1\u00a0']) {
    assert.equal(parseSequence(bad).errors.length, 1, JSON.stringify(bad));
  }
  const many = Array.from({ length: SEQ_MAX + 1 }, (_, i) => String(i + 1)).join(',');
  assert.match(parseSequence(many).errors[0] ?? '', /knockd allows at most 32/);
  // One error per line, however many bad items.
  assert.match(parseSequence('a,b,c').errors[0] ?? '', /\(and 2 more bad items\)$/);
  const r = parseSequence('3333,4444:udp');
  assert.equal(parseSequence(sequenceText({ sequence: r.ports })).errors.length, 0);
  assert.equal(sequenceText({ sequence: r.ports }), '3333:tcp,4444:udp');
});

test('seconds: whole ASCII numbers in [min, max], the message names the directive', () => {
  assert.equal(parseSeconds('15', 'Seq_Timeout', { min: 1 }), 15);
  assert.equal(parseSeconds('0', 'Cmd_Timeout', { min: 0 }), 0);
  assert.equal(parseSeconds(String(MAX_TIMEOUT_SECONDS), 'x', { min: 0 }), MAX_TIMEOUT_SECONDS);
  assert.match(String(parseSeconds('15s', 'Timeout', { min: 1 })), /^Timeout must be a whole number of seconds/);
  assert.match(String(parseSeconds('٣', 'Timeout', { min: 1 })), /whole number/);
  assert.match(String(parseSeconds('0', 'Seq_Timeout', { min: 1 })), /at least 1 second,/);
  assert.match(String(parseSeconds(String(MAX_TIMEOUT_SECONDS + 1), 'x', { min: 0 })), /too long/);
  assert.match(String(parseSeconds('301', 'm', { min: 1, max: 300, maxReason: 'r' })), /at most 300 s, r/);
});

test('yes/no: one word set, any case', () => {
  for (const w of ['yes', 'Y', 'true', 'ON', '1']) assert.equal(parseYesNo(w), true, w);
  for (const w of ['no', 'n', 'False', 'off', '0']) assert.equal(parseYesNo(w), false, w);
  for (const w of ['', 'maybe', 'yes ', 'oui']) assert.equal(parseYesNo(w), undefined, w);
  // UseSyslog and spa_require_source_address read the same words.
  const r = parseConfigText('[options]\nUseSyslog = n\n[d]\nsequence = 1,2\ncommand = true\n', 'k.conf');
  assert.equal(r.config?.options.useSyslog, false);
});

test('clip: long values end with "…(N characters)", surrogate pairs are not split', () => {
  assert.equal(clip('short'), 'short');
  const long = 'x'.repeat(MAX_QUOTE + 5);
  assert.equal(clip(long), `${'x'.repeat(MAX_QUOTE)}…(${MAX_QUOTE + 5} characters)`);
  const pair = 'x'.repeat(MAX_QUOTE - 1) + '😀' + 'y';
  assert.ok(!clip(pair).includes('\ud83d…'));
});
