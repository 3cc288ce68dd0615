/**
 * libpcap capture through the `cap` package. `cap` opens the device in
 * immediate mode (no block timeout delay on TPACKET_V3) and hands every packet
 * over synchronously in one reused buffer; the frame is decoded right there.
 */
import { Cap } from 'cap';
import type { LinkType } from '../decode/types';
import { DEFAULT_RING_MB } from './protocol';

const LINK_TYPES: readonly string[] = ['ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL'];

export type FrameHandler = (link: LinkType, buf: Buffer, len: number) => void;

export class CaptureError extends Error {
  constructor(message: string, readonly iface: string) {
    super(message);
    this.name = 'CaptureError';
  }
}

export class PcapCapture {
  private cap: Cap | undefined;
  /** One frame at a time; 64 KiB covers any IPv4/IPv6 packet without jumbograms. */
  private readonly buf = Buffer.alloc(65535);
  private link: LinkType = 'ETHERNET';
  private filterText = '';

  constructor(
    private readonly onFrame: FrameHandler,
    /**
     * libpcap's kernel ring. In immediate mode libpcap uses TPACKET_V2 with one
     * snaplen-sized (64 KiB, `cap` fixes the snaplen) slot per packet on
     * interfaces with GRO/TSO, so 32 MiB holds only ~500 packets: it must be
     * large for a flood not to push legitimate knocks out. The ring is mapped
     * into the capture process and counts in its RSS.
     */
    private readonly ringBytes = DEFAULT_RING_MB * 1024 * 1024,
  ) {}

  get filter(): string {
    return this.filterText;
  }

  get open(): boolean {
    return this.cap !== undefined;
  }

  /** Open (or reopen with a new filter) `iface`. Throws CaptureError with libpcap's reason. */
  start(iface: string, filter: string): LinkType {
    this.stop();
    const cap = new Cap();
    let link: string;
    try {
      link = cap.open(iface, filter, this.ringBytes, this.buf);
    } catch (err) {
      throw new CaptureError(`could not open ${iface}: ${(err as Error).message}`, iface);
    }
    if (!LINK_TYPES.includes(link)) {
      cap.close();
      throw new CaptureError(`unsupported link-layer type on ${iface}: ${link}`, iface);
    }
    this.link = link as LinkType;
    this.filterText = filter;
    const buf = this.buf;
    cap.on('packet', (nbytes: number) => this.onFrame(this.link, buf, nbytes));
    this.cap = cap;
    return this.link;
  }

  stop(): void {
    const cap = this.cap;
    this.cap = undefined;
    if (cap) {
      cap.removeAllListeners('packet');
      cap.close();
    }
  }
}
