/**
 * Network-namespace test lab for the knockd/firewalld daemon.
 *
 * `startLab()` builds a disposable, fully isolated test bed:
 *
 *   ┌──────────── server netns (kn-<pid>-<rand>-s) ────────────┐      ┌─ client netns (…-c) ─┐
 *   │ lo                                                       │      │ lo                   │
 *   │ ks<rand>  10.200.X.1/24  fd00:6b6e:X::1/64  ◄────veth────┼──────┼► kc<rand> .2 (+.3 …) │
 *   │ dbus-daemon (private "system" bus, unix:path=<tmp>/bus.sock)    │                      │
 *   │ firewalld --nofork --nopid (runtime only, private config dir)   │                      │
 *   │ sshd -D on :22                                           │      │                      │
 *   └──────────────────────────────────────────────────────────┘      └──────────────────────┘
 *
 * Nothing is ever started in, or configured on, the host network namespace:
 * the veth pair is created from inside the server namespace, every process is
 * launched through `ip netns exec`, there are no default routes, and firewalld
 * talks only to the private bus (its `DBUS_SYSTEM_BUS_ADDRESS` points at our
 * socket) and runs in a mount namespace of its own where a private copy of
 * /etc/firewalld is bind-mounted over /etc/firewalld, so not even a
 * `--permanent` call (tests make them on purpose) can modify the host's.
 *
 * Which firewalld: the host's, or with `KNLAB_FIREWALLD=bullseye|bookworm|
 * trixie|sid` (or LabOptions.firewalldRelease) that Debian release's, from a
 * cached root (fw-roots.ts), chrooted into a fresh overlay of it (fw-chroot.sh)
 * in a private mount namespace that holds every mount and dies with firewalld,
 * so no cleanup can ever remove files through a live mount. The lab bus reads
 * that release's bus policy, and every firewall-cmd the lab runs (firewallCmd(),
 * execIn('server', ['firewall-cmd', …])) is that release's: in firewalld's own
 * namespaces and root while it runs, else in a read-only chroot of the root.
 *
 * Files, one idea each: types.ts (the public types), proc.ts (running and
 * killing processes), netns.ts (namespaces, veth, preconditions, stale
 * cleanup), bus.ts (the private dbus-daemon), firewalld.ts (firewalld, its
 * configuration and zone setup), fw-roots.ts + fw-root.sh + fw-chroot.sh (the
 * release roots), sshd.ts, hooks.ts (the exit/signal safety net), lab-impl.ts
 * (one running lab); this file
 * puts them together.
 *
 * Everything the helpers log goes to files in `lab.tmpDir` (lab.log,
 * dbus.log, firewalld.log, firewalld.console.log, sshd.log, spawn-*.log);
 * set KNLAB_KEEP_TMP=1 to keep that directory after stop() for post-mortems.
 *
 * Cleanup: `stop()` (idempotent) kills every process group it started, sweeps
 * any remaining process out of the namespaces, deletes both namespaces (which
 * destroys the veth pair) and removes tmpDir. A synchronous best-effort
 * cleanup also runs on process 'exit' and on SIGINT/SIGTERM/SIGHUP, and
 * `cleanupStale()` removes leftovers of runs whose creating process is dead
 * (the creator's pid is encoded in every namespace and temp-dir name).
 */

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensureFwRoot, firewalldChoice, needsRoot } from './fw-roots';
import { guard } from './hooks';
import { LabImpl } from './lab-impl';
import { errMsg } from './proc';
import { TMP_PREFIX, cleanupStale, requireRoot } from './netns';
import type { Lab, LabOptions } from './types';

export type { ExecResult, Lab, LabNs, LabOptions } from './types';
export { systemBusConfig } from './bus';
export { cleanupStale, requireRoot } from './netns';

/** sun_path is 108 bytes including the terminating NUL. */
const MAX_UNIX_PATH = 107;

/**
 * Build a lab (see the module comment). On any failure everything created so
 * far is torn down before the error is rethrown.
 */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  requireRoot();
  await cleanupStale().catch(() => undefined);
  // The release root first (a first run builds it, minutes): a root that cannot be built fails the lab.
  const release = firewalldChoice(opts.firewalldRelease);
  const fwRoot = (opts.firewalld ?? true) && needsRoot(release) ? await ensureFwRoot(release) : undefined;

  const rand = randomBytes(3).toString('hex');
  const id = `${process.pid}-${rand}`;
  const subnet = 1 + ((randomBytes(1)[0] ?? 0) % 254); // 10.200.<1..254>.0/24
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), `${TMP_PREFIX}${id}-`));
  if (path.join(tmpDir, 'bus.sock').length > MAX_UNIX_PATH) {
    await fsp.rm(tmpDir, { recursive: true, force: true });
    throw new Error(`temp dir path too long for a unix socket: ${tmpDir} (set TMPDIR to something shorter)`);
  }

  let lab: LabImpl;
  try {
    lab = new LabImpl(id, tmpDir, subnet, opts, release, fwRoot);
  } catch (e) {
    await fsp.rm(tmpDir, { recursive: true, force: true });
    throw e;
  }
  guard(lab);

  const t0 = Date.now();
  try {
    await lab.setupNetwork();
    await Promise.all([
      (async (): Promise<void> => {
        if (opts.firewalld ?? true) {
          await lab.startDbus();
          await lab.startFirewalld();
        }
      })(),
      (async (): Promise<void> => {
        if (opts.sshd ?? true) await lab.startSshd();
      })(),
    ]);
  } catch (e) {
    lab.log(`startLab failed: ${errMsg(e)}`);
    await lab.stop().catch(() => undefined);
    throw e;
  }
  lab.log(`startLab: ready in ${Date.now() - t0} ms`);
  return lab;
}
