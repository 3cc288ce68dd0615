/**
 * libpcap capture through the `cap` package (vendor/: 0.2.1 plus a snaplen
 * argument). `cap` opens the device in immediate mode (no block timeout delay
 * on TPACKET_V3) and hands every packet over synchronously in one reused
 * buffer; the frame is decoded right there.
 */
import { Cap } from 'cap';
import type { LinkType } from '../decode/types';
import { DEFAULT_RING_MB, SNAPLEN } from './protocol';

const LINK_TYPES: readonly string[] = ['ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL'];

export type FrameHandler = (link: LinkType, buf: Buffer, len: number) => void;
/** The handle failed (link down, interface removed) and is closed. */
export type FailHandler = (err: CaptureError) => void;

export class CaptureError extends Error {
  constructor(
    message: string,
    readonly iface: string,
  ) {
    super(message);
    this.name = 'CaptureError';
  }
}

export class PcapCapture {
  private cap: Cap | undefined;
  /**
   * One frame at a time (SNAPLEN bytes at most). `cap` keeps only a raw
   * pointer to it: this reference must live as long as the capture.
   */
  private readonly buf: Buffer;
  private link: LinkType = 'ETHERNET';
  private filterText = '';

  constructor(
    private readonly onFrame: FrameHandler,
    /**
     * libpcap's kernel ring: about 3 100 packets per MiB at SNAPLEN (8 MiB:
     * ~170 ms of a 150 k packet/s flood). It is mapped into the capture
     * process and counts in its RSS.
     */
    private readonly ringBytes = DEFAULT_RING_MB * 1024 * 1024,
    private readonly onFail: FailHandler = () => undefined,
    private readonly snaplen = SNAPLEN,
  ) {
    this.buf = Buffer.alloc(snaplen);
  }

  get filter(): string {
    return this.filterText;
  }

  /**
   * Open `iface` (needs CAP_NET_RAW: once, before the capture process drops
   * its privileges). Throws CaptureError with libpcap's reason.
   */
  start(iface: string, filter: string): LinkType {
    this.stop();
    const cap = new Cap();
    let link: string;
    try {
      link = cap.open(iface, filter, this.ringBytes, this.buf, this.snaplen);
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
    cap.on('error', (err: Error) => {
      if (this.cap !== cap) return;
      this.cap = undefined;
      this.onFail(new CaptureError(`capture on ${iface} failed: ${err.message}`, iface));
    });
    this.cap = cap;
    return this.link;
  }

  /**
   * Lock the open handle's filter (SO_LOCK_FILTER): nobody can replace it
   * from now on, this process included, so a taken-over capture process
   * cannot attach a filter that passes every packet. A new filter needs a
   * new capture process. Returns the socket's descriptor (the sandbox
   * refuses writes to it). Throws CaptureError.
   */
  lockFilter(): number {
    if (!this.cap) throw new CaptureError('capture is not open', '');
    try {
      return this.cap.lockFilter();
    } catch (err) {
      throw new CaptureError(`could not lock the capture filter: ${(err as Error).message}`, '');
    }
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
