/**
 * The options of `watch()`: each documented with its default, checked and
 * given its default once ({@linkcode resolveOptions}), so the rest of the
 * watcher reads plain values.
 *
 * May import: ground/, lib/events/ and this room's filters.ts (types only).
 *
 * @module
 */

import { EVENT_TYPES, type EventType } from "../events/events.ts";
import { UsageError } from "../../ground/errors.ts";
import type { ProcessFilterOptions } from "../process/filters.ts";

/**
 * Options of `watch()`. Process filters (`tree`, `comm`, `match`, `uid`, `ppid`) compose.
 *
 * @example
 * ```ts
 * import { watch, type WatchOptions } from "@procwatch/procwatch";
 *
 * const options: WatchOptions = {
 *   events: ["exec", "exit"],
 *   threads: false,
 *   signal: AbortSignal.timeout(5000),
 * };
 * for await (const event of watch(options)) console.log(event.type);
 * ```
 */
export interface WatchOptions extends ProcessFilterOptions {
  /**
   * Event types to report.
   *
   * @default {all event types}
   */
  events?: readonly EventType[];
  /**
   * Report only events about these processes (a fork counts for parent and child).
   *
   * @default {every process}
   */
  pids?: readonly number[];
  /**
   * Report events of threads other than a process's main thread.
   *
   * @default {false}
   */
  threads?: boolean;
  /**
   * Report only exits with a non-zero status or a signal (and core dumps).
   *
   * @default {false}
   */
  failedOnly?: boolean;
  /**
   * Attach `ProcessInfo` (`event.process`: name, command line, exe,
   * cwd, user, parent, tty, duration at exit) to every event. Costs /proc
   * reads at each exec.
   *
   * @default {false}
   */
  context?: boolean;
  /**
   * With `context`: read the namespaces of each process at its fork and exec
   * (`process.namespaces`, eight /proc links each time). `false` spares those
   * reads, for output that does not show them (`watch` without `-x`), and
   * `process.namespaces` is then `null`.
   *
   * @default {true}
   */
  namespaces?: boolean;
  /**
   * Most processes the process table keeps (used by context and filters).
   *
   * @default {65536}
   */
  processTableSize?: number;
  /**
   * How long an exited process stays in the table for late events, in ms.
   *
   * @default {2000}
   */
  exitGraceMs?: number;
  /**
   * With `context` or `match`: a worker thread with its own exec-only
   * subscription reads each new program's command line the moment it starts,
   * for processes that exit before the watcher gets to them.
   *
   * @default {true}
   */
  execCapture?: boolean;
  /**
   * Closes the watcher when aborted (iteration then ends). Already aborted:
   * `watch()` throws the signal's reason.
   *
   * @default {undefined} (not abortable)
   */
  signal?: AbortSignal;
  /**
   * Let the kernel filter: event types through `proc_input` (Linux ≥ 6.6) or
   * else a classic BPF socket filter, and `pids` through the socket filter on
   * every kernel (see `ProcWatcher.socketFilter`). `false`: the
   * kernel sends everything and procwatch filters. `"bpf"`: event types
   * through the socket filter even where `proc_input` exists (what older
   * kernels get; for tests and comparisons).
   *
   * @default {true}
   */
  kernelFilter?: boolean | "bpf";
  /**
   * Socket receive buffer to ask for, in bytes (capped to what the kernel grants).
   *
   * @default {16777216}
   */
  receiveBufferBytes?: number;
  /**
   * How many events may wait for a slow consumer before they count as lost.
   *
   * @default {65536}
   */
  queueCapacity?: number;
  /**
   * While events keep coming, how long the watcher may let them gather in the
   * socket before reading them in one go, in ms: under load each wake-up then
   * carries hundreds of events (less CPU per event), at the price of up to
   * this much delay. The first event after a quiet spell is read at once.
   * `0` reads every event as soon as it arrives (lowest latency: what
   * `waitForExit()` uses).
   *
   * @default {8}
   */
  maxBatchDelayMs?: number;
  /**
   * While the watcher is open, SIGINT/SIGTERM/SIGHUP unregister it from the
   * kernel and exit with 128 + the signal number. Set `false` to handle those
   * signals yourself (then call `close()` in your handler).
   *
   * @default {true}
   */
  handleSignals?: boolean;
}

/** {@linkcode WatchOptions} checked, with every default applied. */
export interface WatchSettings {
  /** The event types to deliver. */
  readonly types: ReadonlySet<EventType>;
  /** The pids to deliver events of; `null`: every process. */
  readonly pids: ReadonlySet<number> | null;
  readonly threads: boolean;
  readonly failedOnly: boolean;
  readonly context: boolean;
  readonly namespaces: boolean;
  readonly processTableSize: number;
  readonly exitGraceMs: number;
  readonly execCapture: boolean;
  readonly signal: AbortSignal | undefined;
  readonly kernelFilter: boolean | "bpf";
  readonly receiveBufferBytes: number;
  readonly queueCapacity: number;
  readonly maxBatchDelayMs: number;
  readonly handleSignals: boolean;
  /** The process filters, as given (compiled by `compileFilters`). */
  readonly filters: ProcessFilterOptions;
}

/**
 * Checks `options` and applies the defaults documented on {@linkcode WatchOptions}.
 *
 * @throws {UsageError} for an unknown event type, a pid that is not a positive
 * integer, or a size or time that is out of range (`queueCapacity` and
 * `processTableSize` below 1 or fractional, `exitGraceMs` or
 * `maxBatchDelayMs` negative or not a number).
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 * const settings = resolveOptions({ events: ["exit"], pids: [] });
 * console.log(settings.types.has("exit"), settings.pids, settings.queueCapacity); // true null 65536
 * ```
 */
export function resolveOptions(options: WatchOptions = {}): WatchSettings {
  const {
    events = EVENT_TYPES,
    pids = [],
    threads = false,
    failedOnly = false,
    context = false,
    namespaces = true,
    processTableSize = 65536,
    exitGraceMs = 2000,
    execCapture = true,
    signal,
    kernelFilter = true,
    receiveBufferBytes = 16 << 20,
    queueCapacity = 65536,
    maxBatchDelayMs = 8,
    handleSignals = true,
    ...filters
  } = options;
  positiveInteger("queueCapacity", queueCapacity);
  positiveInteger("processTableSize", processTableSize);
  nonNegative("exitGraceMs", exitGraceMs);
  nonNegative("maxBatchDelayMs", maxBatchDelayMs);
  for (const type of events) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new UsageError(`unknown event type '${type}' (known: ${EVENT_TYPES.join(", ")})`);
    }
  }
  for (const pid of pids) {
    if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`invalid pid: ${pid}`);
  }
  return {
    types: new Set(events),
    pids: pids.length > 0 ? new Set(pids) : null,
    threads,
    failedOnly,
    context,
    namespaces,
    processTableSize,
    exitGraceMs,
    execCapture,
    signal,
    kernelFilter,
    receiveBufferBytes,
    queueCapacity,
    maxBatchDelayMs,
    handleSignals,
    filters,
  };
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`invalid ${name}: ${value} (a whole number of at least 1)`);
  }
}

function nonNegative(name: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new UsageError(`invalid ${name}: ${value} (a number of at least 0)`);
  }
}
