/**
 * The `spa_*` door directives (fwknop Single Packet Authorization), validated
 * into a SpaDoor, and the fwknop client configuration that matches a door
 * (for `knockd --check`).
 *
 * The knockd.conf parser collects the raw values with their line numbers and
 * calls validateSpaDoor(); this module does no I/O. Error and warning
 * messages never quote a key, only say what is wrong with it.
 *
 *   spa_port             UDP port (default 62201)
 *   spa_key_base64       KEY_BASE64 of `fwknop --key-gen` (required; 1..32 bytes)
 *   spa_hmac_key_base64  HMAC_KEY_BASE64 (required; 1..128 bytes, not equal to the key)
 *   spa_hmac_digest_type HMAC_DIGEST_TYPE: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512 (default sha256)
 *   spa_source           SOURCE: ANY or a comma list of addresses / CIDR blocks (default ANY)
 *   spa_open_ports       OPEN_PORTS: comma list of tcp/N, udp/N (default tcp/22)
 *   spa_max_timeout      MAX_FW_TIMEOUT, seconds (default 300)
 *   spa_require_source_address  REQUIRE_SOURCE_ADDRESS: yes/no (default no)
 *   cmd_timeout          FW_ACCESS_TIMEOUT, seconds (default 30 for an SPA door), read by the Cmd_Timeout entry of directives.ts
 */
import type { SpaCidr, SpaDoor, SpaHmacType, SpaPortSpec } from '../model';
import { cidrText, parseCidr } from '../spa/cidr';
import {
  DEFAULT_HMAC_TYPE,
  isSpaHmacType,
  makeSpaKeys,
  MAX_ENCRYPTION_KEY_BYTES,
  MAX_HMAC_KEY_BYTES,
} from '../spa/keys';
import { parseSeconds } from './seconds';
import { clip } from './text';
import { parseYesNo, YES_NO_WORDS } from './yesno';

export const DEFAULT_SPA_PORT = 62201;
export const DEFAULT_SPA_OPEN_PORTS: readonly SpaPortSpec[] = [{ proto: 'tcp', port: 22 }];
export const DEFAULT_SPA_MAX_TIMEOUT = 300;
export const DEFAULT_SPA_CMD_TIMEOUT = 30;
/**
 * Largest spa_max_timeout and cmd_timeout of an SPA door, seconds: 2^31-1 ms, about 24.8 days (the span of one
 * unchained Node timer, where it came from; timers are chained now). Far below MAX_TIMEOUT_SECONDS of other doors.
 */
export const SPA_TIMEOUT_LIMIT = Math.floor(0x7fffffff / 1000);

/** The directive names, lower case, as written in knockd.conf. */
export const SPA_DIRECTIVES = [
  'spa_port',
  'spa_key_base64',
  'spa_hmac_key_base64',
  'spa_hmac_digest_type',
  'spa_source',
  'spa_open_ports',
  'spa_max_timeout',
  'spa_require_source_address',
] as const;
export type SpaDirective = (typeof SPA_DIRECTIVES)[number];

/** A value as written (trimmed) and its 1-based line. */
export interface SpaRawValue {
  value: string;
  line: number;
}

export interface SpaDoorInput {
  /** Door (section) name. */
  name: string;
  /** Line of the `[name]` header, for errors about missing directives. */
  line: number;
  /** The spa_* directives given (last one wins, as the parser decides), by lower-case name. */
  directives: Partial<Record<SpaDirective, SpaRawValue>>;
  /** `cmd_timeout` if written, already parsed as seconds (seconds.ts). */
  cmdTimeout?: { seconds: number; line: number };
}

export interface SpaConfigIssue {
  severity: 'error' | 'warning';
  line: number;
  message: string;
}

export interface SpaDoorResult {
  /** Undefined when there is any error. */
  door?: SpaDoor;
  errors: SpaConfigIssue[];
  warnings: SpaConfigIssue[];
}

const STRICT_B64 = /^[A-Za-z0-9+/]*$/;
const PORT_SPEC = /^(tcp|udp)\/(0|[1-9][0-9]*)$/i;

/**
 * Standard base64 (as `fwknop --key-gen` prints it; `=` padding optional), decoded.
 * Returns an error text that never quotes the value.
 */
function decodeKey(text: string): Buffer | string {
  if (text === '') return 'is empty';
  const body = text.replace(/={1,2}$/, '');
  if (!STRICT_B64.test(body)) {
    const i = [...body].findIndex((c) => !/[A-Za-z0-9+/]/.test(c));
    const c = body[i];
    const what =
      c === ' ' || c === '\t'
        ? 'a space'
        : c === '-' || c === '_'
          ? `"${c}" (URL-safe base64? fwknop uses the standard alphabet with + and /)`
          : c === '='
            ? '"=" before the end'
            : 'a character outside A-Z a-z 0-9 + /';
    return `is not valid base64: character ${i + 1} is ${what}`;
  }
  if (body.length % 4 === 1) return 'is not valid base64 (its length is impossible: truncated?)';
  if (text.length !== body.length && text.length % 4 !== 0) return 'is not valid base64 (wrong "=" padding)';
  const bytes = Buffer.from(body, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== body)
    return 'is not valid base64 (non-zero bits in its last character: truncated or mistyped?)';
  return bytes;
}

/** Validates the spa_* directives of one door. Every problem is reported with its line. */
export function validateSpaDoor(input: SpaDoorInput): SpaDoorResult {
  const errors: SpaConfigIssue[] = [];
  const warnings: SpaConfigIssue[] = [];
  const d = input.directives;
  const err = (line: number, message: string): void => void errors.push({ severity: 'error', line, message });
  const warn = (line: number, message: string): void => void warnings.push({ severity: 'warning', line, message });

  let port = DEFAULT_SPA_PORT;
  if (d.spa_port !== undefined) {
    const v = d.spa_port.value;
    if (/^[1-9][0-9]{0,4}$/.test(v) && Number(v) <= 65535) port = Number(v);
    else err(d.spa_port.line, `spa_port must be a UDP port number 1-65535, got "${clip(v)}"`);
  }

  let hmacType: SpaHmacType = DEFAULT_HMAC_TYPE;
  if (d.spa_hmac_digest_type !== undefined) {
    const v = d.spa_hmac_digest_type.value.toLowerCase().replace('-', '_');
    if (isSpaHmacType(v)) hmacType = v;
    else
      err(
        d.spa_hmac_digest_type.line,
        `spa_hmac_digest_type must be one of md5, sha1, sha256, sha384, sha512, sha3_256, sha3_512 (fwknop's HMAC_DIGEST_TYPE), got "${clip(d.spa_hmac_digest_type.value)}"`,
      );
  }

  /** A key directive: present, base64, 1 to `max` bytes; a warning below `weakBelow` (fwknop --key-gen makes `genBytes`). */
  const key = (
    name: 'spa_key_base64' | 'spa_hmac_key_base64',
    max: number,
    genBytes: number,
    weakBelow: number,
    missing: string,
  ): Buffer | undefined => {
    const raw = d[name];
    if (raw === undefined) {
      err(input.line, missing);
      return undefined;
    }
    const r = decodeKey(raw.value);
    if (typeof r === 'string') {
      err(raw.line, `${name} ${r}`);
      return undefined;
    }
    if (r.length < 1 || r.length > max) {
      err(
        raw.line,
        `${name} decodes to ${r.length} bytes; fwknop takes 1 to ${max} (fwknop --key-gen makes ${genBytes})`,
      );
      return undefined;
    }
    if (r.length < weakBelow)
      warn(raw.line, `${name} is only ${r.length} bytes; use a key from "fwknop --key-gen" (${genBytes} bytes)`);
    return r;
  };
  const enc = key(
    'spa_key_base64',
    MAX_ENCRYPTION_KEY_BYTES,
    32,
    16,
    'SPA door has no spa_key_base64: add the KEY_BASE64 line printed by "fwknop --key-gen"',
  );
  const hmac = key(
    'spa_hmac_key_base64',
    MAX_HMAC_KEY_BYTES,
    64,
    32,
    'SPA door has no spa_hmac_key_base64: add the HMAC_KEY_BASE64 line printed by "fwknop --key-gen" (SPA without HMAC is not supported)',
  );
  if (enc !== undefined && hmac !== undefined && enc.equals(hmac)) {
    err(
      (d.spa_hmac_key_base64 as SpaRawValue).line,
      'spa_hmac_key_base64 is the same key as spa_key_base64; fwknop refuses that: use two different keys',
    );
  }

  const sources: SpaCidr[] = [];
  if (d.spa_source !== undefined) {
    const { value, line } = d.spa_source;
    if (value.toLowerCase() !== 'any') {
      const items = value.split(',').map((s) => s.trim());
      for (const item of items) {
        if (item === '') {
          err(line, 'spa_source has an empty entry (two commas, or a trailing comma?)');
          continue;
        }
        if (item.toLowerCase() === 'any') {
          err(line, 'spa_source: ANY cannot be combined with addresses; write ANY alone, or only addresses');
          continue;
        }
        const r = parseCidr(item);
        if ('error' in r) {
          err(
            line,
            `spa_source: ${r.error} (expected ANY, or addresses / CIDR blocks such as 203.0.113.0/24, 2001:db8::/32)`,
          );
          continue;
        }
        if (r.hostBitsSet) warn(line, `spa_source: "${clip(item)}" has host bits set; it means ${cidrText(r.cidr)}`);
        if (
          sources.some((s) => s.family === r.cidr.family && s.address === r.cidr.address && s.prefix === r.cidr.prefix)
        ) {
          warn(line, `spa_source lists ${cidrText(r.cidr)} twice`);
          continue;
        }
        sources.push(r.cidr);
      }
      if (items.length > 0 && sources.some((s) => s.prefix === 0))
        warn(line, 'spa_source contains a /0 block: that is any address of its family');
    }
  }

  let openPorts: SpaPortSpec[] = [...DEFAULT_SPA_OPEN_PORTS];
  if (d.spa_open_ports !== undefined) {
    const { value, line } = d.spa_open_ports;
    const list: SpaPortSpec[] = [];
    let ok = true;
    for (const raw of value.split(',')) {
      const item = raw.trim();
      const m = PORT_SPEC.exec(item);
      if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        ok = false;
        const swapped = /^[0-9]+\/(tcp|udp)$/i.test(item)
          ? ` (write proto/port, e.g. ${item.split('/')[1]?.toLowerCase()}/${item.split('/')[0]}, as fwknop does)`
          : '';
        err(line, `spa_open_ports: "${clip(item)}" is not tcp/PORT or udp/PORT with PORT 1-65535${swapped}`);
        continue;
      }
      const spec: SpaPortSpec = { proto: m[1].toLowerCase() as SpaPortSpec['proto'], port: Number(m[2]) };
      if (list.some((p) => p.proto === spec.proto && p.port === spec.port))
        warn(line, `spa_open_ports lists ${spec.proto}/${spec.port} twice`);
      else list.push(spec);
    }
    if (ok) openPorts = list;
  }

  let maxTimeout = DEFAULT_SPA_MAX_TIMEOUT;
  if (d.spa_max_timeout !== undefined) {
    const r = parseSeconds(d.spa_max_timeout.value, 'spa_max_timeout', {
      min: 1,
      max: SPA_TIMEOUT_LIMIT,
      maxReason: 'about 24.8 days: the longest an SPA grant may last',
    });
    if (typeof r === 'string') err(d.spa_max_timeout.line, r);
    else maxTimeout = r;
  }

  let defaultTimeout = DEFAULT_SPA_CMD_TIMEOUT;
  if (input.cmdTimeout !== undefined) {
    const { seconds, line } = input.cmdTimeout;
    if (seconds < 1)
      err(
        line,
        "cmd_timeout of an SPA door must be at least 1 second: an SPA grant always expires (fwknopd's FW_ACCESS_TIMEOUT)",
      );
    else if (seconds > SPA_TIMEOUT_LIMIT) err(line, `cmd_timeout must be at most ${SPA_TIMEOUT_LIMIT} seconds`);
    else defaultTimeout = seconds;
  }
  if (errors.length === 0 && defaultTimeout > maxTimeout) {
    warn(
      input.cmdTimeout?.line ?? input.line,
      `cmd_timeout (${defaultTimeout} s) is longer than spa_max_timeout (${maxTimeout} s): a client asking for no timeout gets more than one asking for the most`,
    );
  }

  let requireSourceAddress = false;
  if (d.spa_require_source_address !== undefined) {
    const yes = parseYesNo(d.spa_require_source_address.value);
    if (yes !== undefined) requireSourceAddress = yes;
    else
      err(
        d.spa_require_source_address.line,
        `spa_require_source_address expects ${YES_NO_WORDS}, got "${clip(d.spa_require_source_address.value)}"`,
      );
  }

  errors.sort((a, b) => a.line - b.line);
  warnings.sort((a, b) => a.line - b.line);
  if (errors.length > 0 || enc === undefined || hmac === undefined) return { errors, warnings };
  return {
    door: {
      name: input.name,
      port,
      keys: makeSpaKeys(enc, hmac, hmacType),
      sources,
      openPorts,
      maxTimeout,
      defaultTimeout,
      requireSourceAddress,
    },
    errors,
    warnings,
  };
}

export interface SpaClientConfigOptions {
  /** Address or name the client sends to (`-D`); default a placeholder. */
  server?: string;
  /** Put the real keys in the output (for an admin who asked); default: placeholders naming the directives. */
  revealKeys?: boolean;
}

/** Shell-quotes a word unless it is made of safe characters only. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The fwknop client command line and `~/.fwknoprc` stanza that match `door`.
 * Without `revealKeys` the keys are shown as `<spa_key_base64 of [door]>`
 * placeholders, so the output is safe to paste into a ticket.
 */
export function spaClientConfig(
  door: SpaDoor,
  opts: SpaClientConfigOptions = {},
): { commandLine: string; fwknoprc: string } {
  const server = opts.server ?? '<server address>';
  const key = opts.revealKeys ? door.keys.encryption.toString('base64') : `<spa_key_base64 of [${door.name}]>`;
  const hkey = opts.revealKeys ? door.keys.hmac.toString('base64') : `<spa_hmac_key_base64 of [${door.name}]>`;
  const access = door.openPorts.map((p) => `${p.proto}/${p.port}`).join(',');
  const allow = '<your public IP>';
  const words = ['fwknop', '-A', access, '-a', allow, '-D', server];
  if (door.port !== DEFAULT_SPA_PORT) words.push('-p', String(door.port));
  words.push('--key-base64-rijndael', key, '--key-base64-hmac', hkey, '--use-hmac');
  if (door.keys.hmacType !== DEFAULT_HMAC_TYPE) words.push('--hmac-digest-type', door.keys.hmacType);
  const commandLine = words.map((w) => (w.startsWith('<') ? `"${w}"` : shellWord(w))).join(' ');

  const rows: [string, string][] = [
    ['SPA_SERVER', server],
    ['SPA_SERVER_PORT', String(door.port)],
    ['SPA_SERVER_PROTO', 'udp'],
    ['ACCESS', access],
    ...(door.requireSourceAddress
      ? []
      : ([['# ALLOW_IP', "source    (fwknop -s: the packet's source address)"]] as [string, string][])),
    ['ALLOW_IP', allow],
    ['KEY_BASE64', key],
    ['HMAC_KEY_BASE64', hkey],
    ['USE_HMAC', 'Y'],
    ['HMAC_DIGEST_TYPE', door.keys.hmacType],
    [
      `# FW_TIMEOUT`,
      `${Math.min(60, door.maxTimeout)}    (fwknop -f: ask for a timeout, at most ${door.maxTimeout} s)`,
    ],
  ];
  const fwknoprc = `[${door.name}]\n${rows.map(([k, v]) => `${k.padEnd(20)}${v}`).join('\n')}\n`;
  return { commandLine, fwknoprc };
}
