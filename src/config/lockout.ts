/**
 * Lock-out safety, the part that needs only the config (issue #19, item 2):
 * doors that protect less than their author thinks. Each finding is a warning
 * with the line to change and the fix. `knockd --check` prints them and the
 * daemon logs them once at start (src/firewalld/lockout.ts adds what only
 * firewalld can tell: a service already open to everyone, iptables commands
 * on a firewalld host).
 *
 *  - a well-known example sequence (3333,4444,5555 and 6666,7777,8888 from the
 *    tutorials, 7000,8000,9000 from knockd's man page): the first sequences a
 *    scanner tries;
 *  - fewer than 3 knocks;
 *  - a firewall-cmd command line with --permanent: the rule survives reboots,
 *    reloads and Cmd_Timeout (it is run through the shell, never converted);
 *  - a door converted from IPv4 firewall-cmd lines that an IPv6 knock can
 *    complete: the IPv4 rule would be filled with an IPv6 address.
 */
import { COMMAND_KEYS } from './directives';
import type { Config, ConfigIssue, DoorConfig } from './types';

/** Sequences published in tutorials and knockd's man page, as port lists. */
export const EXAMPLE_SEQUENCES: readonly (readonly number[])[] = [
  [3333, 4444, 5555],
  [6666, 7777, 8888],
  [7000, 8000, 9000],
];
/** Fewer knocks than this are warned about. */
export const MIN_KNOCKS = 3;

const FIELD: Record<(typeof COMMAND_KEYS)[number], keyof DoorConfig> = {
  START_COMMAND: 'startCommand',
  START_COMMAND_6: 'startCommand6',
  STOP_COMMAND: 'stopCommand',
  STOP_COMMAND_6: 'stopCommand6',
};

/** The door's shell command directives that are written, as [canonical key, command]. */
export function doorCommands(d: DoorConfig): [string, string][] {
  return COMMAND_KEYS.flatMap((k) => {
    const v = d[FIELD[k]];
    return typeof v === 'string' && v !== '' ? [[k, v] as [string, string]] : [];
  });
}

/** A firewall-cmd invocation (also through sudo or a path) anywhere in a shell command. */
const FIREWALL_CMD = /(?:^|[\s;&|/(`])firewall-cmd(?=\s)/;

export function lockoutConfigWarnings(config: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const warn = (d: DoorConfig, key: string, message: string): void => {
    out.push({ severity: 'warning', file: config.file, line: d.lines[key] ?? d.line, door: d.name, message });
  };
  for (const d of config.doors) {
    if (d.spa === undefined && d.oneTimeSequences === undefined && d.sequence.length > 0) {
      const ports = d.sequence.map((p) => p.port);
      if (EXAMPLE_SEQUENCES.some((e) => e.length === ports.length && e.every((p, i) => p === ports[i])))
        warn(
          d,
          'SEQUENCE',
          `sequence ${ports.join(',')} is a well-known example (tutorials, knockd's man page): scanners try it first. ` +
            'Fix: choose your own ports, e.g. three or more random ports from 1024-65535',
        );
      else if (d.sequence.length < MIN_KNOCKS)
        warn(
          d,
          'SEQUENCE',
          `sequence has ${d.sequence.length} knock(s): a port scan completes it by chance. Fix: use at least ${MIN_KNOCKS} ports, in an order a scan would not take`,
        );
    }
    for (const [key, cmd] of doorCommands(d)) {
      if (FIREWALL_CMD.test(cmd) && /(?:^|\s)--permanent(?=\s|$)/.test(cmd) && /--add-/.test(cmd))
        warn(
          d,
          key,
          'this firewall-cmd line has --permanent: the rule it adds is written to the zone file and survives reboots, ' +
            'firewalld reloads and Cmd_Timeout, so the door never shuts by itself. Fix: drop --permanent ' +
            '(knockd then carries the line out natively, with a firewalld timeout)',
        );
    }
    const f = d.firewalld;
    if (f?.from === 'commands' && f.rules[6].some((r) => r.rule.includes('family="ipv4"')) && !isIpv4(d.target))
      warn(
        d,
        d.startCommand6 !== undefined ? 'START_COMMAND_6' : 'START_COMMAND',
        'an IPv6 knock completes this door, and its rule says family="ipv4": the IPv6 address of the knocker cannot go ' +
          'into it, so IPv6 knockers get nothing. Fix: add Start_Command_6 (and Stop_Command_6) with family="ipv6", ' +
          "or write them empty to ignore IPv6 knocks, or set Target to the server's IPv4 address (or run knockd -4)",
      );
  }
  return out;
}

const isIpv4 = (target: string | undefined): boolean => target !== undefined && !target.includes(':');
