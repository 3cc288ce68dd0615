/**
 * Types shared across layers: what a door is, as the config parser produces
 * it and the matcher, the grant path and the capture process read it. Plain
 * data (one constant and two one-line helpers over it); nothing here imports
 * from any other module of the project.
 */

/** IP protocol numbers of a knock: TCP (6) or UDP (17). */
export type KnockProto = 6 | 17;

/** One port of a knock sequence, e.g. `2222:udp`. */
export interface KnockPort {
  proto: KnockProto;
  port: number;
}

/**
 * TCP flag constraints of a door (knockd's `TCPFlags`): every bit of `set` must
 * be set and every bit of `clear` must be clear. Both 0 means "any flags".
 */
export interface TcpFlagRule {
  set: number;
  clear: number;
}

/** Protocols a firewalld `port` element takes. */
export type PortProto = 'tcp' | 'udp' | 'sctp' | 'dccp';

/**
 * One rich rule a firewalld door adds or removes, as a template: `rule` is in
 * firewalld's canonical text (what `firewall-cmd --list-rich-rules` prints)
 * with `%IP%` standing for the knocker's address, wherever it appears as a
 * whole address value.
 */
export interface RuleTemplate {
  /** Zone; undefined means firewalld's default zone, asked over D-Bus at start-up. */
  zone?: string;
  rule: string;
  /** With `open`: seconds firewalld keeps the rule before it removes it by itself (0: none). */
  timeout: number;
}

/**
 * What a door does in firewalld: from the `firewalld_*` directives, or from
 * knockd `Start_Command`/`Stop_Command` lines that are exactly
 * `firewall-cmd --add-rich-rule` / `--remove-rich-rule` (converted when the
 * config is loaded). Every firewalld door goes through the one grant table.
 */
export interface FirewalldDoor {
  action: 'open' | 'close';
  /** `firewalld_zone` (directives only); undefined: the default zone. */
  zone?: string;
  /** Service names (`firewalld_service = ssh,https`), directives only: checked against firewalld at start-up. */
  services: string[];
  /** Ports (`firewalld_port = 22/tcp,60000-61000/udp`), directives only. */
  ports: { port: string; proto: PortProto }[];
  /** The rules a knock adds (open) or removes (close), by the knocker's address family. */
  rules: { 4: RuleTemplate[]; 6: RuleTemplate[] };
  /** Where the door came from: `firewalld_*` directives, or recognised firewall-cmd command lines. */
  from: 'directives' | 'commands';
}

/** The placeholder a rule template has for the knocker's address. */
export const IP_PLACEHOLDER = '%IP%';

/** Every rule template of a firewalld door, both families. */
export function ruleTemplates(f: FirewalldDoor): RuleTemplate[] {
  return [...f.rules[4], ...f.rules[6]];
}

/** A rich rule for one knocker's address (or the placeholder): `rule family="ipvN" source address="A" <element> accept`. */
export function knockerRule(family: 4 | 6, source: string, element: string): string {
  return `rule family="ipv${family}" source address="${source}" ${element} accept`;
}

/** What the matcher needs to know of a door. */
export interface DoorSpec {
  /** Section name, e.g. `openSSH`. */
  name: string;
  sequence: readonly KnockPort[];
  /** `seq_timeout` in milliseconds. */
  seqTimeoutMs: number;
  tcpFlags: TcpFlagRule;
  /** Canonical target address; undefined: the interface's own addresses. */
  target?: string;
  /** What completing the sequence means. */
  action: 'open' | 'close';
  /**
   * `strict_repeats = yes`: knockd 0.8's rule, a second knock on the port that
   * last advanced the attempt (from a new connection) spoils it. Default
   * (undefined/false): such a repeat is ignored.
   */
  strictRepeats?: boolean;
  /**
   * Ports the capture filter takes for this door besides `sequence`: a
   * One_Time_Sequences door's later sequences, so that moving to the next one
   * does not change the locked filter (which would restart the capture process
   * and lose knocks meanwhile).
   */
  filterPorts?: readonly KnockPort[];
}

// ---------------------------------------------------------------------------
// Single Packet Authorization (fwknop) doors
// ---------------------------------------------------------------------------

/**
 * HMAC digest types of fwknop's `--hmac-digest-type` / fwknopd's
 * `HMAC_DIGEST_TYPE`, spelled as fwknop spells them.
 */
export type SpaHmacType = 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sha3_256' | 'sha3_512';

/**
 * Key material of an SPA door. Objects made by `makeSpaKeys()` (src/spa/keys.ts),
 * which is what the config validator returns, serialize (JSON.stringify, pino)
 * and print (util.inspect, console.log) as "[redacted]", so a door logged or
 * put into `--status` by mistake shows no key.
 */
export interface SpaKeys {
  /** Rijndael passphrase bytes (`KEY_BASE64` decoded), 1..32 bytes. */
  readonly encryption: Buffer;
  /** HMAC key bytes (`HMAC_KEY_BASE64` decoded), 1..128 bytes. */
  readonly hmac: Buffer;
  readonly hmacType: SpaHmacType;
}

/** One network of `spa_source`, canonical (host bits cleared), e.g. `{ family: 4, address: '203.0.113.0', prefix: 24 }`. */
export interface SpaCidr {
  family: 4 | 6;
  address: string;
  prefix: number;
}

/** One `proto/port` a client may ask an SPA door for (`spa_open_ports`). */
export interface SpaPortSpec {
  proto: 'tcp' | 'udp';
  port: number;
}

/** What the SPA layer needs to know of a door (the `spa_*` directives plus `cmd_timeout`). */
export interface SpaDoor {
  /** Section name, e.g. `spaSSH`. */
  name: string;
  /** UDP port the SPA packets are sent to (`spa_port`, default 62201). */
  port: number;
  keys: SpaKeys;
  /** `spa_source`: who may send. Empty: any address (fwknopd's `SOURCE ANY`). */
  sources: SpaCidr[];
  /** `spa_open_ports`: every port a packet asks for must be listed (default tcp/22). */
  openPorts: SpaPortSpec[];
  /** `spa_max_timeout` (MAX_FW_TIMEOUT), seconds: cap on a client-requested timeout (default 300). */
  maxTimeout: number;
  /** `cmd_timeout` (FW_ACCESS_TIMEOUT), seconds: timeout when the packet asks for none (default 30). */
  defaultTimeout: number;
  /** `spa_require_source_address` (REQUIRE_SOURCE_ADDRESS): refuse allow-IP 0.0.0.0 (client `-s`). Default false. */
  requireSourceAddress: boolean;
}
