/**
 * The firewalld version matrix: which firewalld a lab runs, and the cached
 * Debian root that holds it.
 *
 * `KNLAB_FIREWALLD` (or LabOptions.firewalld_release) names a Debian release:
 * bullseye (firewalld 0.9.3), bookworm (1.3.3), trixie (2.3.1) or sid
 * (2.5.x); unset or "host" means the host's own firewalld. "bookworm" is the
 * host's firewalld when the host is Debian 12, else a root like the others.
 *
 * A root is built once by test/lab/fw-root.sh (debootstrap + that release's
 * firewalld, nftables, python, dbus policy) and cached in
 * /var/cache/knockd-test/fwroot-<release>-<first 12 hex of sha256 of
 * fw-root.sh>: a change to the script makes a new one. A build holds
 * `flock <dest>.lock` and renames a finished tree into place, so concurrent
 * labs neither build a root twice nor see half of one. A root that cannot be
 * built is an error (the lab fails, it never falls back to the host's).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CACHE_DIR, debianMirror } from './nspawn';

const execFileP = promisify(execFile);
const REPO = resolve(__dirname, '..', '..', '..');
export const FW_ROOT_SCRIPT = join(REPO, 'test', 'lab', 'fw-root.sh');
/** Runs a command chrooted into a root, inside a private mount namespace. */
export const FW_CHROOT_SCRIPT = join(REPO, 'test', 'lab', 'fw-chroot.sh');

export const RELEASES = ['bullseye', 'bookworm', 'trixie', 'sid'] as const;
export type Release = (typeof RELEASES)[number];
/** What a lab runs: the host's firewalld, or a release root's. */
export type FirewalldChoice = Release | 'host';

/** Build time limit of one root (debootstrap + apt over the network). */
const BUILD_TIMEOUT_MS = 30 * 60_000;

/** The choice from an option or KNLAB_FIREWALLD; unset or empty = host. Throws on an unknown name. */
export function firewalldChoice(opt: string | undefined = process.env.KNLAB_FIREWALLD): FirewalldChoice {
  const v = (opt ?? '').trim();
  if (v === '' || v === 'host') return 'host';
  if ((RELEASES as readonly string[]).includes(v)) return v as Release;
  throw new Error(`KNLAB_FIREWALLD=${v}: expected one of host, ${RELEASES.join(', ')}`);
}

/** The host's Debian codename (VERSION_CODENAME of /etc/os-release), or '' elsewhere. */
function hostCodename(): string {
  try {
    return /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** Release roots are needed for every choice but the host's own (bookworm on a Debian 12 host). */
export function needsRoot(choice: FirewalldChoice): choice is Release {
  if (choice === 'host') return false;
  return !(choice === 'bookworm' && hostCodename() === 'bookworm');
}

/** The cache path of a release's root (it may not exist yet). */
export function fwRootPath(release: Release): string {
  const hash = createHash('sha256').update(readFileSync(FW_ROOT_SCRIPT)).digest('hex').slice(0, 12);
  return join(CACHE_DIR, `fwroot-${release}-${hash}`);
}

export interface FwRoot {
  release: Release;
  path: string;
  /** firewalld's version as its python package states it (written at build time). */
  version: string;
  /** Seconds spent building it in this call (0 when it was cached). */
  builtSeconds: number;
}

const versionFile = (p: string): string => join(p, '.knlab-firewalld-version');

/** The cached root of `release`, built (under its lock) when missing. Throws when it cannot be built. */
export async function ensureFwRoot(release: Release): Promise<FwRoot> {
  const path = fwRootPath(release);
  const ready = (): boolean => existsSync(versionFile(path));
  const t0 = Date.now();
  const built = !ready();
  if (built) {
    await mkdir(CACHE_DIR, { recursive: true });
    const mirror = debianMirror();
    const script = `[ -f "$1/.knlab-firewalld-version" ] || bash "$2" "$3" "$1" "$4"`;
    let out = '';
    try {
      const r = await execFileP(
        'flock',
        [`${path}.lock`, 'bash', '-c', script, 'build', path, FW_ROOT_SCRIPT, release, mirror],
        { maxBuffer: 256 * 1024 * 1024, timeout: BUILD_TIMEOUT_MS },
      );
      out = `${r.stdout}\n${r.stderr}`;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      out = `${e.message}\n${(e.stdout ?? '').slice(-3000)}\n${(e.stderr ?? '').slice(-3000)}`;
    }
    if (!ready()) {
      throw new Error(
        `building the firewalld root of ${release} (${path}) from ${mirror} failed:\n${out.slice(-6000)}`,
      );
    }
  }
  const version = readFileSync(versionFile(path), 'utf8').trim();
  return { release, path, version, builtSeconds: built ? (Date.now() - t0) / 1000 : 0 };
}

/**
 * The D-Bus policy directories of a root (firewalld's FirewallD.conf is in
 * usr/share/dbus-1/system.d from 1.x, etc/dbus-1/system.d in 0.9).
 */
export function rootPolicyDirs(root: string): string[] {
  return ['usr/share/dbus-1/system.d', 'etc/dbus-1/system.d'].map((d) => join(root, d)).filter((d) => existsSync(d));
}
