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
    close(): void;
    send(buffer: Buffer, nBytes?: number): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
    static deviceList(): Device[];
    static findDevice(ip?: string): string | undefined;
  }
}
