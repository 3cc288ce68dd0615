/**
 * Command-line front end of the namespace lab, for humans debugging.
 *
 *   node dist/test/lab/cli.js up [--extra N] [--no-ipv6] [--no-sshd] [--no-firewalld] [--debug N] [--firewalld RELEASE]
 *       Build a lab, print it as JSON on stdout (plus ready-to-paste commands),
 *       keep it running until SIGINT/SIGTERM, then tear it down.
 *       A second Ctrl-C exits at once (the synchronous exit hook still cleans up).
 *   node dist/test/lab/cli.js cleanup
 *       Remove namespaces / temp dirs left by lab runs whose process is gone.
 *
 * --firewalld RELEASE runs that Debian release's firewalld (as KNLAB_FIREWALLD does; the
 * printed firewall-cmd lines use the host's client, which speaks the same D-Bus API).
 * Must run as root. Set KNLAB_KEEP_TMP=1 to keep the temp dir (logs) after stop.
 */

import { cleanupStale, startLab, type Lab, type LabOptions } from './lab';

const USAGE = `usage:
  node dist/test/lab/cli.js up [--extra N] [--no-ipv6] [--no-sshd] [--no-firewalld] [--debug N] [--firewalld RELEASE]
  node dist/test/lab/cli.js cleanup`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseUpArgs(args: string[]): LabOptions {
  const opts: LabOptions = {};
  const intArg = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 0) fail(`${name} needs a non-negative integer`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '--extra':
        opts.extraClientAddrs = intArg(a, args[++i]);
        break;
      case '--no-ipv6':
        opts.ipv6 = false;
        break;
      case '--no-sshd':
        opts.sshd = false;
        break;
      case '--no-firewalld':
        opts.firewalld = false;
        break;
      case '--debug':
        opts.firewalldDebug = intArg(a, args[++i]);
        break;
      case '--firewalld':
        opts.firewalldRelease =
          args[++i] ?? fail('--firewalld needs a release (host, bullseye, bookworm, trixie, sid)');
        break;
      default:
        fail(`unknown option ${String(a)}`);
    }
  }
  return opts;
}

/** The lab as plain JSON, plus copy-paste commands for poking at it. */
function describeLab(lab: Lab): Record<string, unknown> {
  const inS = `ip netns exec ${lab.serverNs}`;
  const inC = `ip netns exec ${lab.clientNs}`;
  const fwc = lab.busAddress ? `${inS} env DBUS_SYSTEM_BUS_ADDRESS=${lab.busAddress} firewall-cmd` : null;
  return {
    id: lab.id,
    tmpDir: lab.tmpDir,
    serverNs: lab.serverNs,
    clientNs: lab.clientNs,
    serverIf: lab.serverIf,
    clientIf: lab.clientIf,
    serverAddr: lab.serverAddr,
    clientAddr: lab.clientAddr,
    serverAddr6: lab.serverAddr6,
    clientAddr6: lab.clientAddr6,
    extraClientAddrs: lab.extraClientAddrs,
    busAddress: lab.busAddress,
    firewalld: `${lab.firewalldVersion} (${lab.firewalldRelease})`,
    logs: lab.tmpDir,
    try: {
      firewallState: fwc ? `${fwc} --state` : null,
      listAll: fwc ? `${fwc} --zone=public --list-all` : null,
      allowClient: fwc
        ? `${fwc} --zone=public --add-rich-rule='rule family="ipv4" source address="${lab.clientAddr}" service name="ssh" accept' --timeout=30`
        : null,
      banner: `${inC} nc -w2 ${lab.serverAddr} 22`,
      knock: `${inC} knock -v ${lab.serverAddr} 7000 8000 9000`,
      serverShell: `${inS} bash`,
      clientShell: `${inC} bash`,
      capture: `${inS} tcpdump -ni ${lab.serverIf}`,
    },
  };
}

async function up(args: string[]): Promise<void> {
  const opts = parseUpArgs(args);
  let lab: Lab | undefined;
  let stopRequested = false;
  let stopping = false;

  const shutdown = (sig: NodeJS.Signals): void => {
    if (stopping || (stopRequested && !lab)) {
      // Second signal: give up waiting; the lab's exit hook cleans up synchronously.
      process.stderr.write(`\n${sig} again – exiting now\n`);
      process.exit(130);
    }
    stopRequested = true;
    if (!lab) {
      process.stderr.write(`\n${sig}: will stop as soon as the lab is up\n`);
      return;
    }
    stopping = true;
    process.stderr.write(`\n${sig}: stopping lab ${lab.id}…\n`);
    const t0 = Date.now();
    lab.stop().then(
      () => {
        process.stderr.write(`lab stopped in ${Date.now() - t0} ms\n`);
        process.exit(0);
      },
      (e: unknown) => {
        process.stderr.write(`stop failed: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
      },
    );
  };
  // Installed before startLab so that Ctrl-C during startup is handled too.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, shutdown);

  const t0 = Date.now();
  process.stderr.write('starting lab…\n');
  lab = await startLab(opts);
  process.stderr.write(`lab ${lab.id} up in ${Date.now() - t0} ms; Ctrl-C to stop\n`);
  process.stdout.write(`${JSON.stringify(describeLab(lab), null, 2)}\n`);
  if (stopRequested) {
    shutdown('SIGINT');
    return;
  }
  // The lab's processes are unref'd; keep the CLI alive until a signal.
  setInterval(() => undefined, 1 << 30);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'up':
      await up(rest);
      break;
    case 'cleanup':
      await cleanupStale();
      process.stderr.write('stale lab namespaces and temp dirs removed\n');
      break;
    default:
      fail(cmd === undefined ? 'missing command' : `unknown command ${cmd}`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
