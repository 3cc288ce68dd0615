/**
 * OpenSSH's sshd in the lab's server namespace (a fresh host key per lab,
 * no config file), and the probe that reads its banner from a namespace.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { sleep, tailFile, type Procs } from './proc';
import type { SshBannerOptions } from './types';

export const SSHD = '/usr/sbin/sshd';
const SSHD_START_TIMEOUT_MS = 10_000;

/**
 * Probe run with `node -e` in the client namespace by sshBanner().
 * argv: host port source timeoutMs. Prints the first line and exits 0,
 * or prints an error code on stderr and exits non-zero.
 */
const BANNER_PROBE = `
const net = require('node:net');
const [host, port, source, timeout] = process.argv.slice(1);
const opts = { host, port: Number(port) };
if (source) opts.localAddress = source;
let buf = '';
const done = (line, code, why) => {
  if (line !== null) process.stdout.write(line);
  if (why) process.stderr.write(why);
  process.exit(code);
};
setTimeout(() => done(null, 2, 'TIMEOUT'), Number(timeout));
const sock = net.connect(opts);
sock.setEncoding('latin1');
sock.on('data', (d) => {
  buf += d;
  const i = buf.indexOf('\\n');
  if (i >= 0) done(buf.slice(0, i).replace(/\\r$/, ''), 0, '');
});
sock.on('error', (e) => done(null, 1, e.code || String(e)));
sock.on('end', () => done(null, 3, 'EOF:' + JSON.stringify(buf)));
`;

/** Start sshd on port 22 of `netns` and wait until it accepts connections. */
export async function startSshd(procs: Procs, netns: string, tmpDir: string, id: string, ipv6: boolean): Promise<void> {
  const key = path.join(tmpDir, 'hostkey');
  await procs.mustRun(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `knlab-${id}`, '-f', key]);
  await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // privilege-separation dir
  const argv = [SSHD, '-D', '-e', '-f', '/dev/null', '-h', key, '-o', 'PidFile=none', '-o', 'ListenAddress=0.0.0.0'];
  if (ipv6) argv.push('-o', 'ListenAddress=::');
  argv.push('-p', '22');
  const m = procs.start(netns, 'server', 'sshd', argv, path.join(tmpDir, 'sshd.log'));
  const t0 = Date.now();
  for (;;) {
    if (!procs.managed.has(m)) throw new Error(`sshd exited during startup\n--- sshd.log ---\n${tailFile(m.logFile)}`);
    const r = await procs.exec(netns, 'server', ['nc', '-z', '-w1', '127.0.0.1', '22'], { timeoutMs: 5_000 });
    if (r.code === 0) break;
    if (Date.now() - t0 > SSHD_START_TIMEOUT_MS) {
      throw new Error(
        `sshd not accepting on 127.0.0.1:22 after ${SSHD_START_TIMEOUT_MS} ms\n--- sshd.log ---\n${tailFile(m.logFile)}`,
      );
    }
    await sleep(100);
  }
  procs.log(`sshd accepting after ${Date.now() - t0} ms`);
}

/** The argv of the banner probe (run with this node) for sshBanner(). */
export function bannerProbeArgv(opts: SshBannerOptions, host: string, timeoutMs: number): string[] {
  return [process.execPath, '-e', BANNER_PROBE, host, String(opts.port ?? 22), opts.source ?? '', String(timeoutMs)];
}
