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
    close(): void;
    send(buffer: Buffer, nBytes?: number): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
    /** The handle failed (interface down or gone) and is closed (vendor/cap-privsep.patch). */
    on(event: 'error', listener: (err: Error) => void): this;
    static deviceList(): Device[];
    static findDevice(ip?: string): string | undefined;
    /**
     * Linux: no supplementary groups, real/effective/saved ids `uid`/`gid`,
     * empty capability sets (bounding and ambient included), no_new_privs,
     * execve and socket creation refused on every thread, SIGKILL when the
     * parent exits; verified. Throws naming the step that failed
     * (vendor/cap-privsep.patch).
     */
    static dropPrivileges(uid: number, gid: number): void;
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
