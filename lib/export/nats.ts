/**
 * Publishing events to NATS JetStream (`watch --nats`), one message per
 * event: the JSON-lines record `--json` prints, on the subject
 * `PREFIX.<hostname>.<type>`.
 *
 * Delivery is at least once and in order, with JetStream's de-duplication
 * (`Nats-Msg-Id`) making a resend after a failure exactly once within the
 * stream's duplicate window (2 minutes by default):
 *
 * - up to `window` publishes wait for their acknowledgement at once
 *   (pipelined); messages go out in event order;
 * - the connection never reconnects by itself (`reconnect: false`): the
 *   client's reconnect buffer would send messages published during an outage
 *   ahead of the in-flight ones the outage lost. Instead, on an error or an
 *   acknowledgement timeout the exporter drops the connection, connects
 *   anew, and resends every unacknowledged message in order, oldest first.
 *   A connection delivers a prefix of what was written to it, so the stream
 *   keeps event order; the already-stored ones come back as duplicates;
 * - while the server is down or slow, events wait in memory (up to
 *   `memoryEntries`), then in an on-disk spool (lib/export/spool.ts) of at
 *   most `spoolMaxBytes`; only a full spool drops events, reported as a
 *   `lost` event with reason `"export"`.
 *
 * Loaded on demand (`import()` from lib/export/lazy.ts).
 *
 * @module
 */

import {
  connect,
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
} from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { LostEvent, ProcEvent } from "../events/events.ts";
import { eventToJson } from "../format/text.ts";
import { lostEventNow } from "../events/lost_event.ts";
import { wallClock } from "../events/wall_clock.ts";
import { Spool, type SpoolEntry } from "./spool.ts";

/** Options of {@linkcode NatsExporter}. */
export interface NatsExporterOptions {
  /** NATS server URLs, comma-separated (`nats://127.0.0.1:4222`). */
  servers: string;
  /** First subject token(s). Default `procwatch`. */
  subjectPrefix?: string;
  /** This host's name in subjects; dots and wildcards become `_`. */
  hostname: string;
  /** The JetStream stream, created with subjects `PREFIX.>` when missing. Default `PROCWATCH`. */
  stream?: string;
  /** Directory of the on-disk spool. */
  spoolDir: string;
  /** Most bytes the spool holds. Default 256 MiB. */
  spoolMaxBytes?: number;
  /** Most unacknowledged publishes at once. Default 1024. */
  window?: number;
  /** Events held in memory (besides `window` in flight) before the spool takes them. Default 1024. */
  memoryEntries?: number;
  /** How long to wait for an acknowledgement before reconnecting, in ms. Default 5000. */
  ackTimeoutMs?: number;
  /** Told (one line, `procwatch:` prefix) when the server goes away or comes back. */
  warn?: (line: string) => void;
}

/** Counters of a {@linkcode NatsExporter}; they only grow. */
export interface NatsExporterStats {
  /** Events handed to the exporter. */
  queued: number;
  /** Messages the stream acknowledged as new. */
  published: number;
  /** Resent messages the stream already had (acknowledged as duplicates). */
  duplicates: number;
  /** Messages that went through the on-disk spool. */
  spooled: number;
  /** Events dropped because the spool was full. */
  dropped: number;
  /** Connections made (1 without outages). */
  connections: number;
}

/** Replaces what NATS does not allow inside a subject token. */
export function subjectToken(text: string): string {
  const token = text.replace(/[\s.*>]/g, "_");
  return token === "" ? "_" : token;
}

/** A message sent and not yet settled, in send order. */
interface Inflight {
  entry: SpoolEntry;
  /** The last token of its reply subject: consecutive on a connection. */
  key: number;
  /** `pending` until JetStream answers: stored as `new`, or `duplicate`, or an error. */
  ack: "pending" | "new" | "duplicate" | Error;
  /** When it was sent (`Date.now()`). */
  sentAt: number;
}

/**
 * Publishes events to JetStream in order, through a spool when it must.
 *
 * @example
 * ```ts
 * import { NatsExporter } from "./nats.ts";
 * import { watch } from "@procwatch/procwatch";
 * const exporter = new NatsExporter({ servers: "nats://127.0.0.1:4222", hostname: "web1", spoolDir: "/tmp/spool" });
 * for await (const event of watch()) exporter.publish(event);
 * await exporter.close();
 * ```
 */
export class NatsExporter {
  readonly #options: Required<Omit<NatsExporterOptions, "warn">>;
  readonly #warn: (line: string) => void;
  readonly #prefix: string;
  readonly #idBase: string;
  readonly #spool: Spool;
  readonly #stats: NatsExporterStats = {
    queued: 0,
    published: 0,
    duplicates: 0,
    spooled: 0,
    dropped: 0,
    connections: 0,
  };
  /** Unacknowledged messages of a dropped connection, to resend first. */
  #retry: SpoolEntry[] = [];
  /** Messages not yet sent, after `#retry` and before the spool. */
  #memory: SpoolEntry[] = [];
  #memoryHead = 0;
  #inflight: Inflight[] = [];
  #sequence = 0;
  #unreportedLoss = 0;
  #lastLossReport = 0;
  #connection: NatsConnection | null = null;
  /** The reply subject prefix of this connection's acknowledgements. */
  #inbox = "";
  #nextKey = 0;
  #streamReady = false;
  #closing = false;
  #wake: (() => void) | null = null;
  #outage = false;
  #flushScheduled = false;
  readonly #pump: Promise<void>;
  /** Settles once the first connection is up (or failed: then the spool takes over). */
  readonly firstAttempt: Promise<void>;
  #firstAttemptDone!: () => void;

  /** Opens the spool and starts connecting in the background. */
  constructor(options: NatsExporterOptions) {
    this.#options = {
      subjectPrefix: "procwatch",
      stream: "PROCWATCH",
      spoolMaxBytes: 256 << 20,
      window: 1024,
      memoryEntries: 1024,
      ackTimeoutMs: 5000,
      // An option given as `undefined` keeps its default.
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as Required<Omit<NatsExporterOptions, "warn">>;
    this.#warn = options.warn ?? (() => {});
    this.#prefix = `${this.#options.subjectPrefix}.${subjectToken(options.hostname)}`;
    // Unique per run, so that message ids never collide with an earlier run's.
    this.#idBase = `${subjectToken(options.hostname)}.${Date.now().toString(36)}.${Deno.pid}`;
    this.#spool = new Spool(this.#options.spoolDir, this.#options.spoolMaxBytes);
    this.firstAttempt = new Promise((resolve) => this.#firstAttemptDone = resolve);
    this.#pump = this.#run();
  }

  /** A snapshot of the counters. */
  get stats(): Readonly<NatsExporterStats> {
    return { ...this.#stats };
  }

  /** Messages not yet acknowledged: in flight, in memory and in the spool. */
  get backlog(): number {
    return this.#retry.length + this.#inflight.length + this.#memory.length - this.#memoryHead +
      this.#spool.length;
  }

  /** The subject an event goes to. */
  subject(event: ProcEvent): string {
    return `${this.#prefix}.${event.type}`;
  }

  /** Queues one event for publishing (never blocks; a full spool drops it). */
  publish(event: ProcEvent): void {
    this.#stats.queued++;
    const entry: SpoolEntry = {
      id: `${this.#idBase}.${++this.#sequence}`,
      subject: this.subject(event),
      data: eventToJson(event, wallClock.offsetAt(event.timestampNs)),
    };
    const inMemory = this.#memory.length - this.#memoryHead;
    if (this.#spool.length === 0 && inMemory < this.#options.memoryEntries) {
      this.#memory.push(entry);
    } else if (this.#spool.append(entry)) {
      this.#stats.spooled++;
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => {
          this.#flushScheduled = false;
          this.#spool.flush();
        });
      }
    } else {
      this.#stats.dropped++;
      this.#unreportedLoss++;
    }
    // The pump waits for acknowledgements while the window is full.
    if (this.#inflight.length < this.#options.window) this.#wake?.();
  }

  /**
   * Events dropped (spool full) since the last report, as one `lost` event
   * with reason `"export"`; `null` when none were, or — unless `now` — when
   * the last report is less than a second old: a long outage with a full
   * spool says so once a second, not once per batch.
   */
  takeLoss(now = false): LostEvent | null {
    if (this.#unreportedLoss === 0) return null;
    if (!now && Date.now() - this.#lastLossReport < 1000) return null;
    this.#lastLossReport = Date.now();
    const count = this.#unreportedLoss;
    this.#unreportedLoss = 0;
    return lostEventNow(count, "export");
  }

  /**
   * Waits up to `timeoutMs` for every queued message to be acknowledged,
   * then writes whatever is left to the spool (sent after the next start)
   * and disconnects. What the spool has no room for counts in `takeLoss()`.
   * Calling it again does nothing.
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.#closing) return;
    const deadline = Date.now() + timeoutMs;
    // Disconnected too: the server may be back within the time given.
    while (this.backlog > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#closing = true;
    this.#wake?.();
    // The pump ends at its next turn; a connection stuck on a stalled server
    // must not hold procwatch's exit.
    await within(this.#pump, 2000);
    // Unacknowledged ones first: they are the oldest. Those the stream did
    // store come back as duplicates next time.
    const left = [
      ...this.#unstored(),
      ...this.#retry,
      ...this.#memory.slice(this.#memoryHead),
    ];
    this.#inflight = [];
    this.#retry = [];
    this.#memory = [];
    this.#memoryHead = 0;
    if (left.length > 0) {
      // They are older than what the spool holds: rewrite it in order.
      const rest: SpoolEntry[] = [];
      for (
        let batch = this.#spool.takeOldest();
        batch.length > 0;
        batch = this.#spool.takeOldest()
      ) {
        rest.push(...batch);
      }
      for (const entry of [...left, ...rest]) {
        if (this.#spool.append(entry)) continue;
        this.#stats.dropped++;
        this.#unreportedLoss++; // for takeLoss() after close()
      }
    }
    this.#spool.close();
    const connection = this.#connection;
    this.#connection = null;
    if (connection !== null) await closeQuietly(connection);
  }

  /** The in-flight messages the stream has not confirmed, in order. */
  #unstored(): SpoolEntry[] {
    return this.#inflight.filter((item) => item.ack !== "new" && item.ack !== "duplicate")
      .map((item) => item.entry);
  }

  /** The next message to send, in order: resends, memory, then the spool. */
  #next(): SpoolEntry | undefined {
    if (this.#retry.length > 0) return this.#retry.shift();
    if (this.#memoryHead === this.#memory.length && this.#spool.length > 0) {
      this.#memory = this.#spool.takeOldest();
      this.#memoryHead = 0;
    }
    if (this.#memoryHead < this.#memory.length) {
      const entry = this.#memory[this.#memoryHead++];
      if (this.#memoryHead > 4096 && this.#memoryHead * 2 > this.#memory.length) {
        this.#memory = this.#memory.slice(this.#memoryHead);
        this.#memoryHead = 0;
      }
      return entry;
    }
    return undefined;
  }

  async #run(): Promise<void> {
    let backoffMs = 100;
    while (!this.#closing) {
      if (this.#connection === null) {
        try {
          await this.#connect();
          backoffMs = 100;
        } catch (error) {
          this.#firstAttemptDone();
          this.#noteOutage(error);
          await this.#sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 2000);
          continue;
        }
      }
      if (this.#connection!.isClosed()) {
        this.#dropConnection(new Error("connection closed"));
        continue;
      }
      // JetStream answers a message with a reply subject like a request
      // (the client's js.publish()), but publishing with our own reply
      // subjects and one subscription for every acknowledgement costs a
      // fraction of a request per message (no per-request timer and promise).
      const connection = this.#connection!;
      while (this.#inflight.length < this.#options.window) {
        const entry = this.#next();
        if (entry === undefined) break;
        const key = this.#nextKey++;
        const header = headers();
        header.set("Nats-Msg-Id", entry.id);
        connection.publish(entry.subject, entry.data, {
          headers: header,
          reply: `${this.#inbox}.${key}`,
        });
        this.#inflight.push({ entry, key, ack: "pending", sentAt: Date.now() });
      }
      if (this.#inflight.length === 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = null;
        continue;
      }
      // Settle in order: a message counts once it and all before it are stored.
      let failure: Error | null = null;
      while (this.#inflight.length > 0 && this.#inflight[0].ack !== "pending") {
        const { ack } = this.#inflight[0];
        if (ack instanceof Error) {
          failure = ack;
          break;
        }
        this.#inflight.shift();
        if (ack === "duplicate") this.#stats.duplicates++;
        else this.#stats.published++;
      }
      if (failure !== null) {
        this.#dropConnection(failure);
        continue;
      }
      if (this.#inflight.length === 0) continue;
      const waitMs = this.#inflight[0].sentAt + this.#options.ackTimeoutMs - Date.now();
      if (waitMs <= 0) {
        this.#dropConnection(
          new Error(`no acknowledgement within ${this.#options.ackTimeoutMs} ms`),
        );
        continue;
      }
      // An acknowledgement, a new event (when the window has room), the
      // connection's end, or the timeout.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#wake = null;
          resolve();
        }, waitMs);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = null;
          resolve();
        };
      });
    }
  }

  /** Marks the message an acknowledgement (or error) on this connection is for. */
  #onAck(connection: NatsConnection, message: Msg): void {
    if (connection !== this.#connection || this.#inflight.length === 0) return;
    const key = Number(message.subject.slice(this.#inbox.length + 1));
    const item = this.#inflight[key - this.#inflight[0].key];
    if (item === undefined || item.key !== key) return;
    if (message.headers?.hasError) {
      // 503: no stream takes the subject (the server's "no responders").
      item.ack = new Error(
        message.headers.code === 503
          ? `no JetStream stream takes ${item.entry.subject}`
          : `${message.headers.code} ${message.headers.description}`,
      );
    } else {
      const reply = message.json<{ duplicate?: boolean; error?: { description?: string } }>();
      item.ack = reply.error !== undefined
        ? new Error(reply.error.description ?? "JetStream refused the message")
        : reply.duplicate
        ? "duplicate"
        : "new";
    }
    if (this.#inflight[0] === item || item.ack instanceof Error) this.#wake?.();
  }

  async #connect(): Promise<void> {
    const connection = await connect({
      servers: this.#options.servers.split(","),
      reconnect: false,
      timeout: 2000,
      name: `procwatch ${this.#prefix}`,
    });
    try {
      if (!this.#streamReady) await this.#ensureStream(connection);
    } catch (error) {
      await closeQuietly(connection);
      throw error;
    }
    this.#connection = connection;
    this.#inbox = createInbox();
    this.#nextKey = 0;
    connection.subscribe(`${this.#inbox}.*`, {
      callback: (error, message) => {
        if (error === null) this.#onAck(connection, message);
      },
    });
    this.#stats.connections++;
    // Without reconnecting, a closed connection fails its pending acks at once.
    connection.closed().then(() => this.#wake?.());
    if (this.#outage) {
      this.#outage = false;
      this.#warn(
        `procwatch: NATS server reachable again: resending ${this.backlog} queued events in order`,
      );
    }
    this.#firstAttemptDone();
  }

  async #ensureStream(connection: NatsConnection): Promise<void> {
    const manager = await jetstreamManager(connection);
    const name = this.#options.stream;
    try {
      await manager.streams.info(name);
    } catch {
      await manager.streams.add({ name, subjects: [`${this.#options.subjectPrefix}.>`] });
    }
    this.#streamReady = true;
  }

  #dropConnection(error: unknown): void {
    const connection = this.#connection;
    this.#connection = null;
    // Every message not known stored goes back, in order, ahead of the rest.
    this.#retry = [...this.#unstored(), ...this.#retry];
    this.#inflight = [];
    // Not awaited: closing waits for a server that may be stalled, and what
    // this connection still receives is ignored (#onAck checks it).
    if (connection !== null) void closeQuietly(connection);
    this.#noteOutage(error);
  }

  #noteOutage(error: unknown): void {
    if (this.#outage) return;
    this.#outage = true;
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    this.#warn(
      `procwatch: warning: NATS server ${this.#options.servers} unavailable (${reason}): ` +
        `keeping events in the spool ${this.#options.spoolDir} until it is back`,
    );
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        if (!this.#closing) return; // new events do not cut a back-off short
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }
}

/** Waits for `promise`, or `ms` at most. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/** Closes a connection, giving up after a second (a stalled server never answers). */
function closeQuietly(connection: NatsConnection): Promise<void> {
  return within(connection.close(), 1000);
}
