/**
 * Exact loss counting from the kernel's per-CPU message numbers.
 *
 * The proc connector numbers every message it sends per CPU
 * (`send_msg()` in drivers/connector/cn_proc.c: `msg->seq =
 * __this_cpu_inc_return(local_event.count) - 1`, `ev->cpu =
 * smp_processor_id()`, under a local lock, so each CPU's messages reach a
 * socket in number order). A listener that receives every message (no
 * kernel-side filter) sees each CPU's numbers without gaps; a gap is exactly
 * the number of messages the kernel dropped for it on that CPU.
 *
 * ACKs are such messages too: `cn_proc_ack()` ends in `send_msg()`, which
 * overwrites the `cpu = -1` and echoed `seq` it set with the CPU it runs on
 * and that CPU's next number. The kernel multicasts every listener's ACK (of
 * LISTEN and IGNORE alike) to the whole group, filtered by `cn_filter()`
 * only for sockets that asked for a subset of events (or sent IGNORE), so a `PROC_EVENT_ALL`
 * listener sees other processes' ACKs between its events. An ACK is therefore
 * counted on its own CPU like an event. Older kernels (3.x) sent ACKs with
 * `cpu = -1` and the request's `seq`, taking no number: those are ignored.
 *
 * A dropped ACK cannot be told from a dropped event, so a gap counts it: the
 * count of lost events is never below the truth, and above it only by ACKs
 * dropped in the same overflow.
 *
 * @module
 */

/**
 * Tracks the next expected sequence number of each CPU.
 *
 * @example
 * ```ts
 * import { SequenceTracker } from "./sequence.ts";
 * const tracker = new SequenceTracker();
 * tracker.observe(0, 10);
 * console.log(tracker.observe(0, 14)); // 3 messages lost
 * console.log(tracker.observeAck(15, 0)); // 0: an ACK numbered 15 on CPU 0
 * console.log(tracker.observe(0, 16)); // 0
 * ```
 */
export class SequenceTracker {
  readonly #next = new Map<number, number>();

  /**
   * Notes an ACK numbered `seq` on `cpu` (`null`: the -1 of older kernels,
   * whose ACK took no number); returns how many messages before it were lost
   * on that CPU.
   */
  observeAck(seq: number, cpu: number | null): number {
    // On its own CPU's counter only: the CPUs' counters are independent and
    // often within a storm's length of each other, so an ACK number matched
    // against every CPU's gaps lands in another CPU's gap sooner or later.
    return cpu === null ? 0 : this.observe(cpu, seq);
  }

  /** Notes message `seq` from `cpu`; returns how many messages before it were lost. */
  observe(cpu: number, seq: number): number {
    const expected = this.#next.get(cpu);
    this.#next.set(cpu, (seq + 1) >>> 0);
    if (expected === undefined) return 0;
    const gap = (seq - expected) >>> 0;
    // A "gap" above 2^31 is a message older than expected (a restarted counter
    // or a reordered delivery), not billions of losses.
    if (gap >= 0x80000000) return 0;
    return gap;
  }
}
