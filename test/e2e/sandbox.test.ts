/**
 * Issue 18.9: the capture process's seccomp sandbox, proved from inside the
 * real capture process (worker.js as the daemon starts it, on a real packet
 * socket in the lab): right after the drop it tries each call the sandbox
 * must refuse (test/support/sandbox-probe.ts, KNOCKD_SANDBOX_PROBE=1) and
 * reports the errno of each: EPERM for all of them, while what it does all
 * day (getpid, a write to a pipe) still works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Lab } from '../lab/lab';
import { withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false, sshd: false }, (l) => (lab = l));

const EPERM = 1;

test('inside the capture process: execve, sockets, sends and writes on the packet socket, a new filter, dup, io_uring, a foreign ABI: all EPERM', async () => {
  const probe = join(__dirname, '..', 'support', 'sandbox-probe.js');
  const r = await lab.execIn('server', [process.execPath, probe, lab.serverIf], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as {
    probe?: Record<string, number>[];
    listening?: boolean;
    seccomp?: string[];
    errors: unknown[];
  };
  assert.deepEqual(out.errors, []);
  assert.equal(out.listening, true);
  assert.ok(
    out.seccomp!.length > 1 && out.seccomp!.every((s) => s === '2'),
    `Seccomp per thread: ${out.seccomp?.join(' ') ?? 'none'}`,
  );
  const results = out.probe![0];
  const refused = Object.entries(results).filter(([k]) => !k.endsWith('(allowed)'));
  for (const name of [
    'execve',
    'execveat',
    'socket',
    'socketpair',
    'sendto',
    'sendmsg',
    'sendmmsg',
    'write',
    'writev',
    'pwrite64',
    'pwritev',
    'sendfile',
    'splice',
    'setsockopt SO_ATTACH_FILTER',
    'setsockopt SO_DETACH_FILTER',
    'setsockopt SO_LOCK_FILTER 0',
    'dup',
    'dup3',
    'fcntl F_DUPFD',
    'fcntl F_DUPFD_CLOEXEC',
    'io_uring_setup',
    'io_uring_enter',
    'io_uring_register',
    'io_setup',
    'io_submit',
    'pidfd_open',
    'pidfd_getfd',
    'process_vm_writev',
  ])
    assert.ok(name in results, `probed ${name}`);
  const notRefused = refused.filter(([, e]) => e !== EPERM);
  assert.deepEqual(notRefused, [], `not refused with EPERM: ${JSON.stringify(notRefused)}`);
  assert.equal(results['getpid (allowed)'], 0);
  assert.equal(results['write to a pipe (allowed)'], 0);
  process.stdout.write(`refused with EPERM inside the capture process: ${refused.map(([k]) => k).join(', ')}\n`);
});
