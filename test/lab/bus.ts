/**
 * The lab's private system bus: a dbus-daemon in the server namespace with a
 * system-type configuration and the running firewalld's bus policy.
 */
import type { Socket } from 'node:net';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errMsg, tailFile, type Managed, type Procs } from './proc';

const DBUS_START_TIMEOUT_MS = 10_000;

/**
 * A system-type bus configuration (dbus's own system.conf defaults: nobody may
 * own names or call methods unless a policy file says so), listening on
 * `sockPath` and reading policy files from `includeDirs`.
 * `rootMayDoAnything` adds what the lab needs: root (firewalld, the daemon under
 * test, firewall-cmd) may own any name and call anything.
 */
export function systemBusConfig(
  sockPath: string,
  opts: { includeDirs: string[]; rootMayDoAnything: boolean; extraListen?: string[] },
): string {
  const root = opts.rootMayDoAnything
    ? `
  <!-- root (firewalld, the daemon under test, firewall-cmd) may own any name and call anything -->
  <policy user="root">
    <allow own="*"/>
    <allow send_type="method_call"/>
  </policy>`
    : '';
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${sockPath}</listen>${(opts.extraListen ?? []).map((a) => `\n  <listen>${a}</listen>`).join('')}
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>${root}
${opts.includeDirs.map((d) => `  <includedir>${d}</includedir>`).join('\n')}
</busconfig>
`;
}

/**
 * The lab bus: the path socket everything but execAsNobody() uses, plus an
 * abstract socket (`abstract`), reachable only from inside the server network
 * namespace and with no file permissions, for the unprivileged local user.
 */
function busConfig(sockPath: string, abstract: string, includeDirs: string[]): string {
  return systemBusConfig(sockPath, {
    includeDirs,
    rootMayDoAnything: true,
    extraListen: [`unix:abstract=${abstract}`],
  });
}

export interface Bus {
  proc: Managed;
  /** unix:path=<tmpDir>/bus.sock */
  address: string;
}

/**
 * Start the bus in `netns` on <tmpDir>/bus.sock (and the abstract socket
 * `abstract`), reading the policy files of `policyDirs`; resolves once it listens.
 */
export async function startDbus(
  procs: Procs,
  netns: string,
  tmpDir: string,
  abstract: string,
  policyDirs: string[],
): Promise<Bus> {
  const sock = path.join(tmpDir, 'bus.sock');
  const conf = path.join(tmpDir, 'bus.conf');
  await fsp.writeFile(conf, busConfig(sock, abstract, policyDirs));
  await fsp.rm(sock, { force: true });
  const m = procs.start(
    netns,
    'server',
    'dbus-daemon',
    ['dbus-daemon', `--config-file=${conf}`, '--nofork', '--nopidfile', '--nosyslog', '--print-address=1'],
    path.join(tmpDir, 'dbus.log'),
    true,
  );
  const stdout = m.child.stdout;
  if (!stdout) throw new Error('dbus-daemon: no stdout pipe');
  // The first line on stdout is the bus address; it is printed once the
  // socket is listening, so it doubles as the readiness signal.
  const printed = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => finish(new Error(`dbus-daemon did not print its address within ${DBUS_START_TIMEOUT_MS} ms`)),
      DBUS_START_TIMEOUT_MS,
    );
    const onData = (d: string): void => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) finish(null, buf.slice(0, i).trim());
    };
    const onExit = (): void => finish(new Error('dbus-daemon exited during startup'));
    function finish(err: Error | null, line = ''): void {
      clearTimeout(timer);
      stdout?.off('data', onData);
      m.child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line);
    }
    stdout.setEncoding('utf8').on('data', onData);
    m.child.once('exit', onExit);
  }).catch((e: unknown) => {
    throw new Error(`${errMsg(e)}\n--- dbus.log ---\n${tailFile(m.logFile)}`);
  });
  // Keep draining (it prints nothing more) without holding the event loop.
  stdout.resume();
  (stdout as Socket).unref();
  procs.log(`dbus-daemon address: ${printed}`);
  return { proc: m, address: `unix:path=${sock}` };
}
