/** Types for the `cap` package (libpcap binding), which ships none. Only what we use. */
declare module 'cap' {
  import { EventEmitter } from 'node:events';

  export interface DeviceAddress {
    addr: string;
    netmask?: string;
    broadaddr?: string;
  }
  export interface Device {
    name: string;
    description?: string;
    addresses: DeviceAddress[];
    flags?: string;
  }

  export class Cap extends EventEmitter {
    constructor();
    /** Opens `device` with a pcap-filter expression; returns the link type ('ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL', ...). */
    /** `snaplen`: bytes kept per packet (vendor/ patch; default 65535). */
    open(device: string, filter: string, bufSize: number, buffer: Buffer, snaplen?: number): string;
    /** A new filter on the open handle; needs no privilege (vendor/cap-privsep.patch). Throws libpcap's error. */
    setFilter(filter: string): void;
    /** SO_LOCK_FILTER on the handle's socket: its filter can no longer change; returns the socket's fd (vendor/cap-privsep.patch). */
    lockFilter(): number;
    close(): void;
    send(buffer: Buffer, nBytes?: number): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
    /** The handle failed (interface down or gone) and is closed (vendor/cap-privsep.patch). */
    on(event: 'error', listener: (err: Error) => void): this;
    static deviceList(): Device[];
    static findDevice(ip?: string): string | undefined;
    /**
     * Linux: no supplementary groups, real/effective/saved ids `uid`/`gid`,
     * empty capability sets (inheritable, bounding and ambient included,
     * whatever the parent handed on), no_new_privs,
     * the seccomp sandbox on every thread (no execve, no new socket, no
     * send, no write to `fds`, no setsockopt, no io_uring ...: see
     * vendor/README.md), SIGKILL when the parent exits; verified. Throws
     * naming the step that failed (vendor/cap-privsep.patch).
     */
    static dropPrivileges(uid: number, gid: number, fds?: number[]): void;
    /** Tests only: each call the sandbox refuses, tried on packet socket `fd`; name → errno (0: it worked). */
    static sandboxProbe(fd: number): Record<string, number>;
  }
}

/** knockd's sd_notify addon, built beside cap.node but linking no libpcap (vendor/cap-sdnotify.patch). */
declare module 'cap/lib/sdnotify' {
  /**
   * sd_notify(3): one datagram with `message` to the AF_UNIX datagram socket
   * `socketPath` ($NOTIFY_SOCKET; '@name' is abstract), sent by the calling
   * process, non-blocking. Throws with the errno.
   */
  export function sdNotify(socketPath: string, message: string): void;
}
