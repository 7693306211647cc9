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

import { monotonicNs } from "../ffi/clock.ts";
import {
  CAPTURE_WORKER_SYMBOLS,
  captureWorker,
  type CaptureWorkerConfig,
  unsubscribeWorker,
} from "../ffi/exec_capture_worker.ts";
import { LIBC_SYMBOLS } from "../ffi/libc.ts";
import { type Captured, CaptureRing, RING_LAYOUT } from "./capture_ring.ts";
import { ProcEventWhat } from "./protocol.ts";

/** How long to wait for a capture the worker may be writing right now. */
const LATE_WAIT_NS = 1_000_000n;

/**
 * Starts and reads the exec-capture worker.
 *
 * @example
 * ```ts ignore
 * import { ExecCapture } from "./exec_capture.ts";
 * const capture = new ExecCapture();
 * await capture.ready;
 * // at an exec event whose /proc entry is already gone:
 * // capture.lookup(event.pid, event.timestampNs)?.cmdline
 * capture.close();
 * ```
 */
export class ExecCapture {
  /** Settles once the worker listens (or has failed: then lookups find nothing). */
  readonly ready: Promise<void>;
  readonly #ring: CaptureRing;
  /** [0]: stop flag; [1]: timestamp of the last exec the worker handled; [2], [3]: its socket. */
  readonly #control = new BigInt64Array(new SharedArrayBuffer(32));
  readonly #worker: Worker;
  #running = false;

  /** Starts the worker; `kernelFilter`: whether this kernel filters event types. */
  constructor(kernelFilter: boolean) {
    const buffer = CaptureRing.allocate();
    this.#ring = new CaptureRing(buffer);
    // From source text: a worker module read from disk would need --allow-read.
    const source = `self.onmessage = (message) => {
  try { (${captureWorker.toString()})(message.data); }
  catch (error) { self.postMessage({ error: String(error) }); }
  self.close();
};`;
    const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    this.#worker = new Worker(url, { type: "module" });
    URL.revokeObjectURL(url);
    this.ready = new Promise((resolve) => {
      this.#worker.onmessage = (message: MessageEvent<{ ready?: true; error?: string }>) => {
        this.#running = message.data.ready === true;
        resolve();
      };
      this.#worker.onerror = (event) => {
        event.preventDefault();
        this.#running = false;
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
      execBit: ProcEventWhat.EXEC,
      layout: RING_LAYOUT,
    };
    this.#worker.postMessage(config);
  }

  /**
   * What the worker saw at the exec of `pid` at `timestampNs`. Waits a few
   * hundred microseconds at most for a capture being written.
   */
  lookup(pid: number, timestampNs: bigint): Captured | null {
    const found = this.#ring.read(pid, timestampNs);
    if (found !== null || !this.#running) return found;
    // Wait only while the worker has not reached this exec yet.
    const deadline = monotonicNs() + LATE_WAIT_NS;
    while (Atomics.load(this.#control, 1) < timestampNs && monotonicNs() < deadline) {
      const late = this.#ring.read(pid, timestampNs);
      if (late !== null) return late;
    }
    return this.#ring.read(pid, timestampNs);
  }

  /** What the worker saw at the exec of `pid` at `timestampNs`, without waiting. */
  peek(pid: number, timestampNs: bigint): Captured | null {
    return this.#ring.read(pid, timestampNs);
  }

  /** Stops the worker; it unsubscribes and ends within 100 ms. */
  close(): void {
    unsubscribeWorker(this.#control);
    Atomics.store(this.#control, 0, 1n);
    this.#running = false;
  }
}
