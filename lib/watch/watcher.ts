/**
 * The watcher: a subscription to the kernel's proc events, drained into a
 * bounded queue and read as an `AsyncIterable` (modelled on `Deno.watchFs`).
 *
 * `ProcWatcher` composes the parts, each in its own module of this room:
 * options.ts (checked options, defaults), subscribe.ts (open, LISTEN, ACK,
 * socket filter, IGNORE, close), receive.ts (drain, decode, route),
 * select.ts (types, threads, failed exits, pids), loss.ts (kernel and queue
 * losses as `lost` events), pump.ts (when to drain: poll on another thread,
 * timers during a flow), shutdown.ts (close once, lifecycle registration).
 * This file holds the consumer's side: taking from the queue and waiting.
 *
 * May import: lib/events/, lib/process/ (types), lib/connector/ (types) and
 * this room's modules (the process context through context.ts).
 *
 * @module
 */

import type { ProcEvent } from "../events/events.ts";
import type { EventContext } from "../process/enrich.ts";
import type { ProcessTable } from "../process/table.ts";
import type { FilterMode } from "../connector/subscription.ts";
import type { SocketFilterInfo } from "../connector/bpf.ts";
import { makeContext } from "./context.ts";
import { resolveOptions, type WatchOptions } from "./options.ts";
import { BoundedQueue } from "./queue.ts";
import { type WatcherStats, zeroStats } from "./stats.ts";
import { EventSelection } from "./select.ts";
import { LossAccounting } from "./loss.ts";
import { Receiver } from "./receive.ts";
import { Subscription } from "./subscribe.ts";
import { Pump } from "./pump.ts";
import { Shutdown } from "./shutdown.ts";

export type { WatcherStats, WatchOptions };

/**
 * A live subscription to process events. Iterate it with `for await`; close
 * it with `close()`, `using` or `await using`.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 *
 * using watcher = watch({ events: ["exec", "exit"] });
 * for await (const event of watcher) {
 *   console.log(event.type, "pid" in event ? event.pid : "");
 * }
 * ```
 */
export class ProcWatcher implements AsyncIterable<ProcEvent>, Disposable, AsyncDisposable {
  /** Whether the kernel selects event types for us, or procwatch does. */
  readonly filterMode: FilterMode;
  /** The receive buffer the kernel granted, in bytes. */
  readonly receiveBufferBytes: number;
  /** Our netlink port id; only the kernel (port 0) is believed. */
  readonly portId: number;
  /**
   * What the classic BPF socket filter on the socket selects: event types
   * (kernels without `proc_input`), pids (`pids` without context or process
   * filters, up to the instruction limit), or nothing (`instructions` 0).
   */
  readonly socketFilter: SocketFilterInfo;

  readonly #queue: BoundedQueue<ProcEvent>;
  readonly #stats: WatcherStats = zeroStats();
  /** Process table, filters and enrichment; `null` when none is asked for (no cost). */
  readonly #context: EventContext | null;
  readonly #subscription: Subscription;
  readonly #loss: LossAccounting;
  readonly #pump: Pump;
  readonly #shutdown: Shutdown;
  readonly #finished: Promise<void>;
  #waiter: (() => void) | null = null;
  #error: unknown = undefined;

  /**
   * Opens and registers a watcher; prefer {@linkcode watch}.
   *
   * @throws {UsageError} (code `"USAGE"`) for a bad option: an unknown event
   *   type, a pid that is not a positive integer, an unknown user, an invalid
   *   regular expression, cgroup, unit or container filter, a size or time
   *   out of range (`queueCapacity`, `processTableSize`, `exitGraceMs`,
   *   `maxBatchDelayMs`).
   * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) when the `tree`
   *   root does not exist.
   * @throws {FfiPermissionError} (code `"DENO_PERMISSION"`) when Deno runs
   *   without `--allow-ffi`.
   * @throws {PermissionError} (code `"PERMISSION"`) when the kernel refuses to
   *   let this process listen (`EPERM`/`EACCES`: not root before Linux 6.6, or
   *   a sandbox forbids netlink sockets).
   * @throws {NetworkNamespaceError} (code `"NETWORK_NAMESPACE"`) outside the
   *   initial network namespace (`ECONNREFUSED`).
   * @throws {ProcEventsUnavailableError} (code `"UNAVAILABLE"`) when the kernel
   *   has no netlink connector, does not acknowledge PROC_CN_MCAST_LISTEN, or
   *   answers it with an error.
   * @throws {ErrnoError} (code `"SYSTEM"`) when opening, binding or subscribing
   *   the socket fails in another way (e.g. `EMFILE`: no descriptor left).
   * @throws {DOMException} `signal`'s reason (`AbortError` unless it was aborted
   *   with another) when `signal` is already aborted.
   */
  constructor(options: WatchOptions = {}) {
    const settings = resolveOptions(options);
    settings.signal?.throwIfAborted();
    this.#queue = new BoundedQueue(settings.queueCapacity);
    const context = this.#context = makeContext(settings);
    const { kernelFilter } = settings;
    // The exec-capture worker listens before we do (this waits for it, bounded): every exec
    // this watcher receives, from the first on, it has caught too — argv included.
    context?.arm(kernelFilter !== false);
    let subscription: Subscription, receiver: Receiver;
    try {
      subscription = this.#subscription = new Subscription(settings, context !== null);
      const { socket } = subscription;
      const loss = this.#loss = new LossAccounting(this.#stats, this.#queue, socket);
      const selection = new EventSelection(settings);
      receiver = new Receiver(socket, this.#stats, loss, selection, context, subscription);
      subscription.listen(receiver, loss, kernelFilter === true && !context?.kernelFilterAbsent);
    } catch (error) {
      context?.close();
      throw error;
    }
    this.socketFilter = subscription.socketFilter;
    this.filterMode = subscription.filterMode;
    // Subscribed first, then scanned: a process born in between is in one or the other.
    context?.start();
    this.receiveBufferBytes = subscription.socket.receiveBufferBytes;
    this.portId = subscription.socket.portId;
    const shutdown = this.#shutdown = new Shutdown(this, settings.signal, settings.handleSignals);
    const queue = this.#queue;
    this.#pump = new Pump(
      {
        get closed() {
          return shutdown.closing;
        },
        drain: (limit) => receiver.drain(limit),
        deliver: () => {
          if (queue.length > 0) this.#notify();
        },
      },
      subscription.socket,
      settings.maxBatchDelayMs,
    );
    // Started after the caller's synchronous code: its first wait loads
    // Deno's timers (~13 ms on first use), which a caller that is armed now
    // (`wait`, reporting it) should not pay before that.
    this.#finished = Promise.resolve().then(() => this.#run());
  }

  /** A snapshot of the counters, with the kernel's drop count brought up to date. */
  get stats(): Readonly<WatcherStats> {
    this.#loss.syncDrops();
    return { ...this.#stats };
  }

  /** The most events that ever waited in the queue at once (of `queueCapacity`). */
  get queueHighWater(): number {
    return this.#queue.highWater;
  }

  /**
   * The process table behind `context` and the process filters; `null` when
   * neither is used.
   */
  get processTable(): ProcessTable | null {
    return this.#context?.table ?? null;
  }

  /**
   * Settles when every helper of the watcher listens too (the exec-capture
   * worker starts asynchronously); the watcher itself listens from `watch()` on.
   */
  get ready(): Promise<void> {
    return this.#context?.ready ?? Promise.resolve();
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#shutdown.closing;
  }

  /**
   * Unregisters from the kernel (`PROC_CN_MCAST_IGNORE`) and ends iteration.
   * Events already queued are still delivered. Safe to call more than once.
   */
  close(): void {
    if (!this.#shutdown.begin()) return;
    this.#loss.syncDrops();
    this.#subscription.close();
    this.#context?.close();
    this.#shutdown.end();
    this.#pump.interrupt();
    this.#notify();
  }

  /** Closes the watcher. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the watcher and waits until its socket is released. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#finished;
  }

  /** Iterates events one by one. Leaving the loop (`break`, `throw`) closes the watcher. */
  [Symbol.asyncIterator](): AsyncIterator<ProcEvent> {
    return {
      next: async (): Promise<IteratorResult<ProcEvent>> => {
        for (;;) {
          const event = this.#take();
          if (event !== undefined) return { value: event, done: false };
          if (this.#error !== undefined) throw this.#error;
          if (this.closed) return { value: undefined, done: true };
          await this.#wait();
        }
      },
      return: (): Promise<IteratorResult<ProcEvent>> => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /**
   * Iterates events in the batches they arrived in: cheaper per event, and a
   * natural point to flush output. Leaving the loop closes the watcher.
   *
   * @example
   * ```ts
   * import { watch } from "@procwatch/procwatch";
   *
   * for await (const batch of watch().batches()) console.log(batch.length);
   * ```
   */
  async *batches(): AsyncGenerator<ProcEvent[], void, undefined> {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const batch = this.#queue.takeAll();
          this.#stats.delivered += batch.length;
          this.#loss.flush();
          yield batch;
          continue;
        }
        if (this.#error !== undefined) throw this.#error;
        if (this.closed) return;
        await this.#wait();
      }
    } finally {
      this.close();
    }
  }

  /** Pumps until closed; a failure ends iteration with that error. */
  async #run(): Promise<void> {
    try {
      await this.#pump.run();
    } catch (error) {
      this.#error = error;
      this.close();
    }
    this.#pump.interrupt();
    this.#notify();
    await this.#subscription.socket.close();
  }

  #take(): ProcEvent | undefined {
    const event = this.#queue.shift();
    if (event === undefined) return undefined;
    this.#stats.delivered++;
    if (this.#loss.pending) this.#loss.flush();
    return event;
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#waiter = resolve);
  }

  #notify(): void {
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter();
    }
  }
}

/** The process table, filters and enrichment, when `settings` need any. */
/**
 * Starts watching process events: subscribed when it returns. Throws a
 * `ProcwatchError` subclass with advice when the kernel will not send them.
 *
 * @throws {UsageError} (code `"USAGE"`) for a bad option: an unknown event
 *   type, a pid that is not a positive integer, an unknown user, an invalid
 *   regular expression, cgroup, unit or container filter, a size or time
 *   out of range (`queueCapacity`, `processTableSize`, `exitGraceMs`,
 *   `maxBatchDelayMs`).
 * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) when the `tree`
 *   root does not exist.
 * @throws {FfiPermissionError} (code `"DENO_PERMISSION"`) when Deno runs
 *   without `--allow-ffi`.
 * @throws {PermissionError} (code `"PERMISSION"`) when the kernel refuses to
 *   let this process listen (`EPERM`/`EACCES`: not root before Linux 6.6, or
 *   a sandbox forbids netlink sockets).
 * @throws {NetworkNamespaceError} (code `"NETWORK_NAMESPACE"`) outside the
 *   initial network namespace (`ECONNREFUSED`).
 * @throws {ProcEventsUnavailableError} (code `"UNAVAILABLE"`) when the kernel
 *   has no netlink connector, does not acknowledge PROC_CN_MCAST_LISTEN, or
 *   answers it with an error.
 * @throws {ErrnoError} (code `"SYSTEM"`) when opening, binding or subscribing
 *   the socket fails in another way (e.g. `EMFILE`: no descriptor left).
 * @throws {DOMException} `signal`'s reason (`AbortError` unless it was aborted
 *   with another) when `signal` is already aborted.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 *
 * using watcher = watch({ events: ["exit"] });
 * for await (const event of watcher) {
 *   if (event.type === "exit" && event.exitCode !== 0) console.log(event);
 * }
 * ```
 */
export function watch(options?: WatchOptions): ProcWatcher {
  return new ProcWatcher(options);
}
