/**
 * Writing lines to stdout/stderr without ever blocking the JS thread, and
 * noticing a closed pipe (`procwatch watch | head`).
 *
 * A reader that stops reading (a paused `less`, a stuck log shipper) fills
 * the pipe; a blocking write would then sleep until it reads again, and the
 * signal listeners — Ctrl-C, `systemctl stop` — would not run meanwhile. So
 * output is queued in memory and written only when the kernel takes it at
 * once (ffi/output_fd.ts). The queue is bounded ({@linkcode OUTPUT_CAPACITY});
 * lines beyond it are dropped and counted, never silently: the caller gets
 * a `lossLine` callback when there is room again, and `dropped` says how many.
 *
 * Without FFI permission (only error messages are printed then), writes are
 * plain synchronous writes.
 *
 * @module
 */

import {
  neverWaits,
  waitWritable,
  WRITE_CHUNK,
  writeDirect,
  writeSome,
} from "../../ffi/output_fd.ts";

const encoder = new TextEncoder();

/**
 * Raised when the reader of stdout has gone away (`EPIPE`): `procwatch watch
 * | head` ends quietly on it.
 *
 * @example
 * ```ts
 * import { BrokenPipeError, stdout } from "@procwatch/procwatch/format";
 * try {
 *   stdout().line("hello");
 * } catch (error) {
 *   if (!(error instanceof BrokenPipeError)) throw error;
 *   Deno.exit(0); // the reader has gone: nothing left to say
 * }
 * ```
 */
export class BrokenPipeError extends Error {
  /** Creates the error. */
  constructor() {
    super("stdout closed");
    this.name = "BrokenPipeError";
  }
}

/**
 * How much output (in characters, about bytes) may wait for a slow reader: 4 MiB.
 *
 * @example
 * ```ts
 * import { OUTPUT_CAPACITY, OutputStream } from "@procwatch/procwatch/format";
 * const out = new OutputStream(1, { capacity: OUTPUT_CAPACITY / 4 });
 * out.line("hello");
 * ```
 */
export const OUTPUT_CAPACITY = 4 << 20;

/**
 * How long output may still drain after a termination signal before it is
 * dropped, in milliseconds.
 *
 * @example
 * ```ts
 * import { interruptOutput, SIGNAL_GRACE_MS } from "@procwatch/procwatch/format";
 * Deno.addSignalListener("SIGTERM", () => interruptOutput(SIGNAL_GRACE_MS));
 * ```
 */
export const SIGNAL_GRACE_MS = 250;

/** Room kept for the loss line before it is made. */
const LOSS_LINE_ROOM = 512;

/** How often a waiting drain looks at the signal deadline. */
const WAIT_SLICE_MS = 25;

let ffiAllowed: boolean | undefined;

function canUseFfi(): boolean {
  if (ffiAllowed === undefined) {
    try {
      ffiAllowed = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
    } catch {
      ffiAllowed = false;
    }
  }
  return ffiAllowed;
}

let stopAt: number | undefined;

/**
 * Called on SIGINT/SIGTERM/SIGHUP: output still queued gets
 * {@linkcode SIGNAL_GRACE_MS} to drain, then drains give up (and count it).
 *
 * @example
 * ```ts
 * import { interruptOutput } from "@procwatch/procwatch/format";
 * interruptOutput();
 * ```
 */
export function interruptOutput(graceMs: number = SIGNAL_GRACE_MS): void {
  const deadline = performance.now() + graceMs;
  if (stopAt === undefined || deadline < stopAt) stopAt = deadline;
}

/**
 * Whether a termination signal's grace period is over.
 *
 * @example
 * ```ts
 * import { outputInterrupted, stdout } from "@procwatch/procwatch/format";
 * if (!outputInterrupted()) stdout().line("still draining");
 * ```
 */
export function outputInterrupted(): boolean {
  return stopAt !== undefined && performance.now() >= stopAt;
}

/**
 * Options of an {@linkcode OutputStream}.
 *
 * @example
 * ```ts
 * import { OutputStream, type OutputStreamOptions } from "@procwatch/procwatch/format";
 * const options: OutputStreamOptions = {
 *   capacity: 1 << 20,
 *   lossLine: (count) => `(${count} lines dropped)`,
 * };
 * new OutputStream(1, options).line("hello");
 * ```
 */
export interface OutputStreamOptions {
  /**
   * Most characters queued; lines beyond are dropped.
   *
   * @default {OUTPUT_CAPACITY}
   */
  capacity?: number;
  /**
   * The line to write, when there is room again, for `count` dropped lines
   * (e.g. a `lost` event with reason `"output"`). Its text is queued before
   * the next line that fits.
   *
   * @default {undefined} (dropped lines are counted, not reported)
   */
  lossLine?: (count: number) => string;
  /**
   * Called at the first dropped line of each stall (e.g. to warn once).
   *
   * @default {undefined}
   */
  onStall?: () => void;
}

/**
 * A queue of lines for one descriptor (1 or 2), written without blocking.
 * `flush()` after each batch keeps `| grep` and `| jq` current.
 *
 * @example
 * ```ts
 * import { OutputStream } from "@procwatch/procwatch/format";
 * const out = new OutputStream(1);
 * out.line("hello");
 * out.flush();
 * await out.drain(() => false);
 * ```
 */
export class OutputStream {
  /** The descriptor written to. */
  readonly fd: number;
  /** Lines dropped so far: the queue was full, or they were abandoned at exit. */
  dropped = 0;

  readonly #capacity: number;
  readonly #lossLine?: (count: number) => string;
  readonly #onStall?: () => void;
  /** Queued lines, each with its newline: one string, encoded whole at the next send. */
  #pending = "";
  #pendingLines = 0;
  #bytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #offset = 0;
  #unreported = 0;
  #broken = false;
  #waiting = false;
  #direct: boolean | undefined;

  /** Creates a queue for descriptor `fd`. */
  constructor(fd: number, options: OutputStreamOptions = {}) {
    this.fd = fd;
    this.#capacity = options.capacity ?? OUTPUT_CAPACITY;
    this.#lossLine = options.lossLine;
    this.#onStall = options.onStall;
  }

  /** Whether the reader has gone (EPIPE). */
  get broken(): boolean {
    return this.#broken;
  }

  /** Characters still waiting to be written. */
  get queued(): number {
    return this.#pending.length + (this.#bytes.length - this.#offset);
  }

  /** Queues one line (without its newline); returns `false` if it was dropped. */
  line(text: string): boolean {
    if (this.#broken) return false;
    if (this.#unreported > 0 && this.#lossLine !== undefined) {
      // Made only when it fits with this line: making the loss line reports the loss.
      if (this.queued + LOSS_LINE_ROOM + text.length + 1 > this.#capacity) return this.#drop();
      this.reportLoss(true);
    } else if (this.queued + text.length + 1 > this.#capacity) {
      return this.#drop();
    }
    this.#push(text);
    return true;
  }

  /**
   * Writes what the kernel takes now.
   *
   * @throws {BrokenPipeError} when the reader has gone (`EPIPE`).
   */
  flush(): void {
    this.#send();
    if (this.#broken) throw new BrokenPipeError();
  }

  /**
   * Waits until everything queued is written (`true`), the reader has gone,
   * or `stop()` says to give up (`false`); what is left then counts as dropped.
   * A loss not yet reported is queued first.
   */
  async drain(stop: () => boolean = outputInterrupted): Promise<boolean> {
    this.reportLoss(true);
    for (;;) {
      this.#send();
      if (this.queued === 0) return true;
      if (this.#broken || stop()) {
        this.#abandon();
        return false;
      }
      await this.#wait();
    }
  }

  /**
   * Queues the loss line for lines dropped and not yet reported, if there is
   * room (or `always`); returns whether nothing is left unreported.
   */
  reportLoss(always = false): boolean {
    if (this.#unreported === 0 || this.#lossLine === undefined) return true;
    if (this.#broken) return false;
    if (!always && this.queued + LOSS_LINE_ROOM > this.#capacity) return false;
    const loss = this.#lossLine(this.#unreported);
    this.#unreported = 0;
    this.#push(loss);
    return true;
  }

  #push(text: string): void {
    // Appending builds a rope V8 flattens once at the encode: cheaper than
    // an array of lines joined there (one line per event in a storm).
    this.#pending += text + "\n";
    this.#pendingLines++;
  }

  #drop(): false {
    if (this.#unreported === 0) this.#onStall?.();
    this.#unreported++;
    this.dropped++;
    return false;
  }

  /** Counts every queued line as dropped and forgets them. */
  #abandon(): void {
    let lines = this.#pendingLines;
    for (let i = this.#offset; i < this.#bytes.length; i++) if (this.#bytes[i] === 10) lines++;
    this.dropped += lines;
    this.#pending = "";
    this.#pendingLines = 0;
    this.#bytes = new Uint8Array(0);
    this.#offset = 0;
  }

  /** Writes chunks while the kernel takes them; arranges a retry when it does not. */
  #send(): void {
    while (!this.#broken) {
      if (this.#offset >= this.#bytes.length) {
        if (this.#pendingLines === 0) return;
        this.#bytes = encoder.encode(this.#pending);
        this.#offset = 0;
        this.#pending = "";
        this.#pendingLines = 0;
      }
      let rest = this.#bytes.subarray(this.#offset);
      const ffi = canUseFfi();
      // A file or /dev/null never makes a write wait: one write per batch.
      if (ffi) this.#direct ??= neverWaits(this.fd);
      if (rest.length > WRITE_CHUNK && !(ffi && this.#direct)) {
        // Whole lines per chunk: output abandoned later (a signal while the
        // reader stalls) then never ends in half a line. A longer line is split.
        const cut = rest.subarray(0, WRITE_CHUNK).lastIndexOf(10);
        if (cut >= 0) rest = rest.subarray(0, cut + 1);
      }
      if (!ffi) {
        this.#writeBlocking(rest);
        continue;
      }
      const result = this.#direct ? writeDirect(this.fd, rest) : writeSome(this.fd, rest);
      if (result === "closed") {
        this.#broken = true;
        this.#abandon();
      } else if (result === "blocked") {
        this.#retryLater();
        return;
      } else {
        this.#offset += result;
      }
    }
  }

  #writeBlocking(bytes: Uint8Array<ArrayBuffer>): void {
    const target = this.fd === 2 ? Deno.stderr : Deno.stdout;
    try {
      this.#offset += target.writeSync(bytes.subarray(0, WRITE_CHUNK));
    } catch {
      this.#broken = true;
      this.#abandon();
    }
  }

  /** Polls on another thread until the descriptor takes writes again, then sends. */
  #retryLater(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    (async () => {
      try {
        while (this.queued > 0 && !this.#broken && !outputInterrupted()) {
          await this.#wait();
          this.#send();
        }
      } finally {
        this.#waiting = false;
      }
    })();
  }

  #wait(): Promise<void> {
    return waitWritable(this.fd, WAIT_SLICE_MS);
  }
}

let stdoutStream: OutputStream | undefined;
let stderrStream: OutputStream | undefined;

/**
 * The process's stdout queue. The first caller may give options (the loss
 * line of its output format).
 *
 * @example
 * ```ts
 * import { stdout } from "@procwatch/procwatch/format";
 * stdout().line("hello");
 * ```
 */
export function stdout(options?: OutputStreamOptions): OutputStream {
  stdoutStream ??= new OutputStream(1, options);
  return stdoutStream;
}

/**
 * The process's stderr queue (warnings, `-v`).
 *
 * @example
 * ```ts
 * import { stderr } from "@procwatch/procwatch/format";
 * stderr().line("procwatch: hello");
 * ```
 */
export function stderr(): OutputStream {
  stderrStream ??= new OutputStream(2, { capacity: 1 << 20 });
  return stderrStream;
}

/**
 * Writes one line to stderr without blocking; a closed stderr is ignored and
 * a stalled one queues it (up to 1 MiB, then drops and counts it).
 *
 * @example
 * ```ts
 * import { warn } from "@procwatch/procwatch/format";
 * warn("procwatch: the kernel dropped 12 events");
 * ```
 */
export function warn(text: string): void {
  stderr().line(text);
  try {
    stderr().flush();
  } catch {
    // Nowhere left to report to.
  }
}

/**
 * Waits until stdout and stderr are written, or a termination signal's
 * grace period ends. Returns how many stdout lines were dropped in all.
 *
 * @example
 * ```ts
 * import { finishOutput } from "@procwatch/procwatch/format";
 * await finishOutput();
 * ```
 */
export async function finishOutput(): Promise<number> {
  if (stdoutStream !== undefined) await stdoutStream.drain();
  if (stderrStream !== undefined) await stderrStream.drain();
  return stdoutStream?.dropped ?? 0;
}
