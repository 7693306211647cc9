/**
 * Turning events into text: the `"./format"` export of the package.
 * forkstat-style human lines, JSON lines, the process tree, the `-S` summary,
 * and what they need: the wall-clock offset of kernel timestamps and a
 * bounded, never-blocking writer for stdout and stderr.
 *
 * This file also re-exports lib/events/'s `lostEventNow`, the `lost` event a
 * writer reports its dropped lines with.
 *
 * May import: ground/, ffi/, lib/events/, lib/process/.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { HUMAN_HEADER, humanLine } from "@procwatch/procwatch/format";
 *
 * console.log(HUMAN_HEADER);
 * using watcher = watch({ context: true });
 * for await (const event of watcher) console.log(humanLine(event));
 * ```
 *
 * @module
 */

export {
  clockTime,
  describeExit,
  escapeText,
  eventToJson,
  formatBytes,
  formatDuration,
  HUMAN_HEADER,
  humanCommandLine,
  humanLine,
  isoTimeNs,
  lossReason,
  plural,
  processLabel,
  shortExit,
  type Style,
} from "./text.ts";
export { TREE_GROUP_BY, TreeFormatter, type TreeGroupBy } from "./tree.ts";
export { EventStats, type StatsColumn, type StatsRow } from "./stats.ts";
export { type WallClock, wallClock } from "../events/wall_clock.ts";
export { lostEventNow } from "../events/lost_event.ts";
export {
  BrokenPipeError,
  finishOutput,
  interruptOutput,
  OUTPUT_CAPACITY,
  outputInterrupted,
  OutputStream,
  type OutputStreamOptions,
  SIGNAL_GRACE_MS,
  stderr,
  stdout,
  warn,
} from "./output.ts";
