/**
 * The unprivileged account the capture process switches to once its packet
 * socket is open (worker.ts): `knockd`, the system user the RPM creates
 * (packaging/knockd.sysusers), or `nobody` when there is none (a checkout).
 * Read from /etc/passwd, where sysusers.d and useradd put system users.
 */
import { readFileSync } from 'node:fs';
import type { CaptureUser } from './protocol';

export const CAPTURE_USERS: readonly string[] = ['knockd', 'nobody'];

/** `name`'s uid and primary gid from passwd-format `text`, if it is there and not root. */
export function findUser(text: string, name: string): CaptureUser | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] !== name) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3]) || uid === 0 || gid === 0 || uid > 0xfffffffe || gid > 0xfffffffe)
      return undefined;
    return { name, uid, gid };
  }
  return undefined;
}

/** The first of CAPTURE_USERS in /etc/passwd; throws if none is. */
export function captureUser(passwd = '/etc/passwd'): CaptureUser {
  const text = readFileSync(passwd, 'utf8');
  for (const name of CAPTURE_USERS) {
    const u = findUser(text, name);
    if (u) return u;
  }
  throw new Error(
    `no unprivileged user for the capture process: neither ${CAPTURE_USERS.join(' nor ')} is in ${passwd}`,
  );
}
