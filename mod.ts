/**
 * procwatch: every process event of a Linux machine, as typed events.
 *
 * It listens to the kernel's proc connector and reports forks, execs, uid/gid
 * and session changes, ptrace attach/detach, name changes, core dumps and
 * exits — with the exit status of any process, not only of children. Run with
 * `deno run --allow-ffi` as root (or unprivileged on Linux ≥ 6.6).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 *
 * using watcher = watch({ events: ["exec", "exit"] });
 * for await (const event of watcher) {
 *   if (event.type === "exit" && event.exitCode !== 0) {
 *     console.log(`${event.pid} failed: ${event.signal ?? event.exitCode}`);
 *   }
 * }
 * ```
 *
 * Wait for any process — not only a child — and learn how it ended:
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch";
 *
 * const info = await waitForExit(1234, { timeout: 60_000 });
 * console.log(`${info.pid}: ${info.signal ?? `exit code ${info.exitCode}`}`);
 * ```
 *
 * Filters and context: follow a sub-tree, name every process, even the ones
 * that are gone before anyone looks.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { commandLine } from "@procwatch/procwatch/proc";
 *
 * using watcher = watch({ tree: 1234, events: ["exec", "exit"], context: true });
 * for await (const event of watcher) {
 *   const info = event.process;
 *   console.log(event.type, info?.pid, info?.user, commandLine(info?.cmdline ?? []));
 * }
 * ```
 *
 * Export to the systems a fleet already runs: Prometheus metrics and a
 * NATS JetStream stream (their clients load only when these are called).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { startMetrics, startNatsExport } from "@procwatch/procwatch/export";
 *
 * using watcher = watch({ context: true });
 * const metrics = await startMetrics({ listen: "127.0.0.1:9464", watcher });
 * const nats = await startNatsExport({ servers: "nats://127.0.0.1:4222" });
 * for await (const event of watcher) {
 *   metrics.observe(event);
 *   nats.publish(event);
 * }
 * ```
 *
 * @module
 */

export {
  closeAll as closeAllWatchers,
  ProcWatcher,
  watch,
  type WatcherStats,
  type WatchOptions,
} from "./lib/watch/mod.ts";
export { type FilterMode, type SocketFilterInfo } from "./lib/connector/mod.ts";
export { MAX_RECEIVE_BUFFER_REQUEST } from "./ffi/connector.ts";
export { type ProcessFilterOptions } from "./lib/process/mod.ts";
export * from "./lib/events/mod.ts";
export {
  type ErrorCode,
  NetworkNamespaceError,
  NoSuchProcessError,
  PermissionError,
  ProcEventsUnavailableError,
  ProcwatchError,
  UsageError,
  WaitTimeoutError,
} from "./ground/errors.ts";
export { ErrnoError, FfiPermissionError } from "./ffi/libc.ts";
export { MissingPermissionError } from "./lib/export/address.ts";
export {
  checkSignal,
  decodeWaitStatus,
  type ExitInfo,
  type ExitSource,
  kill,
  shellStatus,
  signalName,
  UNKNOWN_SHELL_STATUS,
  type WaitArmed,
  waitForAll,
  waitForAny,
  waitForExit,
  type WaitMethod,
  type WaitOptions,
  type WaitStatus,
} from "./lib/wait/mod.ts";
