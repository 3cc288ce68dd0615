/**
 * The once-a-minute memory for knocks from impossible sources survives a
 * reload: the daemon keeps one ImpossibleSources and gives it to the Actions
 * it builds for each config (src/daemon/impossible-sources.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseConfigText } from '../../src/config/parse';
import { Actions } from '../../src/daemon/actions';
import type { CommandRunner } from '../../src/daemon/commands';
import { toRuntimeDoors } from '../../src/daemon/doors';
import { IMPOSSIBLE_LOG_EVERY_MS, ImpossibleSources } from '../../src/daemon/impossible-sources';

test('a reload (a new Actions) does not log an impossible source again within the minute; the count goes on', () => {
  const lines: string[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) },
  );
  let now = 1_000_000;
  const clock = (): number => now;
  const r = parseConfigText(`[shell]\n sequence = 1,2,3\n start_command = /usr/bin/true %IP%\n`, 'knockd.conf');
  assert.deepEqual(r.errors, []);
  const door = toRuntimeDoors(r.config!.doors)[0];
  const noCommands = {} as unknown as CommandRunner; // never reached: the gate refuses first
  const host = () => ({ own: new Set<string>(), broadcasts: new Set<string>() });
  const kept = new ImpossibleSources(log, clock);
  const build = () => new Actions(undefined, noCommands, log, () => 'public', undefined, clock, host, undefined, kept);
  const spoofed = () => lines.filter((l) => /127\.0\.0\.1: shell: knock from .*logged once a minute/.test(l)).length;

  build().knock(door, '127.0.0.1', 4);
  assert.equal(spoofed(), 1);
  // Ten reloads within the minute, each with a knock from the same source: no new line.
  for (let i = 0; i < 10; i++) {
    now += 1000;
    build().knock(door, '127.0.0.1', 4);
  }
  assert.equal(spoofed(), 1);
  assert.equal(kept.refused, 11);
  now += IMPOSSIBLE_LOG_EVERY_MS;
  build().knock(door, '127.0.0.1', 4);
  assert.equal(spoofed(), 2);
});
