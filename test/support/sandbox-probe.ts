/**
 * Runs the real capture process (dist/src/capture/worker.js) on interface
 * argv[2] with KNOCKD_SANDBOX_PROBE=1, as the daemon would start it (root,
 * fork with an IPC channel, a `start` message), and prints one JSON line:
 * what the process answered right after it dropped its privileges (each
 * refused call's errno, per packet socket), and the Seccomp field of every
 * thread's /proc status. Run as root in a namespace with that interface
 * (test/e2e/sandbox.test.ts). The daemon never passes KNOCKD_SANDBOX_PROBE
 * on (supervisor.ts removes it).
 */
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureUser } from '../../src/capture/user';
import type { CaptureSetup } from '../../src/capture/protocol';

const iface = process.argv[2];
const worker = join(__dirname, '..', '..', 'src', 'capture', 'worker.js');
const child = fork(worker, [], {
  env: { ...process.env, KNOCKD_SANDBOX_PROBE: '1' },
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});
const setup: CaptureSetup = {
  ifaces: [iface],
  user: captureUser(),
  filter: 'tcp dst port 9',
  doors: [],
  spa: [],
  local: [],
  snaplen: 256,
  ipv4Only: false,
  maxAttempts: 1000,
  ringMB: 1,
  stage1PerSecond: 10,
};
const out: { probe?: unknown; listening?: boolean; seccomp?: string[]; errors: unknown[] } = { errors: [] };
const timer = setTimeout(() => finish(), 10_000);
child.on('message', (m: { t: string; results?: unknown }) => {
  if (m.t === 'sandbox-probe') out.probe = m.results;
  else if (m.t === 'error') out.errors.push(m);
  else if (m.t === 'listening') {
    out.listening = true;
    out.seccomp = readdirSync(`/proc/${child.pid}/task`).map(
      (t) => /^Seccomp:\s*(\d+)/m.exec(readFileSync(`/proc/${child.pid}/task/${t}/status`, 'utf8'))?.[1] ?? '?',
    );
    finish();
  }
});
child.on('exit', () => finish());
child.send({ t: 'start', setup });

function finish(): void {
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (child.connected) child.disconnect();
  process.exit(0);
}
