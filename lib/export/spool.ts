/**
 * A bounded on-disk FIFO of messages for an exporter whose server is down
 * or slow: segment files of JSON lines in one directory, oldest first.
 *
 * Segments left by a previous run are read first, so what procwatch could
 * not send before it stopped is sent after the next start.
 *
 * @module
 */

/** One message waiting to be published. */
export interface SpoolEntry {
  /** The JetStream message id (`Nats-Msg-Id`), for de-duplication on resend. */
  id: string;
  /** The subject to publish to. */
  subject: string;
  /** The message (one JSON-lines record). */
  data: string;
}

/** Segment size at which a new file is started. */
const SEGMENT_BYTES = 4 << 20;
const SEGMENT_NAME = /^spool-(\d{12})\.jsonl$/;
const encoder = new TextEncoder();

/**
 * A directory of spool segments, at most `maxBytes` in all.
 *
 * @example
 * ```ts
 * import { Spool } from "./spool.ts";
 * const spool = new Spool("/tmp/spool", 1 << 20);
 * spool.append({ id: "1", subject: "procwatch.host.exec", data: "{}" });
 * spool.flush();
 * console.log(spool.takeOldest()); // [{ id: "1", ... }]
 * ```
 */
export class Spool {
  readonly #dir: string;
  readonly #maxBytes: number;
  /** Segment numbers on disk, oldest first. */
  readonly #segments: number[] = [];
  #bytes = 0;
  #next = 0;
  #writer: Deno.FsFile | null = null;
  #writerBytes = 0;
  #pending: string[] = [];
  #pendingEntries = 0;
  #count = 0;

  /** Opens (and creates) the spool directory; counts what a previous run left. */
  constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const entry of Deno.readDirSync(dir)) {
      const match = SEGMENT_NAME.exec(entry.name);
      if (match === null || !entry.isFile) continue;
      this.#segments.push(Number(match[1]));
      const text = Deno.readTextFileSync(this.#path(Number(match[1])));
      this.#bytes += encoder.encode(text).length;
      this.#count += text.split("\n").filter((line) => line !== "").length;
    }
    this.#segments.sort((a, b) => a - b);
    this.#next = (this.#segments.at(-1) ?? -1) + 1;
  }

  /** Messages in the spool (written or about to be). */
  get length(): number {
    return this.#count;
  }

  /** Bytes the spool holds on disk (or is about to). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends a message; `false` (nothing kept) when it would exceed the bound. */
  append(entry: SpoolEntry): boolean {
    const line = `${entry.id}\t${entry.subject}\t${entry.data}\n`;
    const size = line.length; // JSON from JSON.stringify is ASCII except in strings: re-counted on flush
    if (this.#bytes + size > this.#maxBytes) return false;
    this.#pending.push(line);
    this.#pendingEntries++;
    this.#bytes += size;
    this.#count++;
    return true;
  }

  /** Writes appended messages to disk. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const text = this.#pending.join("");
    const bytes = encoder.encode(text);
    this.#bytes += bytes.length - text.length; // exact size of non-ASCII text
    this.#pending = [];
    this.#pendingEntries = 0;
    if (this.#writer === null || this.#writerBytes >= SEGMENT_BYTES) {
      this.#writer?.close();
      const segment = this.#next++;
      this.#segments.push(segment);
      this.#writer = Deno.openSync(this.#path(segment), {
        append: true,
        create: true,
        mode: 0o600,
      });
      this.#writerBytes = 0;
    }
    let written = 0;
    while (written < bytes.length) written += this.#writer.writeSync(bytes.subarray(written));
    this.#writerBytes += bytes.length;
  }

  /** Removes and returns the oldest segment's messages (empty when the spool is). */
  takeOldest(): SpoolEntry[] {
    this.flush();
    const segment = this.#segments.shift();
    if (segment === undefined) return [];
    if (segment === this.#next - 1 && this.#writer !== null) {
      this.#writer.close();
      this.#writer = null;
    }
    const path = this.#path(segment);
    const text = Deno.readTextFileSync(path);
    Deno.removeSync(path);
    this.#bytes -= encoder.encode(text).length;
    const entries: SpoolEntry[] = [];
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const first = line.indexOf("\t");
      const second = line.indexOf("\t", first + 1);
      if (first < 0 || second < 0) continue; // a line torn by a crash mid-write
      entries.push({
        id: line.slice(0, first),
        subject: line.slice(first + 1, second),
        data: line.slice(second + 1),
      });
    }
    this.#count -= entries.length;
    if (this.#segments.length === 0) this.#count = 0;
    return entries;
  }

  /** Writes what is pending and closes the current segment. */
  close(): void {
    this.flush();
    this.#writer?.close();
    this.#writer = null;
  }

  #path(segment: number): string {
    return `${this.#dir}/spool-${String(segment).padStart(12, "0")}.jsonl`;
  }
}
