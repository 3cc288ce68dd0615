/**
 * `knockd` command line: knockd 0.8's flags, plus --check (which prints the
 * daemon's bounds), --status, and the options that name those bounds and the
 * state directory. Foreground by default (what systemd wants); -d detaches.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatIssue, loadConfig } from '../config/parse';
import { spaClientConfig } from '../config/spa';
import { firewalldWarnings } from '../firewalld/check';
import { lockoutWarnings } from '../firewalld/lockout';
import { lockoutConfigWarnings } from '../config/lockout';
import { FirewalldClient } from '../firewalld/client';
import type { Config, ConfigIssue } from '../config/types';
import { Daemon, StartupError } from '../daemon/daemon';
import { removePidFile, writePidFile } from '../state/pidfile';
import { createLogger, type LogFormat } from '../daemon/log';
import { formatStatus, queryStatus } from '../daemon/status';
import { withTimeout } from '../util/timers';
import { DEFAULT_MAX_ATTEMPTS } from '../matcher/matcher';
import { DEFAULT_RING_MB } from '../capture/protocol';
import { chooseInterface } from '../capture/default-iface';
import { DEFAULT_MAX_PENDING_COMMANDS } from '../daemon/commands';
import { DEFAULT_MAX_GRANTS } from '../firewalld/grants';
import { DEFAULT_MAX_FIREWALLD_CALLS } from '../firewalld/limiter';
import { BURST_SECONDS, DEFAULT_MAX_COMPLETIONS } from '../daemon/completions';
import { DEFAULT_EVENT_LOG_PER_SECOND } from '../daemon/event-log';

export const VERSION: string = (
  JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }
).version;

const USAGE = `usage: knockd [options]
options:
  -i, --interface <int>  network interface(s) to listen on: eno1, eno1,eno2 or any
                         (default "eth0", else the default route's)
  -c, --config <file>    use an alternate config file (default /etc/knockd.conf)
  -d, --daemon           run as a daemon (detach; writes the pid file)
  -D, --debug            output debug messages
  -l, --lookup           lookup DNS names for the log (never delays knocks)
  -v, --verbose          be verbose
  -4, --only-ip-v4       ignore packets from IPv6 sources
  -p, --pidfile <file>   use an alternate pidfile (default /var/run/knockd.pid)
  -g, --logfile <file>   use an alternate logfile
      --status           show the running daemon's doors and the grants it holds (address, door, zone, rule, time left)
      --check            parse and validate the config, print every problem, exit 1 if any error
      --log-format <f>   text (knockd-style lines, default) or json (pino records)
      --max-attempts <n> bound on knock attempts in flight (default ${DEFAULT_MAX_ATTEMPTS})
      --max-completions <n>  completed sequences (and SPA packets) per door a second that reach
                         the firewall or the shell, bursts of 10x (default ${DEFAULT_MAX_COMPLETIONS})
      --max-pending-commands <n>  bound on stop commands waiting plus commands running (default ${DEFAULT_MAX_PENDING_COMMANDS})
      --max-grants <n>   bound on firewalld rules held at once (default ${DEFAULT_MAX_GRANTS})
      --capture-buffer <MiB>  libpcap ring (default ${DEFAULT_RING_MB}, ~3100 packets/MiB); larger rides out longer stalls, costs RSS
      --state-dir <dir>  where pending stop commands and held grants survive restarts (default /run/knockd)
  -V, --version          display version
  -h, --help             this help
`;

interface Cli {
  iface?: string;
  config: string;
  daemon: boolean;
  debug: boolean;
  verbose: boolean;
  lookup: boolean;
  ipv4Only: boolean;
  pidFile?: string;
  logFile?: string;
  check: boolean;
  status: boolean;
  logFormat: LogFormat;
  maxAttempts: number;
  maxCompletions: number;
  maxPendingCommands: number;
  maxGrants: number;
  stateDir: string;
  captureBufferMB: number;
}

function parseCli(argv: string[]): Cli | 'help' | 'version' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      interface: { type: 'string', short: 'i' },
      config: { type: 'string', short: 'c' },
      daemon: { type: 'boolean', short: 'd' },
      debug: { type: 'boolean', short: 'D' },
      verbose: { type: 'boolean', short: 'v' },
      lookup: { type: 'boolean', short: 'l' },
      'only-ip-v4': { type: 'boolean', short: '4' },
      pidfile: { type: 'string', short: 'p' },
      logfile: { type: 'string', short: 'g' },
      check: { type: 'boolean' },
      status: { type: 'boolean' },
      'log-format': { type: 'string' },
      'max-attempts': { type: 'string' },
      'max-completions': { type: 'string' },
      'max-pending-commands': { type: 'string' },
      'max-grants': { type: 'string' },
      'state-dir': { type: 'string' },
      'capture-buffer': { type: 'string' },
      version: { type: 'boolean', short: 'V' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals.length) throw new Error(`unexpected argument "${positionals[0]}"`);
  const fmt = values['log-format'] ?? 'text';
  if (fmt !== 'text' && fmt !== 'json') throw new Error(`--log-format must be text or json, not "${fmt}"`);
  const max = values['max-attempts'] !== undefined ? Number(values['max-attempts']) : DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(max) || max < 1)
    throw new Error(`--max-attempts must be a positive integer, not "${values['max-attempts']}"`);
  const positive = (name: 'max-completions' | 'max-pending-commands' | 'max-grants', dflt: number): number => {
    const v = values[name] !== undefined ? Number(values[name]) : dflt;
    if (!Number.isInteger(v) || v < 1 || v > 1_000_000)
      throw new Error(`--${name} must be a whole number from 1 to 1000000, not "${values[name]}"`);
    return v;
  };
  const maxCompletions = positive('max-completions', DEFAULT_MAX_COMPLETIONS);
  const maxPendingCommands = positive('max-pending-commands', DEFAULT_MAX_PENDING_COMMANDS);
  const maxGrants = positive('max-grants', DEFAULT_MAX_GRANTS);
  const ring = values['capture-buffer'] !== undefined ? Number(values['capture-buffer']) : DEFAULT_RING_MB;
  if (!Number.isInteger(ring) || ring < 1 || ring > 4096)
    throw new Error(`--capture-buffer must be a whole number of MiB from 1 to 4096, not "${values['capture-buffer']}"`);
  return {
    iface: values.interface,
    config: values.config ?? '/etc/knockd.conf',
    daemon: values.daemon ?? false,
    debug: values.debug ?? false,
    verbose: values.verbose ?? false,
    lookup: values.lookup ?? false,
    ipv4Only: values['only-ip-v4'] ?? false,
    pidFile: values.pidfile,
    logFile: values.logfile,
    check: values.check ?? false,
    status: values.status ?? false,
    logFormat: fmt,
    maxAttempts: max,
    maxCompletions,
    maxPendingCommands,
    maxGrants,
    stateDir: values['state-dir'] ?? '/run/knockd',
    captureBufferMB: ring,
  };
}

async function readConfig(path: string, showWarnings: boolean): Promise<Config | undefined> {
  const res = await loadConfig(path);
  for (const e of res.errors) process.stderr.write(`${formatIssue(e)}\n`);
  if (showWarnings) for (const w of res.warnings) process.stderr.write(`${formatIssue(w)}\n`);
  return res.errors.length ? undefined : res.config;
}

/**
 * -d: start a detached copy of ourselves, and return. The copy gets the very
 * same arguments (`-d -ibond0`, `-dv` reach it unchanged); KNOCKD_DETACHED
 * tells it not to detach again.
 */
function detach(argv: string[]): void {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, KNOCKD_DETACHED: '1' },
  });
  child.unref();
}

export async function main(argv: string[]): Promise<number> {
  let cli: Cli | 'help' | 'version';
  try {
    cli = parseCli(argv);
  } catch (err) {
    process.stderr.write(`knockd: ${(err as Error).message}\n${USAGE}`);
    return 1;
  }
  if (cli === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (cli === 'version') {
    process.stdout.write(`knockd ${VERSION} (firewalld edition, knockd 0.8 compatible)\n`);
    return 0;
  }

  if (cli.status) {
    try {
      process.stdout.write(formatStatus(await queryStatus()));
      return 0;
    } catch (err) {
      process.stderr.write(
        `knockd: cannot get the status of the running daemon: ${(err as Error).message} (is knockd running? "systemctl status knockd")\n`,
      );
      return 1;
    }
  }

  if (cli.check) {
    const res = await loadConfig(cli.config);
    if (res.config) {
      // With firewalld reachable, also check the config against it (zones, services, knock ports it opens).
      const fw = new FirewalldClient();
      let up = false;
      try {
        up = await withTimeout(fw.probe(), 3000);
        if (up) res.warnings.push(...(await withTimeout(firewalldWarnings(res.config, fw), 5000)));
      } catch {
        /* no system bus or no firewalld: the file-only checks are all we can do */
      }
      // Lock-out safety (src/firewalld/lockout.ts): the config-only part always, firewalld's when it answers.
      res.warnings.push(
        ...(await withTimeout(lockoutWarnings(res.config, up ? fw : undefined), 10_000).catch(() =>
          lockoutConfigWarnings(res.config!),
        )),
      );
      fw.close();
    }
    for (const i of [...res.errors, ...res.warnings].sort((a, b) => a.line - b.line))
      process.stdout.write(`${formatIssue(i)}\n`);
    if (res.errors.length) {
      process.stdout.write(`${cli.config}: ${res.errors.length} error(s), ${res.warnings.length} warning(s)\n`);
      return 1;
    }
    for (const d of res.config!.doors) {
      if (d.spa === undefined) continue;
      // The client side of each SPA door; the keys stay in knockd.conf (placeholders name the directives).
      const c = spaClientConfig(d.spa);
      process.stdout.write(
        `\n${d.name}: ${c.commandLine}\n${d.name}: or, in ~/.fwknoprc (then "fwknop -n ${d.name}"):\n${c.fwknoprc}`,
      );
    }
    process.stdout.write(
      `bounds: --max-completions ${cli.maxCompletions} a second per door (bursts of ${cli.maxCompletions * BURST_SECONDS}), ` +
        `--max-pending-commands ${cli.maxPendingCommands}, --max-grants ${cli.maxGrants}, ` +
        `firewalld calls in flight ${DEFAULT_MAX_FIREWALLD_CALLS}, --max-attempts ${cli.maxAttempts}, ` +
        `daemon log budget ${DEFAULT_EVENT_LOG_PER_SECOND} stage/timeout/wrong-knock lines a second\n`,
    );
    process.stdout.write(`${cli.config}: OK, ${res.config!.doors.length} door(s), ${res.warnings.length} warning(s)\n`);
    return 0;
  }

  const config = await readConfig(cli.config, false);
  if (!config) {
    process.stderr.write(`knockd: ${cli.config} has errors; not starting (run "knockd --check -c ${cli.config}")\n`);
    return 1;
  }
  if (cli.daemon && process.env.KNOCKD_DETACHED !== '1') {
    detach(argv);
    return 0;
  }

  const choice = chooseInterface(cli.iface ?? config.options.interface);
  const iface = choice.iface;
  const logFile = cli.logFile ?? config.options.logFile;
  const log = createLogger({
    level: cli.debug ? 'debug' : 'info',
    format: cli.logFormat,
    ...(logFile ? { logFile } : {}),
    console: process.env.KNOCKD_DETACHED === '1' ? 'none' : 'stdout',
    syslog: config.options.useSyslog,
    ...(process.env.KNOCKD_SYSLOG_SOCKET ? { syslogSocket: process.env.KNOCKD_SYSLOG_SOCKET } : {}),
  });
  const logger = log.logger;
  for (const w of config.warnings) logger.warn(issueForLog(w));
  if (choice.note !== undefined) (choice.warn ? logger.warn : logger.info).call(logger, choice.note);

  const daemon = new Daemon(
    config,
    {
      iface,
      ipv4Only: cli.ipv4Only,
      lookup: cli.lookup,
      maxAttempts: cli.maxAttempts,
      maxCompletions: cli.maxCompletions,
      maxPendingCommands: cli.maxPendingCommands,
      maxGrants: cli.maxGrants,
      stateDir: cli.stateDir,
      version: VERSION,
      captureBufferMB: cli.captureBufferMB,
    },
    logger,
  );
  const pidFile = cli.pidFile ?? config.options.pidFile ?? (cli.daemon ? '/var/run/knockd.pid' : undefined);

  // Signal handlers go in before start-up, so a signal that arrives early never kills us with the default action.
  let started = false;
  let stopping = false;
  const shutdown = async (sig: string): Promise<void> => {
    if (stopping) {
      // A second signal while a stop hangs (a stop command that does not end, firewalld not answering): exit now.
      // What was not finished stays in the state files for the next start.
      logger.warn(
        `${sig} again while shutting down: exiting now; unfinished work stays in ${cli.stateDir} for the next start`,
      );
      log.flush();
      process.exit(1);
    }
    stopping = true;
    if (!started) {
      // Nothing is open yet that a clean stop would close (pending stop commands stay in the state file).
      logger.info(`${sig} during start-up: exiting`);
      log.flush();
      process.exit(0);
    }
    logger.info(`waiting for child processes... (${sig})`);
    await daemon.stop();
    logger.info('shutting down');
    if (pidFile) await removePidFile(pidFile).catch(() => undefined); // only if it is still ours
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGUSR1', () => {
    log.reopen();
    logger.info('log file reopened (SIGUSR1)');
  });
  process.on('SIGHUP', () => {
    log.reopen();
    if (!started) {
      logger.info('SIGHUP during start-up: the config was just read; nothing to reload');
      return;
    }
    logger.info(`re-reading config file: ${cli.config}`);
    // One reload at a time, and the file is read when its turn comes: after a burst of
    // SIGHUPs the config running is the one on disk at the last signal.
    reloadWanted = true;
    if (!reloading) reloading = reloadLoop().finally(() => (reloading = undefined));
  });
  let reloadWanted = false;
  let reloading: Promise<void> | undefined;
  const reloadLoop = async (): Promise<void> => {
    while (reloadWanted && !stopping) {
      reloadWanted = false;
      const res = await loadConfig(cli.config);
      if (res.errors.length || !res.config) {
        for (const e of res.errors) logger.error(`reload refused, keeping the running config: ${issueForLog(e)}`);
        continue;
      }
      for (const w of res.warnings) logger.warn(issueForLog(w));
      try {
        await daemon.reload(res.config);
      } catch (err) {
        logger.error(`reload refused, keeping the running config: ${(err as Error).message}`);
      }
    }
  };

  try {
    await daemon.start();
  } catch (err) {
    const msg = err instanceof StartupError ? err.message : ((err as Error).stack ?? String(err));
    logger.fatal(`not starting: ${msg}`);
    log.flush();
    await daemon.stop().catch(() => undefined);
    return 1;
  }
  started = true;

  if (pidFile) {
    try {
      await writePidFile(pidFile); // never through a symlink or hard link at the path (state/pidfile.ts)
    } catch (err) {
      logger.warn(`could not create pid file ${pidFile}: ${(err as Error).message}`);
    }
  }
  return -1; // keep running
}

/** A config issue as a log line (the log line carries the level itself). */
function issueForLog(i: ConfigIssue): string {
  return formatIssue(i).replace(/: (warning|error): /, ': ');
}

/** Entry point for bin/knockd. */
export function run(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      // Exit now: a failed start may leave a D-Bus socket or timer behind that would keep us alive.
      // (stdout/stderr are synchronous for files and pipes on Linux, so nothing is lost.)
      if (code >= 0) process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`knockd: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) run();
