/**
 * A `lost` event stamped now, for losses procwatch itself notices outside
 * the receive loop (a stalled reader of the CLI's output, a full exporter
 * spool): the same clocks as every other event's `timestampNs` and `time`.
 *
 * @module
 */

import { monotonicNs } from "../../ffi/clock.ts";
import type { LostEvent } from "./events.ts";
import { wallClock } from "./wall_clock.ts";

/**
 * A `lost` event of `count` events, lost for `reason`, stamped now.
 *
 * @example
 * ```ts
 * import { lostEventNow } from "@procwatch/procwatch/format";
 * console.log(lostEventNow(3, "output").count); // 3
 * ```
 */
export function lostEventNow(count: number, reason: LostEvent["reason"]): LostEvent {
  const timestampNs = monotonicNs();
  return {
    type: "lost",
    cpu: null,
    timestampNs,
    time: new Date(Number((timestampNs + wallClock.offsetAt(timestampNs)) / 1_000_000n)),
    count,
    reason,
    exact: true,
  };
}
