import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { sdNotify } from 'cap/lib/sdnotify';
import { SystemdNotifier } from '../../src/daemon/notify';

function capture(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) },
  );
  return { log, lines };
}

test('sd_notify messages: READY=1 once with the status, STATUS= only when it changes, STOPPING=1; one line per field', () => {
  const sent: [string, string][] = [];
  const { log } = capture();
  const n = new SystemdNotifier(log, { NOTIFY_SOCKET: '/run/systemd/notify' }, (p, m) => void sent.push([p, m]));
  n.status('waiting for eno1');
  n.markReady('listening on eno1, 1 door, 0 open');
  n.markReady('listening on eno1, 1 door, 0 open');
  n.status('listening on eno1, 1 door, 0 open');
  n.status('listening on eno1, 1 door, 1 open\nREADY=1');
  n.stopping('stopping');
  assert.deepEqual(sent, [
    ['/run/systemd/notify', 'STATUS=waiting for eno1'],
    ['/run/systemd/notify', 'READY=1\nSTATUS=listening on eno1, 1 door, 0 open'],
    ['/run/systemd/notify', 'STATUS=listening on eno1, 1 door, 1 open READY=1'],
    ['/run/systemd/notify', 'STOPPING=1\nSTATUS=stopping'],
  ]);
});

test('no NOTIFY_SOCKET: nothing is sent; a failing socket is said once per run of failures', () => {
  let calls = 0;
  const quiet = new SystemdNotifier(capture().log, {}, () => void calls++);
  quiet.markReady('x');
  assert.equal(calls, 0);
  const { log, lines } = capture();
  let fail = true;
  const n = new SystemdNotifier(log, { NOTIFY_SOCKET: '@gone' }, () => {
    if (fail) throw new Error('sendto ECONNREFUSED');
  });
  n.status('a');
  n.status('b');
  fail = false;
  n.status('c');
  fail = true;
  n.status('d');
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0], /^sd_notify to @gone failed \(sendto ECONNREFUSED\)/);
});

test('sdNotify (the addon): refuses a relative or too long path, reports the errno of a socket nobody listens on', () => {
  assert.throws(() => sdNotify('relative/path', 'READY=1'), RangeError);
  assert.throws(() => sdNotify(`/${'x'.repeat(120)}`, 'READY=1'), RangeError);
  const dir = mkdtempSync(join(tmpdir(), 'knockd-notify-'));
  try {
    assert.throws(() => sdNotify(join(dir, 'none.sock'), 'READY=1'), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true });
  }
  // The daemon loads it instead of cap.node: it must not bring libpcap into the daemon.
  const maps = readFileSync('/proc/self/maps', 'utf8');
  assert.match(maps, /sdnotify\.node/);
  assert.doesNotMatch(maps, /libpcap/, 'libpcap mapped by loading sdnotify.node');
});
