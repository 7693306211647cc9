/**
 * A watcher's subscription, from open to close: what to ask the kernel for
 * (the `enum proc_cn_event` mask, the classic BPF socket filter), the socket
 * opened with that filter in place, the LISTEN and its ACK (re-sent by
 * lib/connector/subscription.ts when the ACK may have been dropped), the
 * filter narrowed once subscribed, and at the end IGNORE and close.
 *
 * May import: ground/ (cn_proc.ts), ffi/ (the socket, errno), lib/connector/
 * (subscription, bpf) and this room's options.ts.
 *
 * @module
 */

import type { ConnectorSocket } from "../../ffi/connector.ts";
import { ErrnoError } from "../../ffi/libc.ts";
import { PROC_EVENT_ALL, ProcEventWhat } from "../../ground/cn_proc.ts";
import { EVENT_TYPES } from "../events/events.ts";
import { kernelMask, TABLE_BITS } from "../events/event_types.ts";
import {
  encodeProgram,
  planSocketFilter,
  type SocketFilterInfo,
  type SocketFilterPlan,
} from "../connector/bpf.ts";
import { type FilterMode, ignore, listen, openSocket } from "../connector/subscription.ts";
import type { WatchSettings } from "./options.ts";

const ALL = PROC_EVENT_ALL >>> 0;

/**
 * The `enum proc_cn_event` mask to LISTEN with: the types asked for, what the
 * process table needs (`withTable`), `NONZERO_EXIT` for failed exits only.
 *
 * @example
 * ```ts
 * import { listenMask } from "./subscribe.ts";
 * import { resolveOptions } from "./options.ts";
 * console.log(listenMask(resolveOptions({ events: ["exec"] }), false)); // 2 (PROC_EVENT_EXEC)
 * ```
 */
export function listenMask(
  settings: Pick<WatchSettings, "types" | "failedOnly">,
  withTable: boolean,
): number {
  let mask = kernelMask(settings.types);
  // The table follows forks, execs, renames, user changes and exits, delivered or not.
  if (withTable) mask |= TABLE_BITS;
  if (settings.failedOnly && (mask & ProcEventWhat.EXIT)) {
    mask = (mask & ~ProcEventWhat.EXIT) | ProcEventWhat.NONZERO_EXIT;
  }
  // Every type asked for: ask for PROC_EVENT_ALL itself (its NONZERO_EXIT bit
  // has no type of its own), so the kernel filters nothing out and each
  // CPU's sequence numbers stay gap-free; gaps then count losses exactly.
  if (EVENT_TYPES.every((type) => settings.types.has(type)) && !settings.failedOnly) {
    mask = PROC_EVENT_ALL;
  }
  return mask >>> 0;
}

/** What LISTEN drains the socket with while it waits for its ACK. */
export interface Drain {
  /** Receives and handles what the socket holds (ACKs come back through `noteAck`). */
  drain(limit: number): number;
}

/** The loss accounting, told whether sequence gaps count losses as the subscription learns it. */
export interface GapCounting {
  /** Whether the kernel filters nothing out of what the socket receives. */
  countGaps: boolean;
}

/**
 * One subscription to the proc connector. The constructor opens the socket;
 * {@linkcode listen} subscribes; {@linkcode close} unregisters.
 *
 * @example
 * ```ts
 * import { Subscription } from "./subscribe.ts";
 * import { Receiver } from "./receive.ts";
 * import { LossAccounting } from "./loss.ts";
 * import { EventSelection } from "./select.ts";
 * import { BoundedQueue } from "./queue.ts";
 * import { resolveOptions } from "./options.ts";
 * import { zeroStats } from "./stats.ts";
 * import type { ProcEvent } from "@procwatch/procwatch";
 *
 * // As ProcWatcher composes it (watcher.ts): open, then a receiver on its
 * // socket that hands ACKs to `noteAck`, then LISTEN.
 * const settings = resolveOptions({ events: ["exit"] });
 * const subscription = new Subscription(settings, false);
 * const stats = zeroStats();
 * const queue = new BoundedQueue<ProcEvent>(settings.queueCapacity);
 * const loss = new LossAccounting(stats, queue, subscription.socket);
 * const selection = new EventSelection(settings);
 * const receiver = new Receiver(subscription.socket, stats, loss, selection, null, subscription);
 * subscription.listen(receiver, loss, true);
 * console.log(subscription.filterMode); // "kernel" on Linux >= 6.6
 * subscription.close();
 * ```
 */
export class Subscription {
  /** The socket, open until {@linkcode close}. */
  readonly socket: ConnectorSocket;
  /** What the attached classic BPF socket filter selects. */
  socketFilter: SocketFilterInfo;
  /** Whether the kernel selects event types, or procwatch does (known once {@linkcode listen} returned). */
  filterMode: FilterMode = "userspace";
  readonly #mask: number;
  /** The event types the socket filter should select (`null`: every type). */
  readonly #typeMask: number | null;
  readonly #kernelFilter: boolean | "bpf";
  readonly #kernelPids: number[] | null;
  readonly #pidsReason: string | null;
  /** ACK number → errno, as received; bounded. */
  readonly #acks = new Map<number, number>();

  /**
   * Opens the socket for `settings`, with the socket filter attached before it
   * joins the proc events group (no message reaches it unfiltered).
   * `withTable`: a process table follows every process (context or process filters).
   */
  constructor(
    settings: Pick<
      WatchSettings,
      "types" | "failedOnly" | "pids" | "kernelFilter" | "receiveBufferBytes"
    >,
    withTable: boolean,
  ) {
    const { pids, kernelFilter } = settings;
    this.#mask = listenMask(settings, withTable);
    this.#typeMask = this.#mask === ALL ? null : this.#mask;
    this.#kernelFilter = kernelFilter;
    // Pids go to the socket filter unless the process table needs every
    // process (context and process filters follow parents, names, exits).
    this.#kernelPids = kernelFilter !== false && pids !== null && !withTable ? [...pids] : null;
    this.#pidsReason = pids !== null && kernelFilter !== false && withTable
      ? "the process table follows every process"
      : null;
    // While subscribing, ACKs pass (LISTEN waits for its own); the types wait
    // for LISTEN's answer (proc_input or not) unless the program is forced.
    const first = this.#plan(kernelFilter === "bpf" ? this.#typeMask : null, true);
    this.socket = openSocket(
      settings.receiveBufferBytes,
      first.program === null ? null : encodeProgram(first.program),
    );
    this.socketFilter = this.socket.filterError === null
      ? first.info
      : refused(first.info, this.socket.filterError);
  }

  /**
   * Subscribes (PROC_CN_MCAST_LISTEN, through `proc_input` when
   * `allowKernelFilter` and the kernel has it) and narrows the socket filter.
   * Messages arriving meanwhile are drained through `receiver`; `loss` learns
   * when sequence gaps count losses. On failure the socket is closed and the
   * error (with advice) thrown.
   */
  listen(receiver: Drain, loss: GapCounting, allowKernelFilter: boolean): void {
    const kernelFilter = this.#kernelFilter;
    // Already while LISTEN is answered (events may flow, the buffer may
    // overrun): gaps count when nothing can be filtered by the kernel.
    loss.countGaps = (this.#mask === ALL || !kernelFilter) &&
      this.socketFilter.instructions === 0;
    try {
      const subscribed = listen(this.socket, this.#mask, allowKernelFilter, (ack) => {
        receiver.drain(Number.MAX_SAFE_INTEGER);
        const error = this.#acks.get(ack);
        return { seen: error !== undefined, error: error ?? 0 };
      });
      // No proc_input filter (Linux < 6.6): the socket filter selects the types.
      const bpfTypes = this.socketFilter.types ||
        (subscribed === "userspace" && kernelFilter === true && this.#typeMask !== null);
      if (bpfTypes || this.socketFilter.instructions > 0) {
        // Subscribed: from now on ACKs (other listeners' LISTEN and IGNORE)
        // are dropped too, as the proc_input filter does.
        const replaced = this.#attach(this.#plan(bpfTypes ? this.#typeMask : null, false));
        // A refused program leaves the one attached before in place.
        if (replaced.instructions > 0 || this.socketFilter.instructions === 0) {
          this.socketFilter = replaced;
        }
      }
      this.filterMode = this.socketFilter.types ? "kernel" : subscribed;
    } catch (error) {
      this.socket.close();
      throw error;
    }
    this.#acks.clear();
    // Whatever the kernel drops for us leaves gaps in cn_msg.seq: then the
    // socket's drop counter (sk_drops) counts losses instead.
    loss.countGaps = (this.filterMode === "userspace" || this.#mask === ALL) &&
      this.socketFilter.instructions === 0;
  }

  /** Notes the kernel's answer `error` to request `ack` (any listener's, while subscribed). */
  noteAck(ack: number, error: number): void {
    this.#acks.set(ack, error);
    if (this.#acks.size > 64) this.#acks.clear();
  }

  /**
   * Unregisters (`PROC_CN_MCAST_IGNORE`) and closes the socket; a poll
   * pending on it is woken and the descriptors released once it returned.
   */
  close(): void {
    ignore(this.socket);
    this.socket.close();
  }

  #plan(types: number | null, acks: boolean): SocketFilterPlan {
    return planSocketFilter(types, this.#kernelPids, this.#pidsReason, acks);
  }

  /**
   * Attaches the planned program; when the kernel refuses it (a program is
   * charged to `net.core.optmem_max`), procwatch filters instead.
   */
  #attach(plan: SocketFilterPlan): SocketFilterInfo {
    if (plan.program === null) return plan.info;
    try {
      this.socket.attachFilter(encodeProgram(plan.program));
      return plan.info;
    } catch (error) {
      if (!(error instanceof ErrnoError)) throw error;
      return refused(plan.info, error.message);
    }
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
