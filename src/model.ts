/**
 * Types shared across layers: what a door is, as the config parser produces
 * it and the matcher, the grant path and the capture process read it. Plain
 * data (and one constant); nothing here imports from any other module of the project.
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
}
