/**
 * The counters of a watcher ({@linkcode WatcherStats}): one object that the
 * receiving side, the loss accounting and the consumer side each raise.
 *
 * May import: nothing (a leaf).
 *
 * @module
 */

/**
 * Counters of a watcher; they only grow.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 *
 * const watcher = watch();
 * setTimeout(() => {
 *   const { received, lostByKernel, foreign } = watcher.stats;
 *   console.log({ received, lostByKernel, foreign });
 *   watcher.close();
 * }, 1000);
 * for await (const _ of watcher) continue;
 * ```
 */
export interface WatcherStats {
  /** Messages received from the kernel (events, ACKs and unknown types). */
  received: number;
  /** Events handed to the consumer. */
  delivered: number;
  /** Kernel events removed by procwatch's own filters. */
  filtered: number;
  /** Events the kernel dropped because the socket buffer was full. */
  lostByKernel: number;
  /** Events dropped because the consumer did not keep up with the queue. */
  lostInQueue: number;
  /** Times the kernel reported a socket overrun (ENOBUFS). */
  overruns: number;
  /** Messages that could not be decoded (truncated, inconsistent lengths). */
  malformed: number;
  /** Messages not sent by the kernel, ignored. */
  foreign: number;
  /** Proc events of a type this version does not know. */
  unknown: number;
}

/**
 * Counters all at zero.
 *
 * @example
 * ```ts
 * import { zeroStats } from "./stats.ts";
 * console.log(zeroStats().received); // 0
 * ```
 */
export function zeroStats(): WatcherStats {
  return {
    received: 0,
    delivered: 0,
    filtered: 0,
    lostByKernel: 0,
    lostInQueue: 0,
    overruns: 0,
    malformed: 0,
    foreign: 0,
    unknown: 0,
  };
}
