/**
 * Receiving: drains the socket (`recvmmsg`), believes only the kernel,
 * decodes each datagram and routes each message: an event through the
 * selection, the process context and the process filters into the queue; an
 * ACK to the subscription; every message's number to the loss accounting.
 *
 * May import: ffi/ (the socket type), lib/connector/ (decode), lib/events/,
 * lib/process/ (the context) and this room's modules.
 *
 * @module
 */

import type { ConnectorSocket } from "../../ffi/connector.ts";
import { decodeDatagram, type DecodedMessage } from "../connector/decode.ts";
import { wallClock } from "../events/wall_clock.ts";
import type { EventContext } from "../process/enrich.ts";
import type { LossAccounting } from "./loss.ts";
import type { EventSelection } from "./select.ts";
import type { WatcherStats } from "./stats.ts";

/** Where ACKs go: the subscription waits for the one answering its LISTEN. */
export interface AckSink {
  /** Notes that the kernel answered request `ack` with `error` (0: success). */
  noteAck(ack: number, error: number): void;
}

/**
 * Turns what the socket holds into counted, filtered, queued events.
 *
 * @example
 * ```ts
 * import { Receiver } from "./receive.ts";
 * import { Subscription } from "./subscribe.ts";
 * import { LossAccounting } from "./loss.ts";
 * import { EventSelection } from "./select.ts";
 * import { BoundedQueue } from "./queue.ts";
 * import { resolveOptions } from "./options.ts";
 * import { zeroStats } from "./stats.ts";
 * import type { ProcEvent } from "@procwatch/procwatch";
 *
 * // As ProcWatcher composes it (watcher.ts); the pump calls drain() after each poll.
 * const settings = resolveOptions({ events: ["exit"] });
 * const stats = zeroStats();
 * const queue = new BoundedQueue<ProcEvent>(settings.queueCapacity);
 * const subscription = new Subscription(settings, false);
 * const { socket } = subscription;
 * const loss = new LossAccounting(stats, queue, socket);
 * const selection = new EventSelection(settings);
 * const receiver = new Receiver(socket, stats, loss, selection, null, subscription);
 * subscription.listen(receiver, loss, true);
 * console.log(receiver.drain(4096), queue.length);
 * subscription.close();
 * ```
 */
export class Receiver {
  readonly #socket: ConnectorSocket;
  readonly #stats: WatcherStats;
  readonly #loss: LossAccounting;
  readonly #selection: EventSelection;
  /** Process table, filters and enrichment; `null` when none is asked for (no cost). */
  readonly #context: EventContext | null;
  readonly #acks: AckSink;
  readonly #messages: DecodedMessage[] = [];

  /** Receives from `socket`, counting into `stats` and `loss`. */
  constructor(
    socket: ConnectorSocket,
    stats: WatcherStats,
    loss: LossAccounting,
    selection: EventSelection,
    context: EventContext | null,
    acks: AckSink,
  ) {
    this.#socket = socket;
    this.#stats = stats;
    this.#loss = loss;
    this.#selection = selection;
    this.#context = context;
    this.#acks = acks;
  }

  /** Receives up to about `limit` datagrams; returns how many it received. */
  drain(limit: number): number {
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
        this.#loss.syncDrops();
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
      // No stop at a partial batch: recvmmsg() ends a batch early also when the
      // socket overflowed (do_recvmmsg() keeps that ENOBUFS in sk_err for the
      // next call), and the drops must be counted where they happened, before
      // the events received after them.
    }
    return received;
  }

  #handle(message: DecodedMessage): void {
    switch (message.kind) {
      case "event": {
        this.#stats.received++;
        const event = message.event;
        this.#loss.numbered(event.cpu, message.seq);
        const context = this.#context;
        if (context === null) {
          if (this.#selection.accepts(event)) this.#loss.push(event);
          else this.#stats.filtered++;
          return;
        }
        // Table upkeep sees every event; cheap filters run before any /proc read.
        context.observe(event);
        if (this.#selection.accepts(event) && context.admit(event)) this.#loss.push(event);
        else this.#stats.filtered++;
        return;
      }
      case "ack":
        this.#stats.received++;
        // Numbered on its CPU like an event (any listener's LISTEN or IGNORE);
        // older kernels' ACKs (cpu -1) took no number (see sequence.ts).
        this.#loss.numbered(message.cpu, message.seq);
        this.#acks.noteAck(message.ack, message.error);
        return;
      case "unknown":
        this.#stats.received++;
        this.#stats.unknown++;
        this.#loss.numbered(message.cpu, message.seq);
        return;
      case "other":
        this.#stats.foreign++;
        return;
      case "malformed":
        this.#stats.malformed++;
        return;
    }
  }
}
