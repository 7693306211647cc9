/**
 * Writing lines to stdout/stderr synchronously, in batches, and noticing a
 * closed pipe (`procwatch watch | head`).
 *
 * @module
 */

const encoder = new TextEncoder();

/** Raised when the reader of stdout has gone away. */
export class BrokenPipeError extends Error {
  /** Creates the error. */
  constructor() {
    super("stdout closed");
    this.name = "BrokenPipeError";
  }
}

/**
 * Collects lines and writes them with as few system calls as possible.
 * `flush()` after each batch keeps `| grep` and `| jq` current.
 */
export class LineWriter {
  #lines: string[] = [];
  readonly #target: { writeSync(p: Uint8Array): number };

  /** Creates a writer for `Deno.stdout` or `Deno.stderr`. */
  constructor(target: { writeSync(p: Uint8Array): number } = Deno.stdout) {
    this.#target = target;
  }

  /** Queues one line (without its newline). */
  line(text: string): void {
    this.#lines.push(text);
  }

  /** Writes what is queued. Throws {@linkcode BrokenPipeError} if the reader left. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const bytes = encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    writeAll(this.#target, bytes);
  }
}

/** Writes all of `bytes`, turning a closed pipe into {@linkcode BrokenPipeError}. */
export function writeAll(target: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  try {
    while (offset < bytes.length) offset += target.writeSync(bytes.subarray(offset));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) throw new BrokenPipeError();
    throw error;
  }
}

/** Writes one line to stderr, ignoring a closed stderr. */
export function warn(text: string): void {
  try {
    writeAll(Deno.stderr, encoder.encode(text + "\n"));
  } catch {
    // Nowhere left to report to.
  }
}
