/**
 * `knock` command line: the port-knock client, a replacement for knock 0.8.
 *
 *   knock [options] <host> <port[:proto]> [port[:proto]] ...
 *
 * For every port, in order, the host is resolved (as knock 0.8 does, once
 * per hit) and one "hit" is sent:
 *
 *   - TCP: a single non-blocking connection attempt that is abandoned at
 *     once, i.e. exactly one SYN on the wire and no retransmission;
 *   - UDP: one datagram carrying a single zero byte.
 *
 * Options, messages and exit codes follow knock 0.8 (usage on stdout and
 * exit 1 for -h and for bad usage, version on stdout and exit 0 for -V),
 * except that ports and delays are validated strictly, and all of them
 * before the first hit, so a typo never sends half a sequence, and that
 * -4 with -6 (`-46`, or `--both`) knocks over both address families: every
 * hit goes to the host's first IPv4 address, then to its first IPv6 address
 * (knock 0.8: the last of -4/-6 wins). A server opens a door for the address
 * that knocked, so a client that knocks over IPv4 and then connects over IPv6
 * (its resolver prefers AAAA) finds the door shut; knocking over both opens
 * it for both. A family the host has no address of is skipped with one
 * warning on stderr; if it has neither, knock fails as for one family.
 */
import * as dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { ResolveError, resolveHost, type LookupFn } from './knock-resolve';

export const VERSION: string = (
  JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }
).version;

/** Same text as knock 0.8's usage(). */
export const USAGE = `usage: knock [options] <host> <port[:proto]> [port[:proto]] ...
options:
  -u, --udp            make all ports hits use UDP (default is TCP)
  -d, --delay <t>      wait <t> milliseconds between port hits
  -4, --ipv4           Force usage of IPv4
  -6, --ipv6           Force usage of IPv6
  -46, --both          knock over IPv4 and IPv6 (each hit to both addresses)
  -v, --verbose        be verbose
  -V, --version        display version
  -h, --help           this help

example:  knock myserver.example.com 123:tcp 456:udp 789:tcp

`;

/** Where main() writes; process.stdout/stderr by default. */
export interface KnockIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  /** Name resolution (default: node:dns/promises lookup(), i.e. getaddrinfo); tests pass their own. */
  lookup?: LookupFn;
}

export type { LookupFn } from './knock-resolve';

export type Proto = 'tcp' | 'udp';

/** One parsed `port[:proto]` argument. */
export interface PortSpec {
  port: number;
  proto: Proto;
}

/** Address family for resolution: 0 = any (AF_UNSPEC), 4 or 6; 46 = both, each hit sent over each. */
export type Family = 0 | 4 | 6 | 46;

export interface KnockOptions {
  verbose: boolean;
  /** -u: every hit is UDP, whatever its `:proto` suffix says. */
  udp: boolean;
  /** Milliseconds to wait between hits. */
  delayMs: number;
  family: Family;
  host: string;
  ports: PortSpec[];
}

/**
 * Parse one `port[:proto]` argument. Like knock 0.8 the text is split at the
 * first ':'; a suffix of exactly "udp" means UDP and anything else (including
 * "tcp", "" or "foo") means TCP. Unlike knock 0.8 (which lets getaddrinfo
 * interpret the port, so service names and values above 65535 slip through),
 * the port must be a decimal number from 1 to 65535. Throws an Error with a
 * user-facing message otherwise.
 */
export function parsePortSpec(spec: string): PortSpec {
  const colon = spec.indexOf(':');
  const portText = colon >= 0 ? spec.slice(0, colon) : spec;
  const proto: Proto = colon >= 0 && spec.slice(colon + 1) === 'udp' ? 'udp' : 'tcp';
  const port = /^[0-9]+$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(
      `error: invalid port '${portText}' in '${spec}' (expected N, N:tcp or N:udp with N from 1 to 65535)`,
    );
  }
  return { port, proto };
}

// ---------------------------------------------------------------------------
// Command line parsing (GNU getopt_long semantics, as knock 0.8 uses)
// ---------------------------------------------------------------------------

/** The result of parsing argv: what main() must do next. */
export type ParsedArgs =
  | { kind: 'run'; options: KnockOptions }
  /** Print USAGE to stdout and exit 1; `error` (if any) goes to stderr first. */
  | { kind: 'usage'; error?: string }
  | { kind: 'version' }
  /** Print `message` to stderr and exit 1. */
  | { kind: 'error'; message: string };

interface OptionDef {
  long: string;
  short: string;
  hasArg: boolean;
}

/** knock 0.8's option table ("vud:hV46"). */
const OPTIONS: readonly OptionDef[] = [
  { long: 'verbose', short: 'v', hasArg: false },
  { long: 'udp', short: 'u', hasArg: false },
  { long: 'delay', short: 'd', hasArg: true },
  { long: 'help', short: 'h', hasArg: false },
  { long: 'version', short: 'V', hasArg: false },
  { long: 'ipv4', short: '4', hasArg: false },
  { long: 'ipv6', short: '6', hasArg: false },
  /** No short letter of its own: `-46`. */
  { long: 'both', short: 'b', hasArg: false },
];

/** Largest delay setTimeout() honours (2^31 - 1 ms, about 24.8 days). */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * Parse knock's command line. Options and operands may be mixed (GNU
 * permutation), `--` ends the options, short options may be bundled (`-vu`),
 * `-d` takes its value attached (`-d100`) or as the next argument (even one
 * starting with '-', so `-d -5` reaches the negative-delay check), long
 * options may be abbreviated to any unique prefix and take `--delay=N` or
 * `--delay N`. As in knock 0.8, -V and -h act as soon as they are met.
 */
export function parseKnockArgs(argv: readonly string[]): ParsedArgs {
  let verbose = false;
  let udp = false;
  let v4 = false;
  let v6 = false;
  let delayText: string | undefined;
  const operands: string[] = [];

  // Apply one recognised option; returns a ParsedArgs to stop parsing.
  const apply = (short: string, value: string | undefined): ParsedArgs | undefined => {
    switch (short) {
      case 'v':
        verbose = true;
        break;
      case 'u':
        udp = true;
        break;
      case 'd':
        delayText = value;
        break;
      case '4':
        v4 = true;
        break;
      case '6':
        v6 = true;
        break;
      case 'b':
        v4 = v6 = true;
        break;
      case 'V':
        return { kind: 'version' };
      case 'h':
        return { kind: 'usage' };
    }
    return undefined;
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq >= 0 ? eq : undefined);
      const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      const exact = OPTIONS.find((o) => o.long === name);
      const candidates = exact ? [exact] : OPTIONS.filter((o) => o.long.startsWith(name));
      if (candidates.length === 0) return { kind: 'usage', error: `knock: unrecognized option '--${name}'` };
      if (candidates.length > 1) {
        return {
          kind: 'usage',
          error: `knock: option '--${name}' is ambiguous; possibilities: ${candidates.map((o) => `'--${o.long}'`).join(' ')}`,
        };
      }
      const opt = candidates[0];
      let value: string | undefined;
      if (opt.hasArg) {
        value = inline ?? argv[++i];
        if (value === undefined) return { kind: 'usage', error: `knock: option '--${opt.long}' requires an argument` };
      } else if (inline !== undefined) {
        return { kind: 'usage', error: `knock: option '--${opt.long}' doesn't allow an argument` };
      }
      const stop = apply(opt.short, value);
      if (stop) return stop;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      // A bundle of short options: -vu, -vd100, -d 100 ...
      for (let j = 1; j < arg.length; j++) {
        const ch = arg[j];
        const opt = ch === 'b' ? undefined : OPTIONS.find((o) => o.short === ch);
        if (!opt) return { kind: 'usage', error: `knock: invalid option -- '${ch}'` };
        let value: string | undefined;
        if (opt.hasArg) {
          value = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
          if (value === undefined) return { kind: 'usage', error: `knock: option requires an argument -- '${ch}'` };
          j = arg.length; // the rest of the bundle was the value
        }
        const stop = apply(ch, value);
        if (stop) return stop;
      }
      continue;
    }
    operands.push(arg);
  }

  // knock 0.8 order: too few operands → usage; then the delay check.
  if (operands.length < 2) return { kind: 'usage' };
  let delayMs = 0;
  if (delayText !== undefined) {
    if (!/^\s*[+-]?[0-9]+$/.test(delayText))
      return { kind: 'error', message: `error: invalid delay '${delayText}' (expected milliseconds)` };
    delayMs = Number(delayText);
    if (delayMs < 0) return { kind: 'error', message: 'error: delay cannot be negative' };
    if (delayMs > MAX_DELAY_MS)
      return { kind: 'error', message: `error: delay too large (at most ${MAX_DELAY_MS} ms)` };
  }
  const [host, ...portArgs] = operands as [string, ...string[]];
  const ports: PortSpec[] = [];
  for (const p of portArgs) {
    try {
      ports.push(parsePortSpec(p));
    } catch (err) {
      return { kind: 'error', message: (err as Error).message };
    }
  }
  const family: Family = v4 && v6 ? 46 : v4 ? 4 : v6 ? 6 : 0;
  return { kind: 'run', options: { verbose, udp, delayMs, family, host, ports } };
}

// ---------------------------------------------------------------------------
// Hits
// ---------------------------------------------------------------------------

/**
 * One TCP hit: start a connection and abandon it at once, like knock 0.8's
 * non-blocking connect() + close(). With a numeric host, net.connect()
 * issues the connect() system call from process.nextTick (no DNS step), so by
 * the time the setImmediate() callback runs the kernel has sent the SYN; the
 * socket is then closed while still in SYN-SENT, so nothing is retransmitted
 * (and a SYN-ACK that may arrive later is answered with RST by the kernel).
 * Errors (refused, unreachable...) are ignored, as knock 0.8 ignores connect().
 */
function hitTcp(address: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    socket.on('error', () => {
      /* ECONNREFUSED etc.: a knock expects no answer */
    });
    setImmediate(() => {
      socket.destroy();
      resolve();
    });
  });
}

/**
 * One UDP hit: a single datagram holding one zero byte (knock 0.8 sends
 * `sendto(sd, "", 1, ...)`, i.e. the string's terminating NUL). Send errors
 * are ignored, as knock 0.8 ignores sendto()'s result.
 */
function hitUdp(address: string, family: 4 | 6, port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    socket.on('error', () => {
      /* bind/send failure: ignored like knock 0.8 */
    });
    socket.send(Buffer.from([0]), port, address, () => {
      socket.close();
      resolve();
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The addresses one hit goes to: one for a single family (or any); with both
 * families, the host's IPv4 and IPv6 address, a family it has none of being
 * left out (reported through `missing`, once per family). Throws the IPv4
 * ResolveError when neither resolves.
 */
async function hitAddresses(
  host: string,
  family: Family,
  port: number,
  resolve: LookupFn,
  missing: (family: 4 | 6, why: string) => void,
): Promise<{ address: string; family: 4 | 6 }[]> {
  if (family !== 46) return [await resolveHost(host, family, port, resolve)];
  const [r4, r6] = await Promise.allSettled([resolveHost(host, 4, port, resolve), resolveHost(host, 6, port, resolve)]);
  const out: { address: string; family: 4 | 6 }[] = [];
  for (const r of [r4, r6]) {
    if (r.status === 'fulfilled') out.push(r.value);
    else if (!(r.reason instanceof ResolveError)) throw r.reason;
  }
  if (out.length === 0) throw (r4 as PromiseRejectedResult).reason;
  if (r4.status === 'rejected') missing(4, (r4.reason as Error).message.split('\n')[1] ?? '');
  if (r6.status === 'rejected') missing(6, (r6.reason as Error).message.split('\n')[1] ?? '');
  return out;
}

/** Send the whole sequence; resolves once the last hit has left. */
async function knock(o: KnockOptions, io: KnockIo): Promise<void> {
  const warned = new Set<4 | 6>();
  const missing = (f: 4 | 6, why: string): void => {
    if (warned.has(f)) return;
    warned.add(f);
    io.stderr.write(
      `knock: warning: '${o.host}' has no IPv${f} address (${why}); knocking over IPv${f === 4 ? 6 : 4} only\n`,
    );
  };
  for (let i = 0; i < o.ports.length; i++) {
    const { port, proto } = o.ports[i];
    const udp = o.udp || proto === 'udp';
    for (const { address, family } of await hitAddresses(o.host, o.family, port, io.lookup ?? lookup, missing)) {
      // knock 0.8 prints the numeric address as getnameinfo(NI_NUMERICHOST) does: IPv6 without brackets.
      if (o.verbose) io.stdout.write(`hitting ${udp ? 'udp' : 'tcp'} ${address}:${port}\n`);
      if (udp) await hitUdp(address, family, port);
      else await hitTcp(address, port);
    }
    // knock 0.8 also sleeps after the last hit; that changes nothing on the wire, so we don't.
    if (o.delayMs > 0 && i < o.ports.length - 1) await sleep(o.delayMs);
  }
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/** Run knock with `argv` (without node and script); resolves the exit code. */
export async function main(
  argv: string[],
  io: KnockIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const parsed = parseKnockArgs(argv);
  switch (parsed.kind) {
    case 'version':
      io.stdout.write(`knock ${VERSION} (firewalld edition, knock 0.8 compatible)\n`);
      return 0;
    case 'usage':
      if (parsed.error) io.stderr.write(`${parsed.error}\n`);
      io.stdout.write(USAGE);
      return 1;
    case 'error':
      io.stderr.write(`${parsed.message}\n`);
      return 1;
    case 'run':
      try {
        await knock(parsed.options, io);
      } catch (err) {
        if (!(err instanceof ResolveError)) throw err;
        io.stderr.write(`${err.message}\n`);
        return 1;
      }
      return 0;
  }
}

/** Entry point for bin/knock. */
export function run(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`knock: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

if (require.main === module) run();
