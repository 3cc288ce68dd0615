/**
 * `Strict_Repeats` (issue #19, item 1): the directive reaches the matcher's
 * door (config → runtime door → what the capture process gets), and a door
 * without it ignores a second knock on the port just passed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse';
import { toRuntimeDoors } from '../../src/daemon/doors';
import { wire } from '../../src/daemon/wire';
import { Matcher, type MatchEvent } from '../../src/matcher/matcher';

const conf = (strict: string | undefined): string => `[options]
    logfile = /dev/null
[openSSH]
    sequence    = 3333,4444,5555
    tcpflags    = syn
${strict !== undefined ? `    strict_repeats = ${strict}\n` : ''}    command     = /bin/true %IP%
`;

test('Strict_Repeats = yes/no reaches the capture process; left out means no', () => {
  for (const [value, want] of [
    ['yes', true],
    ['on', true],
    ['no', false],
    [undefined, false],
  ] as const) {
    const r = parseConfigText(conf(value), 'knockd.conf');
    assert.deepEqual(r.errors, [], String(value));
    const doors = toRuntimeDoors(r.config!.doors);
    assert.equal(doors[0].strictRepeats === true, want, String(value));
    assert.equal(wire(doors, ['10.0.0.1']).doors[0].strictRepeats === true, want, String(value));
  }
});

test('Strict_Repeats with another word is an error naming the line', () => {
  const r = parseConfigText(conf('sometimes'), 'knockd.conf');
  assert.equal(r.config, undefined);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].line, 6);
  assert.match(r.errors[0].message, /Strict_Repeats expects yes or no/);
});

test('from the config file to the matcher: two connections per port open the default door, not the strict one', () => {
  for (const [value, opens] of [
    [undefined, 1],
    ['yes', 0],
  ] as const) {
    const doors = toRuntimeDoors(parseConfigText(conf(value), 'knockd.conf').config!.doors);
    const events: MatchEvent[] = [];
    const m = new Matcher(wire(doors, ['10.0.0.1']).doors, (e) => events.push(e));
    m.setLocalAddresses(['10.0.0.1']);
    let sport = 40000;
    for (const port of [3333, 4444, 5555])
      for (let n = 0; n < 2; n++)
        m.handle(
          {
            family: 4,
            proto: 6,
            dport: port,
            flags: 2,
            sport: sport++,
            seq: sport * 7,
            src: '10.0.0.2',
            dst: '10.0.0.1',
          },
          1000,
        );
    assert.equal(events.filter((e) => e.type === 'open').length, opens, String(value));
  }
});
