/**
 * Types shared across layers: what a door is, as the config parser produces
 * it and the matcher, the grant path and the capture process read it. Plain
 * data only; nothing here imports from any other module of the project.
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

/** What a door does in firewalld (the `firewalld_*` directives). */
export interface FirewalldDoor {
  action: 'open' | 'close';
  /** Zone name; undefined means firewalld's default zone, asked over D-Bus at start-up. */
  zone?: string;
  /** Service names (`firewalld_service = ssh,https`): one rich rule each. */
  services: string[];
  /** Ports (`firewalld_port = 22/tcp,60000-61000/udp`): one rich rule each. */
  ports: { port: string; proto: PortProto }[];
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
}
