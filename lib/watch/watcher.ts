/**
 * The watcher: a subscription to the kernel's proc events, drained into a
 * bounded queue and read as an `AsyncIterable` (modelled on `Deno.watchFs`).
 *
 * Receiving works in two halves. A pump waits on another thread with
 * `poll([socket, eventfd])` — the only non-blocking FFI call — and then drains
 * the socket on the JS thread with synchronous `recvfrom(MSG_DONTWAIT)` until
 * it is empty, decoding into the queue. The consumer takes from the queue.
 * Closing writes the eventfd, which wakes the poll.
 *
 * @module
 */

import type { ConnectorSocket } from "../../ffi/connector.ts";
import { wallClock } from "../events/wall_clock.ts";
import { decodeDatagram, type DecodedMessage } from "../connector/decode.ts";
import {
  EVENT_TYPES,
  type EventType,
  isThreadEvent,
  type KernelEvent,
  type LostEvent,
  type ProcEvent,
} from "../events/events.ts";
import { UsageError } from "../../ground/errors.ts";
import { EventContext } from "../process/enrich.ts";
import { compileFilters, hasFilters, type ProcessFilterOptions } from "./filters.ts";
import type { ProcessTable } from "../process/table.ts";
import { UserNames } from "../process/users.ts";
import { track, untrack } from "./lifecycle.ts";
import { readNetlinkDrops } from "../connector/drops.ts";
import { PROC_EVENT_ALL, ProcEventWhat } from "../../ground/cn_proc.ts";
import { BoundedQueue } from "./queue.ts";
import { SequenceTracker } from "../connector/sequence.ts";
import { type FilterMode, ignore, listen, openSocket } from "../connector/subscription.ts";
import { encodeProgram, planSocketFilter, type SocketFilterInfo } from "../connector/bpf.ts";
import { ErrnoError } from "../../ffi/libc.ts";

/**
 * Options of {@linkcode watch}. Process filters (`tree`, `comm`, `match`, `uid`, `ppid`) compose.
 *
 * @example
 * ```ts ignore
 * import { watch, type WatchOptions } from "../../mod.ts";
 * const options: WatchOptions = { events: ["exec", "exit"], threads: false, signal: AbortSignal.timeout(5000) };
 * for await (const event of watch(options)) console.log(event.type);
 * ```
 */
export interface WatchOptions extends ProcessFilterOptions {
  /** Event types to report; all when absent. */
  events?: readonly EventType[];
  /** Report only events about these processes (a fork counts for parent and child). */
  pids?: readonly number[];
  /** Report events of threads other than a process's main thread. Default `false`. */
  threads?: boolean;
  /** Report only exits with a non-zero status or a signal (and core dumps). Default `false`. */
  failedOnly?: boolean;
  /**
   * Attach `ProcessInfo` (`event.process`: name, command line, exe,
   * cwd, user, parent, tty, duration at exit) to every event. Costs /proc
   * reads at each exec. Default `false`.
   */
  context?: boolean;
  /** Most processes the process table keeps (used by context and filters). Default 65536. */
  processTableSize?: number;
  /** How long an exited process stays in the table for late events, in ms. Default 2000. */
  exitGraceMs?: number;
  /**
   * With `context` or `match`: a worker thread with its own exec-only
   * subscription reads each new program's command line the moment it starts,
   * for processes that exit before the watcher gets to them. Default `true`.
   */
  execCapture?: boolean;
  /** Closes the watcher when aborted. */
  signal?: AbortSignal;
  /**
   * Let the kernel filter: event types through `proc_input` (Linux ≥ 6.6) or
   * else a classic BPF socket filter, and `pids` through the socket filter on
   * every kernel (see {@linkcode ProcWatcher.socketFilter}). `false`: the
   * kernel sends everything and procwatch filters. `"bpf"`: event types
   * through the socket filter even where `proc_input` exists (what older
   * kernels get; for tests and comparisons). Default `true`.
   */
  kernelFilter?: boolean | "bpf";
  /** Socket receive buffer to ask for, in bytes (capped to what the kernel grants). Default 16 MiB. */
  receiveBufferBytes?: number;
  /** How many events may wait for a slow consumer before they count as lost. Default 65536. */
  queueCapacity?: number;
  /**
   * While the watcher is open, SIGINT/SIGTERM/SIGHUP unregister it from the
   * kernel and exit with 128 + the signal number. Default `true`; set `false`
   * to handle those signals yourself (then call `close()` in your handler).
   */
  handleSignals?: boolean;
}

/**
 * Counters of a watcher; they only grow.
 *
 * @example
 * ```ts ignore
 * import { watch } from "../../mod.ts";
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

/** Bits of `enum proc_cn_event` for each event type. */
const WHAT_BITS: Record<EventType, number> = {
  fork: ProcEventWhat.FORK,
  exec: ProcEventWhat.EXEC,
  uid: ProcEventWhat.UID,
  gid: ProcEventWhat.GID,
  sid: ProcEventWhat.SID,
  ptrace: ProcEventWhat.PTRACE,
  comm: ProcEventWhat.COMM,
  coredump: ProcEventWhat.COREDUMP,
  exit: ProcEventWhat.EXIT,
};

/** Datagrams drained before giving the consumer a turn. */
const DRAIN_BATCH = 4096;
/**
 * While events keep coming, wait on a timer between drains instead of
 * re-arming the poll. A wake-up through a `nonblocking` FFI call costs
 * ~100–300 µs of CPU on a small VM (thread hand-offs, mostly in the kernel),
 * a timer somewhat less, and each timer drain takes everything that arrived
 * meanwhile, so during a storm the cost per event falls with the batch size.
 * The wait starts at LINGER_MIN_MS and doubles while rounds bring few events
 * (a slow trickle, where wake-ups dominate) up to LINGER_MAX_MS: that bounds
 * the added latency, and only while events are already flowing; the first
 * event after a quiet spell is read as soon as the poll returns.
 */
const LINGER_MIN_MS = 2;
const LINGER_MAX_MS = 8;
/** A round with fewer datagrams than this lengthens the next wait. */
const LINGER_SMALL_ROUND = 16;

/**
 * A live subscription to process events. Iterate it with `for await`; close
 * it with `close()`, `using` or `await using`.
 *
 * @example
 * ```ts ignore
 * import { watch } from "../../mod.ts";
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

  readonly #socket: ConnectorSocket;
  readonly #queue: BoundedQueue<ProcEvent>;
  readonly #stats: WatcherStats = {
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
  readonly #types: ReadonlySet<string>;
  readonly #pids: ReadonlySet<number> | null;
  readonly #threads: boolean;
  readonly #failedOnly: boolean;
  /** Process table, filters and enrichment; `null` when none is asked for (no cost). */
  readonly #context: EventContext | null;
  readonly #sequences = new SequenceTracker();
  /** Whether sequence gaps count losses: only when the kernel filters nothing out. */
  #countGaps: boolean;
  readonly #messages: DecodedMessage[] = [];
  readonly #acks = new Map<number, number>();
  readonly #finished: Promise<void>;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => this.close();
  #kernelDrops = 0;
  #pendingKernelLoss = 0;
  #pendingQueueLoss = 0;
  #waiter: (() => void) | null = null;
  #closing = false;
  #error: unknown = undefined;

  /** Opens and registers a watcher; prefer {@linkcode watch}. */
  constructor(options: WatchOptions = {}) {
    const events = options.events ?? EVENT_TYPES;
    for (const type of events) {
      if (!(EVENT_TYPES as readonly string[]).includes(type)) {
        throw new UsageError(
          `unknown event type '${type}' (known: ${EVENT_TYPES.join(", ")})`,
        );
      }
    }
    for (const pid of options.pids ?? []) {
      if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`invalid pid: ${pid}`);
    }
    this.#types = new Set(events);
    this.#pids = options.pids && options.pids.length > 0 ? new Set(options.pids) : null;
    this.#threads = options.threads ?? false;
    this.#failedOnly = options.failedOnly ?? false;
    this.#signal = options.signal;
    this.#signal?.throwIfAborted();
    this.#queue = new BoundedQueue(options.queueCapacity ?? 65536);
    this.#context = makeContext(options);

    let mask = 0;
    for (const type of events) mask |= WHAT_BITS[type];
    // The table follows forks, execs, renames, user changes and exits, delivered or not.
    if (this.#context !== null) mask |= TABLE_BITS;
    if (this.#failedOnly && (mask & ProcEventWhat.EXIT)) {
      mask = (mask & ~ProcEventWhat.EXIT) | ProcEventWhat.NONZERO_EXIT;
    }
    // Every type asked for: ask for PROC_EVENT_ALL itself (its NONZERO_EXIT bit
    // has no type of its own), so the kernel filters nothing out and each
    // CPU's sequence numbers stay gap-free; gaps then count losses exactly.
    if (EVENT_TYPES.every((type) => this.#types.has(type)) && !this.#failedOnly) {
      mask = PROC_EVENT_ALL;
    }
    mask >>>= 0;

    const kernelFilter = options.kernelFilter ?? true;
    const typeMask = mask === (PROC_EVENT_ALL >>> 0) ? null : mask;
    // Pids go to the socket filter unless the process table needs every
    // process (context and process filters follow parents, names, exits).
    const kernelPids = kernelFilter !== false && this.#pids !== null && this.#context === null
      ? [...this.#pids]
      : null;
    const pidsReason = this.#pids !== null && kernelFilter !== false && this.#context !== null
      ? "the process table follows every process"
      : null;
    const plan = (types: number | null, acks: boolean) =>
      planSocketFilter(types, kernelPids, pidsReason, acks);
    // While subscribing, ACKs pass (LISTEN waits for its own); the types wait
    // for LISTEN's answer (proc_input or not) unless the program is forced.
    const first = plan(kernelFilter === "bpf" ? typeMask : null, true);
    // The exec-capture worker listens before we do (this waits for it, bounded): every exec
    // this watcher receives, from the first on, it has caught too — argv included.
    this.#context?.arm(kernelFilter !== false);
    try {
      // The program is attached before the socket joins the group: no
      // message reaches it unfiltered.
      this.#socket = openSocket(
        options.receiveBufferBytes ?? 16 << 20,
        first.program === null ? null : encodeProgram(first.program),
      );
    } catch (error) {
      this.#context?.close();
      throw error;
    }
    this.socketFilter = this.#socket.filterError === null
      ? first.info
      : refused(first.info, this.#socket.filterError);
    // Already while LISTEN is answered (events may flow, the buffer may
    // overrun): gaps count when nothing can be filtered by the kernel.
    this.#countGaps = (mask === (PROC_EVENT_ALL >>> 0) || !kernelFilter) &&
      this.socketFilter.instructions === 0;
    try {
      const subscribed = listen(
        this.#socket,
        mask,
        kernelFilter === true && this.#context?.kernelFilterAbsent !== true,
        (ack) => {
          this.#drain(Number.MAX_SAFE_INTEGER);
          const error = this.#acks.get(ack);
          return { seen: error !== undefined, error: error ?? 0 };
        },
      );
      // No proc_input filter (Linux < 6.6): the socket filter selects the types.
      const bpfTypes = this.socketFilter.types ||
        (subscribed === "userspace" && kernelFilter === true && typeMask !== null);
      if (bpfTypes || this.socketFilter.instructions > 0) {
        // Subscribed: from now on ACKs (other listeners' LISTEN and IGNORE)
        // are dropped too, as the proc_input filter does.
        const replaced = this.#attach(plan(bpfTypes ? typeMask : null, false));
        // A refused program leaves the one attached before in place.
        if (replaced.instructions > 0 || this.socketFilter.instructions === 0) {
          this.socketFilter = replaced;
        }
      }
      this.filterMode = this.socketFilter.types ? "kernel" : subscribed;
    } catch (error) {
      this.#socket.close();
      this.#context?.close();
      throw error;
    }
    this.#acks.clear();
    // Subscribed first, then scanned: a process born in between is in one or the other.
    this.#context?.start();
    // Whatever the kernel drops for us leaves gaps in cn_msg.seq: then the
    // socket's drop counter (sk_drops) counts losses instead.
    this.#countGaps = (this.filterMode === "userspace" || mask === (PROC_EVENT_ALL >>> 0)) &&
      this.socketFilter.instructions === 0;
    this.receiveBufferBytes = this.#socket.receiveBufferBytes;
    this.portId = this.#socket.portId;
    track(this, options.handleSignals ?? true);
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    // Started after the caller's synchronous code: its first wait loads
    // Deno's timers (~13 ms on first use), which a caller that is armed now
    // (`wait`, reporting it) should not pay before that.
    this.#finished = Promise.resolve().then(() => this.#pump());
  }

  /**
   * Attaches the planned program; when the kernel refuses it (a program is
   * charged to `net.core.optmem_max`), procwatch filters instead.
   */
  #attach(plan: ReturnType<typeof planSocketFilter>): SocketFilterInfo {
    if (plan.program === null) return plan.info;
    try {
      this.#socket.attachFilter(encodeProgram(plan.program));
      return plan.info;
    } catch (error) {
      if (!(error instanceof ErrnoError)) throw error;
      return refused(plan.info, error.message);
    }
  }

  /** A snapshot of the counters, with the kernel's drop count brought up to date. */
  get stats(): Readonly<WatcherStats> {
    if (!this.#countGaps && !this.#socket.closed) this.#syncKernelDrops();
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
    return this.#closing;
  }

  /**
   * Unregisters from the kernel (`PROC_CN_MCAST_IGNORE`) and ends iteration.
   * Events already queued are still delivered. Safe to call more than once.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#countGaps) this.#syncKernelDrops();
    ignore(this.#socket);
    this.#socket.close();
    this.#context?.close();
    this.#signal?.removeEventListener("abort", this.#onAbort);
    untrack(this);
    this.#clearSleep();
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
          if (this.#closing) return { value: undefined, done: true };
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
   * ```ts ignore
   * import { watch } from "../../mod.ts";
   * for await (const batch of watch().batches()) console.log(batch.length);
   * ```
   */
  async *batches(): AsyncGenerator<ProcEvent[], void, undefined> {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const batch = this.#queue.takeAll();
          this.#stats.delivered += batch.length;
          this.#flushPendingLoss();
          yield batch;
          continue;
        }
        if (this.#error !== undefined) throw this.#error;
        if (this.#closing) return;
        await this.#wait();
      }
    } finally {
      this.close();
    }
  }

  #take(): ProcEvent | undefined {
    const event = this.#queue.shift();
    if (event === undefined) return undefined;
    this.#stats.delivered++;
    if (this.#pendingKernelLoss + this.#pendingQueueLoss > 0) this.#flushPendingLoss();
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

  async #pump(): Promise<void> {
    try {
      let linger = 0;
      while (!this.#closing) {
        const received = this.#drain(DRAIN_BATCH);
        if (this.#queue.length > 0) this.#notify();
        if (this.#closing) break;
        if (received >= DRAIN_BATCH) {
          // More is waiting: let the consumer run, then go on at once.
          await this.#sleep(0);
        } else if (received > 0) {
          // Events are flowing: collect the next ones in one go a little later.
          linger = linger === 0
            ? LINGER_MIN_MS
            : received < LINGER_SMALL_ROUND
            ? Math.min(linger * 2, LINGER_MAX_MS)
            : Math.max(linger / 2, LINGER_MIN_MS);
          await this.#sleep(linger);
        } else {
          // An empty round: the flow has stopped, the poll takes over again.
          linger = 0;
          await this.#socket.wait(-1);
        }
      }
    } catch (error) {
      this.#error = error;
      this.close();
    }
    this.#clearSleep();
    this.#notify();
    await this.#socket.close();
  }

  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #sleepDone: (() => void) | undefined;

  /** Waits `ms` on a timer that `close()` cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#sleepDone = resolve;
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = undefined;
        this.#sleepDone = undefined;
        resolve();
      }, ms);
    });
  }

  #clearSleep(): void {
    if (this.#sleepTimer === undefined) return;
    clearTimeout(this.#sleepTimer);
    this.#sleepTimer = undefined;
    const done = this.#sleepDone;
    this.#sleepDone = undefined;
    done?.();
  }

  /** Receives up to about `limit` datagrams; returns how many it received. */
  #drain(limit: number): number {
    const socket = this.#socket;
    if (socket.closed) return 0;
    const messages = this.#messages;
    let received = 0;
    while (received < limit) {
      // recvmmsg: one system call per batch of up to 256 datagrams.
      const result = socket.receiveMany();
      if (result.kind === "empty") break;
      if (result.kind === "overrun") {
        this.#stats.overruns++;
        if (!this.#countGaps) this.#syncKernelDrops();
        continue;
      }
      received += result.count;
      // After the receive, before decoding: a clock step is seen before these events get a time.
      wallClock.sync();
      messages.length = 0;
      for (let i = 0; i < result.count; i++) {
        if (socket.sender(i) !== 0) {
          // Only the kernel speaks for the kernel (a root process can unicast to our port).
          this.#stats.foreign++;
          continue;
        }
        if (socket.truncated(i)) {
          this.#stats.malformed++;
          continue;
        }
        const bytes = socket.datagram(i);
        decodeDatagram(bytes, bytes.length, wallClock, messages);
      }
      // Context looks ahead: an exec followed by another exec of its pid was replaced.
      this.#context?.preview(messages);
      for (let j = 0; j < messages.length; j++) this.#handle(messages[j]);
    }
    return received;
  }

  #handle(message: DecodedMessage): void {
    switch (message.kind) {
      case "event": {
        this.#stats.received++;
        const event = message.event;
        if (this.#countGaps && event.cpu !== null) {
          const lost = this.#sequences.observe(event.cpu, message.seq);
          if (lost > 0) this.#reportKernelLoss(lost, event.cpu, true);
        }
        const context = this.#context;
        if (context === null) {
          if (this.#accepts(event)) this.#enqueue(event);
          else this.#stats.filtered++;
          return;
        }
        // Table upkeep sees every event; cheap filters run before any /proc read.
        context.observe(event);
        if (this.#accepts(event) && context.admit(event)) this.#enqueue(event);
        else this.#stats.filtered++;
        return;
      }
      case "ack":
        this.#stats.received++;
        // Numbered on its CPU like an event (any listener's LISTEN or IGNORE).
        if (this.#countGaps && message.cpu !== null) {
          const lost = this.#sequences.observeAck(message.seq, message.cpu);
          if (lost > 0) this.#reportKernelLoss(lost, message.cpu, true);
        }
        this.#acks.set(message.ack, message.error);
        if (this.#acks.size > 64) this.#acks.clear();
        return;
      case "unknown":
        this.#stats.received++;
        this.#stats.unknown++;
        if (this.#countGaps) {
          const lost = this.#sequences.observe(message.cpu, message.seq);
          if (lost > 0) this.#reportKernelLoss(lost, message.cpu, true);
        }
        return;
      case "other":
        this.#stats.foreign++;
        return;
      case "malformed":
        this.#stats.malformed++;
        return;
    }
  }

  #accepts(event: KernelEvent): boolean {
    if (!this.#types.has(event.type)) return false;
    if (!this.#threads && isThreadEvent(event)) return false;
    if (this.#failedOnly && event.type === "exit" && event.status === 0) return false;
    if (this.#pids !== null) {
      if (event.type === "fork") {
        // A new thread belongs to its process; its `parentPid` is that process's
        // parent (task->real_parent, copy_process()), which must not pull in the
        // threads of a watched pid's children. Its exit carries the process's pid too.
        if (event.thread) return this.#pids.has(event.childPid);
        return this.#pids.has(event.childPid) || this.#pids.has(event.parentPid);
      }
      return this.#pids.has(event.pid);
    }
    return true;
  }

  #syncKernelDrops(): void {
    const drops = readNetlinkDrops(this.#socket.portId);
    if (drops === null || drops <= this.#kernelDrops) return;
    const lost = drops - this.#kernelDrops;
    this.#kernelDrops = drops;
    this.#reportKernelLoss(lost, null, true);
  }

  #reportKernelLoss(count: number, cpu: number | null, exact: boolean): void {
    this.#stats.lostByKernel += count;
    if (!this.#enqueueLoss(count, "kernel", cpu, exact)) this.#pendingKernelLoss += count;
  }

  #enqueue(event: ProcEvent): void {
    if (this.#pendingKernelLoss + this.#pendingQueueLoss > 0) this.#flushPendingLoss();
    if (this.#queue.push(event)) return;
    this.#stats.lostInQueue++;
    this.#pendingQueueLoss++;
  }

  #flushPendingLoss(): void {
    if (this.#pendingKernelLoss > 0 && this.#enqueueLoss(this.#pendingKernelLoss, "kernel")) {
      this.#pendingKernelLoss = 0;
    }
    if (this.#pendingQueueLoss > 0 && this.#enqueueLoss(this.#pendingQueueLoss, "queue")) {
      this.#pendingQueueLoss = 0;
    }
  }

  #enqueueLoss(
    count: number,
    reason: LostEvent["reason"],
    cpu: number | null = null,
    exact = true,
  ): boolean {
    const timestampNs = wallClock.sync();
    return this.#queue.push({
      type: "lost",
      cpu,
      timestampNs,
      time: new Date(Number(wallClock.wallNs(timestampNs) / 1_000_000n)),
      count,
      reason,
      exact,
    });
  }
}

/** What filters when the kernel refused the program `info` describes: procwatch. */
function refused(info: SocketFilterInfo, why: string): SocketFilterInfo {
  return {
    types: false,
    pids: false,
    pidsInProcwatch: info.pids || info.pidsInProcwatch !== null
      ? `the kernel refused the socket filter (${why})`
      : null,
    instructions: 0,
  };
}

/** Event types the process table needs to stay current. */
const TABLE_BITS = ProcEventWhat.FORK | ProcEventWhat.EXEC | ProcEventWhat.COMM |
  ProcEventWhat.UID | ProcEventWhat.EXIT;

function makeContext(options: WatchOptions): EventContext | null {
  const users = new UserNames();
  const filters = compileFilters(options, users);
  if (!hasFilters(filters) && !options.context) return null;
  return new EventContext(filters, users, {
    context: options.context ?? false,
    maxEntries: options.processTableSize,
    exitGraceMs: options.exitGraceMs,
    execCapture: options.execCapture,
    pids: options.pids && options.pids.length > 0 ? new Set(options.pids) : null,
  });
}

/**
 * Starts watching process events. Throws a {@linkcode ProcwatchError} subclass
 * with advice when the kernel will not send them.
 *
 * @example
 * ```ts ignore
 * import { watch } from "../../mod.ts";
 * using watcher = watch({ events: ["exit"] });
 * for await (const event of watcher) {
 *   if (event.type === "exit" && event.exitCode !== 0) console.log(event);
 * }
 * ```
 */
export function watch(options?: WatchOptions): ProcWatcher {
  return new ProcWatcher(options);
}
