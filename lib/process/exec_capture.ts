/**
 * Catching the command line of processes that live for microseconds.
 *
 * The watcher reads /proc at each exec event in its drain, but its thread
 * wakes through the event loop, and on a busy machine a short-lived program
 * can exec and exit first (forkstat's and extrace's best-known failure). So
 * a worker thread with its own exec-only subscription, blocked in `poll()`,
 * reads /proc the moment the kernel wakes it and publishes what it saw in
 * shared memory; the watcher uses that when its own read comes too late.
 *
 * @module
 */

import { monotonicNs } from "../../ffi/clock.ts";
import {
  CAPTURE_WORKER_SYMBOLS,
  type CaptureWorkerConfig,
  captureWorkerSource,
  CONTROL,
  unsubscribeWorker,
} from "./exec_capture_worker.ts";
import { libc, LIBC_SYMBOLS } from "../../ffi/libc.ts";
import { type Captured, CaptureRing } from "./capture_ring.ts";

/** How long to wait for a capture the worker may be writing right now. */
const LATE_WAIT_NS = 2_000_000n;
/**
 * Longest time assumed between an exec event's timestamp and its arrival in
 * the sockets' queues (measured: microseconds; more when the exec'ing task is
 * preempted in between, as seen on a loaded 2-CPU machine).
 */
const ENQUEUE_SLACK_NS = 300_000n;
/** After a wait for the worker ran out, how long not to wait again. */
const BEHIND_PAUSE_NS = 50_000_000n;
/**
 * How long the constructor waits for the worker to listen. It normally takes
 * 20–60 ms (a V8 isolate, then a warm-up); a kernel without the event filter
 * adds the 200 ms it takes to find that out.
 */
const ARM_TIMEOUT_MS = 3000;

/**
 * Starts and reads the exec-capture worker.
 *
 * The constructor returns once the worker listens (or after
 * {@linkcode ARM_TIMEOUT_MS}): a watcher that subscribes after that has every
 * exec it receives also caught by the worker, from the first event on.
 *
 * @example
 * ```ts
 * import { ExecCapture } from "./exec_capture.ts";
 * const capture = new ExecCapture(true);
 * // at an exec event:
 * // capture.lookup(event.pid, event.timestampNs)
 * capture.close();
 * ```
 */
export class ExecCapture {
  /** Settles once the worker listens (or has failed: then lookups find nothing). */
  readonly ready: Promise<void>;
  readonly #ring: CaptureRing;
  /** See {@linkcode CONTROL}. */
  readonly #control = new BigInt64Array(new SharedArrayBuffer(CONTROL.size * 8));
  readonly #worker: Worker;
  #closed = false;
  /** A `struct pollfd` for the worker's socket (POLLIN), to see whether it has work. */
  readonly #pollBytes = new Uint8Array(8);
  readonly #pollFd = new DataView(this.#pollBytes.buffer);
  /** After a wait ran out, the worker is behind (a storm): no more waiting until then. */
  #behindUntilNs = 0n;

  /**
   * Starts the worker and waits until it listens; `kernelFilter`: may the kernel filter types;
   * `attribution`: also capture each exec's cgroup and, unless `namespaces` is
   * false, its namespaces.
   */
  constructor(kernelFilter: boolean, attribution = false, namespaces = true) {
    const buffer = CaptureRing.allocate();
    this.#ring = new CaptureRing(buffer);
    // From source text: a worker module read from disk would need --allow-read.
    const url = URL.createObjectURL(
      new Blob([captureWorkerSource()], { type: "application/javascript" }),
    );
    this.#worker = new Worker(url, { type: "module" });
    URL.revokeObjectURL(url);
    this.ready = new Promise((resolve) => {
      this.#worker.onmessage = () => resolve();
      this.#worker.onerror = (event) => {
        event.preventDefault();
        Atomics.store(this.#control, CONTROL.state, -1n);
        resolve();
      };
    });
    const config: CaptureWorkerConfig = {
      symbols: Object.fromEntries(
        CAPTURE_WORKER_SYMBOLS.map((name) => [name, LIBC_SYMBOLS[name]]),
      ),
      ring: buffer,
      control: this.#control.buffer as SharedArrayBuffer,
      kernelFilter,
      attribution,
      namespaces,
    };
    this.#pollFd.setInt16(4, 1, true); // POLLIN
    this.#worker.postMessage(config);
    // The worker needs nothing from this thread to start (its isolate runs on its own),
    // so blocking here is safe and bounded.
    Atomics.wait(this.#control, CONTROL.state, 0n, ARM_TIMEOUT_MS);
  }

  /** Whether the worker listens (and has not been closed). */
  get running(): boolean {
    return !this.#closed && Atomics.load(this.#control, CONTROL.state) === 1n;
  }

  /** Whether the kernel filters event types for the worker (it asked and was acknowledged). */
  get kernelFiltered(): boolean {
    return Atomics.load(this.#control, CONTROL.filterMode) === 1n;
  }

  /**
   * What the worker recorded at the exec of `pid` at `timestampNs`, once it
   * is final: a capture is final when the worker has handled every exec that
   * began before its reads ended (such an exec voids it). Waits up to 2 ms
   * for a worker that has not reached this exec yet; `null` when it never
   * saw it (lost, overwritten, or no worker).
   */
  lookup(pid: number, timestampNs: bigint): Captured | null {
    if (!this.running) return this.#ring.read(pid, timestampNs);
    const deadline = this.#deadline();
    for (;;) {
      const found = this.#ring.read(pid, timestampNs);
      if (found !== null && (found.status !== "captured" || this.#settled(found.readEndNs))) {
        // Read again: the worker may have voided it just before it settled.
        return this.#ring.read(pid, timestampNs) ?? found;
      }
      if (found === null && this.#settled(timestampNs)) {
        return null; // handled, yet not there: lost by its socket, or overwritten
      }
      if (monotonicNs() >= deadline) {
        this.#ranOut(deadline);
        return found;
      }
    }
  }

  /**
   * What the worker recorded at the exec of `pid` at `timestampNs`, without
   * waiting: only a final entry (see {@linkcode lookup}), else `null`.
   */
  peek(pid: number, timestampNs: bigint): Captured | null {
    const found = this.#ring.read(pid, timestampNs);
    if (found?.status === "captured" && !this.#settled(found.readEndNs)) return null;
    return found;
  }

  /** The newest exec of `pid` the worker saw between the two times, or `null`. */
  newestExecOf(pid: number, afterNs: bigint, beforeNs: bigint): bigint | null {
    return this.#ring.newestExecOf(pid, afterNs, beforeNs);
  }

  /** Per pid, its newest exec the worker saw after `afterNs` (see CaptureRing). */
  newestExecsAfter(afterNs: bigint): Map<number, bigint> {
    return this.#ring.newestExecsAfter(afterNs);
  }

  /**
   * Whether `pid` exec'd after `afterNs` and no later than `untilNs`, as far
   * as the worker knows — waiting up to 2 ms for it to have handled every exec
   * until `untilNs`. A /proc read of `pid` that ended at `untilNs` is the
   * program exec'd at `afterNs` only when this is false.
   */
  execedBetween(pid: number, afterNs: bigint, untilNs: bigint): boolean {
    if (this.running) {
      const deadline = this.#deadline();
      while (!this.#settled(untilNs)) {
        if (monotonicNs() >= deadline) {
          this.#ranOut(deadline);
          break;
        }
      }
    }
    return this.#ring.hasExecBetween(pid, afterNs, untilNs);
  }

  #deadline(): bigint {
    const now = monotonicNs();
    return now < this.#behindUntilNs ? now : now + LATE_WAIT_NS;
  }

  /**
   * A wait ran out: the worker is behind, most likely in an exec storm. Waiting
   * for it at each exec would stall the watcher, so skip waits for a while.
   */
  #ranOut(deadline: bigint): void {
    if (deadline > this.#behindUntilNs) this.#behindUntilNs = monotonicNs() + BEHIND_PAUSE_NS;
  }

  /**
   * Whether every exec that began by `timeNs` has been handled by the worker.
   * An exec's event reaches the sockets a little after its timestamp is taken
   * (proc_exec_connector() reads the clock, then send_msg() queues it), so
   * the worker must have looked {@linkcode ENQUEUE_SLACK_NS} later than that.
   */
  #settled(timeNs: bigint): boolean {
    const after = timeNs + ENQUEUE_SLACK_NS;
    return Atomics.load(this.#control, CONTROL.settledNs) >= after ||
      Atomics.load(this.#control, CONTROL.lastExecNs) >= after || this.#idle(after);
  }

  /**
   * Whether the worker sits in poll() with nothing pending on its socket: then
   * it has handled every exec enqueued so far (by `timeNs` included). The
   * generation word brackets our look at its socket, so a worker that woke
   * meanwhile is never taken for idle.
   */
  #idle(timeNs: bigint): boolean {
    if (!this.running) return false;
    const generation = Atomics.load(this.#control, CONTROL.idle);
    if ((generation & 1n) === 0n || monotonicNs() < timeNs) return false;
    this.#pollFd.setInt32(0, Number(Atomics.load(this.#control, CONTROL.fd)), true);
    const pending = libc().poll(this.#pollBytes, 1n, 0) !== 0;
    return !pending && Atomics.load(this.#control, CONTROL.idle) === generation;
  }

  /** Stops the worker; it unsubscribes and ends within 100 ms. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unsubscribeWorker(this.#control);
    Atomics.store(this.#control, CONTROL.stop, 1n);
  }
}
