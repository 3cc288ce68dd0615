/**
 * At most `max` commands run at once; the rest wait in FIFO order (a knock
 * storm cannot fork-bomb the host). A finishing job hands its slot to the
 * first waiting one directly, so the cap holds although the waiter resumes a
 * microtask later. On shutdown the waiters are refused.
 */
export class CommandSlots {
  private readonly waiters: ((granted: boolean) => void)[] = [];
  private running = 0;

  constructor(readonly max: number) {}

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Take a free slot now, if there is one. */
  tryTake(): boolean {
    if (this.running >= this.max) return false;
    this.running++;
    return true;
  }

  /** Wait in line: resolves true with a slot held, or false when `refuseAll` came first. */
  wait(): Promise<boolean> {
    return new Promise<boolean>((resolve) => this.waiters.push(resolve));
  }

  /** Give our slot to the first waiting job, or free it. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next(true);
    else this.running--;
  }

  /** Shutdown: every waiting job is told it will get no slot. */
  refuseAll(): void {
    for (const wake of this.waiters.splice(0)) wake(false);
  }
}
