/**
 * The vocabulary every other room speaks: the typed events procwatch reports
 * (events.ts), the one table of event types (event_types.ts) from which
 * decoding, filters, `--events`, labels and stats derive, signal and wait
 * status names (signals.ts), where a process runs (place.ts), kernel
 * timestamps in wall-clock time (wall_clock.ts), and the `lost` event
 * procwatch stamps itself (lost_event.ts).
 *
 * What the package exports of this room, `"."` re-exports from here.
 *
 * @example
 * ```ts
 * import { EVENT_TYPES } from "@procwatch/procwatch";
 * console.log(EVENT_TYPES.includes("exec")); // true
 * ```
 *
 * May import: ground/, ffi/.
 *
 * @module
 */

export {
  type CommEvent,
  type CoredumpEvent,
  EVENT_TABLE,
  EVENT_TYPES,
  type EventBase,
  type EventType,
  type EventTypeRow,
  type ExecEvent,
  type ExitEvent,
  type ForkEvent,
  type GidEvent,
  isThreadEvent,
  type KernelEvent,
  type LostEvent,
  type ProcessInfo,
  type ProcEvent,
  type PtraceEvent,
  type SidEvent,
  subjectPid,
  type UidEvent,
} from "./events.ts";
