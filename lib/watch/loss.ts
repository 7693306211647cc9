/**
 * Loss accounting: what the kernel dropped for us (gaps in the per-CPU
 * sequence numbers, or else the socket's drop counter) and what the queue had
 * no room for, counted in {@linkcode WatcherStats} and handed to the consumer
 * as `lost` events in stream order.
 *
 * May import: ground/, lib/connector/ (sequence, drops), lib/events/ and this
 * room's queue.ts and stats.ts.
 *
 * @module
 */

import { wallClock } from "../events/wall_clock.ts";
import type { LostEvent, ProcEvent } from "../events/events.ts";
import { readNetlinkDrops } from "../connector/drops.ts";
import { SequenceTracker } from "../connector/sequence.ts";
import type { BoundedQueue } from "./queue.ts";
import type { WatcherStats } from "./stats.ts";

/** The socket whose losses are counted. */
export interface CountedSocket {
  /** The socket's netlink port id: its line in /proc/net/netlink. */
  readonly portId: number;
  /** Whether its descriptor is released (its port may then belong to another socket). */
  readonly closed: boolean;
  /** The kernel's drop count asked of the socket itself; `null` when the kernel does not say. */
  kernelDrops(): number | null;
}

/**
 * Counts lost events and queues a `lost` record for them where they happened.
 * A record that finds the queue full waits (pending) and goes in ahead of the
 * next event that fits, or when the consumer next takes.
 *
 * @example
 * ```ts
 * import { LossAccounting } from "./loss.ts";
 * import { BoundedQueue } from "./queue.ts";
 * import { zeroStats } from "./stats.ts";
 * import type { ProcEvent } from "@procwatch/procwatch";
 * const stats = zeroStats();
 * const queue = new BoundedQueue<ProcEvent>(16);
 * const loss = new LossAccounting(stats, queue, { portId: 0, closed: true, kernelDrops: () => null });
 * loss.countGaps = true;
 * loss.numbered(0, 10);
 * loss.numbered(0, 13); // 11 and 12 never came
 * console.log(stats.lostByKernel, queue.shift()?.type); // 2 "lost"
 * ```
 */
export class LossAccounting {
  /**
   * Whether sequence gaps count losses: only while the kernel filters nothing
   * out of what this socket receives (each CPU's numbers then arrive without
   * gaps unless dropped). Otherwise the socket's drop counter (`sk_drops`) counts.
   */
  countGaps = false;
  readonly #stats: WatcherStats;
  readonly #queue: BoundedQueue<ProcEvent>;
  readonly #socket: CountedSocket;
  readonly #sequences = new SequenceTracker();
  /** The socket's drop counter when last read. */
  #kernelDrops = 0;
  #pendingKernelLoss = 0;
  #pendingQueueLoss = 0;

  /** Counts into `stats` and queues `lost` records into `queue`. */
  constructor(stats: WatcherStats, queue: BoundedQueue<ProcEvent>, socket: CountedSocket) {
    this.#stats = stats;
    this.#queue = queue;
    this.#socket = socket;
    // Asked once now, the answer unused (counting starts from 0): the ask
    // at close() (between a death and `procwatch wait` returning) is then
    // not the first call of this path, ~0.05 ms faster (measured).
    if (!socket.closed) socket.kernelDrops();
  }

  /**
   * Notes a message numbered `seq` on `cpu` (an event, an ACK or an unknown
   * type: cn_proc's `send_msg()` numbers them all); a gap since the last one
   * of that CPU is lost. `cpu` `null`: an event or ACK that took no number.
   */
  numbered(cpu: number | null, seq: number): void {
    if (!this.countGaps || cpu === null) return;
    const lost = this.#sequences.observe(cpu, seq);
    if (lost > 0) this.#reportKernelLoss(lost, cpu);
  }

  /**
   * Brings the kernel's drop count up to date when it is what counts (no gap
   * counting) and the socket is still ours.
   */
  syncDrops(): void {
    if (this.countGaps || this.#socket.closed) return;
    // getsockopt(SO_MEMINFO) is one system call; /proc/net/netlink (Linux
    // before 4.6) lists every netlink socket of the machine.
    const drops = this.#socket.kernelDrops() ?? readNetlinkDrops(this.#socket.portId);
    if (drops === null || drops <= this.#kernelDrops) return;
    const lost = drops - this.#kernelDrops;
    this.#kernelDrops = drops;
    this.#reportKernelLoss(lost, null);
  }

  /** Queues `event` behind any pending loss; counts it lost when the queue is full. */
  push(event: ProcEvent): void {
    if (this.#pendingKernelLoss + this.#pendingQueueLoss > 0) this.flush();
    if (this.#queue.push(event)) return;
    this.#stats.lostInQueue++;
    this.#pendingQueueLoss++;
  }

  /** Queues the pending `lost` records that fit now (call after the consumer took). */
  flush(): void {
    if (this.#pendingKernelLoss > 0 && this.#enqueueLoss(this.#pendingKernelLoss, "kernel")) {
      this.#pendingKernelLoss = 0;
    }
    if (this.#pendingQueueLoss > 0 && this.#enqueueLoss(this.#pendingQueueLoss, "queue")) {
      this.#pendingQueueLoss = 0;
    }
  }

  /** Whether `lost` records wait for room in the queue. */
  get pending(): boolean {
    return this.#pendingKernelLoss + this.#pendingQueueLoss > 0;
  }

  #reportKernelLoss(count: number, cpu: number | null): void {
    this.#stats.lostByKernel += count;
    if (!this.#enqueueLoss(count, "kernel", cpu)) this.#pendingKernelLoss += count;
  }

  #enqueueLoss(count: number, reason: LostEvent["reason"], cpu: number | null = null): boolean {
    const timestampNs = wallClock.sync();
    return this.#queue.push({
      type: "lost",
      cpu,
      timestampNs,
      time: new Date(Number(wallClock.wallNs(timestampNs) / 1_000_000n)),
      count,
      reason,
      exact: true,
    });
  }
}
