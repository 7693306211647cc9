/**
 * Exact loss counting from the kernel's per-CPU message numbers.
 *
 * The proc connector numbers every message it sends per CPU
 * (`send_msg()` in drivers/connector/cn_proc.c: `msg->seq =
 * __this_cpu_inc_return(local_event.count) - 1`). A listener that receives
 * every event (no kernel-side filter) sees each CPU's numbers without gaps;
 * a gap is exactly the number of messages the kernel dropped for it.
 *
 * ACK messages take a number from the same counters but carry `cpu = -1`, so
 * their CPU is unknown; their numbers are remembered and not counted as lost
 * when a gap covers them.
 *
 * @module
 */

const RECENT_ACKS = 64;

/**
 * Tracks the next expected sequence number of each CPU.
 *
 * @example
 * ```ts
 * import { SequenceTracker } from "./sequence.ts";
 * const tracker = new SequenceTracker();
 * tracker.observe(0, 10);
 * console.log(tracker.observe(0, 14)); // 3 messages lost
 * ```
 */
export class SequenceTracker {
  readonly #next = new Map<number, number>();
  readonly #ackSeqs: number[] = [];

  /** Notes an ACK's sequence number, which belongs to an unknown CPU. */
  observeAck(seq: number): void {
    this.#ackSeqs.push(seq);
    if (this.#ackSeqs.length > RECENT_ACKS) this.#ackSeqs.shift();
  }

  /** Notes message `seq` from `cpu`; returns how many messages before it were lost. */
  observe(cpu: number, seq: number): number {
    const expected = this.#next.get(cpu);
    this.#next.set(cpu, (seq + 1) >>> 0);
    if (expected === undefined) return 0;
    const gap = (seq - expected) >>> 0;
    // A "gap" above 2^31 is a message older than expected (a restarted counter
    // or a reordered delivery), not billions of losses.
    if (gap === 0 || gap >= 0x80000000) return 0;
    let lost = gap;
    for (let i = this.#ackSeqs.length - 1; i >= 0; i--) {
      const offset = (this.#ackSeqs[i] - expected) >>> 0;
      if (offset < gap) {
        lost--;
        this.#ackSeqs.splice(i, 1);
      }
    }
    return lost;
  }
}
