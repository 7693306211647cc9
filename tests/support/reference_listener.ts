/**
 * A Worker that listens with a large receive buffer on a thread of its own,
 * so it keeps up while the test's main thread is busy making a storm: the
 * reference that the lossy watcher's loss reports are checked against.
 *
 * It reads the socket itself (the decoder only, none of the watcher's loss
 * accounting) and records, in arrival order, each message's CPU and a key:
 * the pid for an exit of a child of `parent` (markers and storm processes),
 * {@linkcode ACK_KEY} for an ACK (it takes a number on its CPU like an event,
 * `send_msg()` in drivers/connector/cn_proc.c), else 0. It proves it lost
 * nothing itself: no overrun, its socket's `Drops` at 0 and, when it gets
 * every message, each CPU's numbers without a gap.
 *
 * @module
 */

import { decodeDatagram, type DecodedMessage } from "../../lib/connector/decode.ts";
import { readNetlinkDrops } from "../../lib/connector/drops.ts";
import { PROC_EVENT_ALL } from "../../ground/cn_proc.ts";
import { ignore, listen, openSocket } from "../../lib/connector/subscription.ts";

/** The key of an ACK in {@linkcode ReferenceReply}'s `keys`. */
export const ACK_KEY = -2;

/**
 * Messages the test sends.
 *
 * @example
 * ```ts
 * import type { ReferenceCommand } from "./reference_listener.ts";
 * const start: ReferenceCommand = { type: "start", parent: Deno.pid, receiveBufferBytes: 64 << 20 };
 * ```
 */
export type ReferenceCommand =
  | {
    type: "start";
    parent: number;
    /** `proc_input.event_type` to ask for; default `PROC_EVENT_ALL`. */
    eventMask?: number;
    receiveBufferBytes: number;
  }
  | { type: "stop"; endPids: number[] };

/**
 * Messages the worker sends back.
 *
 * @example
 * ```ts
 * import type { ReferenceReply } from "./reference_listener.ts";
 * const ready: ReferenceReply = { type: "ready" };
 * ```
 */
export type ReferenceReply =
  | { type: "ready" }
  | {
    type: "done";
    cpus: number[];
    keys: number[];
    /** Messages it lost itself: ENOBUFS episodes plus its socket's `Drops`. */
    lost: number;
    /** Numbers missing between consecutive messages of a CPU (only with `PROC_EVENT_ALL`). */
    gaps: number;
  }
  | { type: "error"; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<ReferenceCommand>) => void) | null;
  postMessage(message: ReferenceReply): void;
}

const scope = globalThis as unknown as WorkerScope;
let pending: Set<number> | null = null;
const seenExits = new Set<number>();
let stopping = false;

scope.onmessage = (message) => {
  const command = message.data;
  if (command.type === "start") {
    run(command).catch((error) => scope.postMessage({ type: "error", message: String(error) }));
  } else {
    pending = new Set(command.endPids.filter((pid) => !seenExits.has(pid)));
    if (pending.size === 0) stopping = true;
  }
};

async function run(command: Extract<ReferenceCommand, { type: "start" }>): Promise<void> {
  const mask = (command.eventMask ?? PROC_EVENT_ALL) >>> 0;
  const everything = mask === PROC_EVENT_ALL >>> 0;
  const socket = openSocket(command.receiveBufferBytes);
  const cpus: number[] = [];
  const keys: number[] = [];
  const next = new Map<number, number>();
  const acks = new Map<number, number>();
  const decoded: DecodedMessage[] = [];
  let overruns = 0;
  let gaps = 0;

  const numbered = (cpu: number, seq: number) => {
    const expected = next.get(cpu);
    if (expected !== undefined && expected !== seq) gaps += (seq - expected) >>> 0;
    next.set(cpu, (seq + 1) >>> 0);
  };
  const handle = (message: DecodedMessage) => {
    if (message.kind === "ack") {
      acks.set(message.ack, message.error);
      if (message.cpu === null) return;
      numbered(message.cpu, message.seq);
      cpus.push(message.cpu);
      keys.push(ACK_KEY);
      return;
    }
    if (message.kind !== "event") return;
    const event = message.event;
    const cpu = event.cpu ?? -1;
    if (cpu !== -1) numbered(cpu, message.seq);
    cpus.push(cpu);
    const key = event.type === "exit" && event.parentPid === command.parent ? event.pid : 0;
    keys.push(key);
    if (key !== 0) {
      seenExits.add(key);
      if (pending?.delete(key) && pending.size === 0) stopping = true;
    }
  };
  const drain = () => {
    for (;;) {
      const result = socket.receiveMany();
      if (result.kind === "empty") return;
      if (result.kind === "overrun") {
        overruns++;
        continue;
      }
      for (let i = 0; i < result.count; i++) {
        if (socket.sender(i) !== 0) continue;
        const bytes = socket.datagram(i);
        decoded.length = 0;
        decodeDatagram(bytes, bytes.length, 0n, decoded);
        for (const message of decoded) handle(message);
      }
    }
  };

  try {
    listen(socket, mask, true, (ack) => {
      drain();
      const error = acks.get(ack);
      return { seen: error !== undefined, error: error ?? 0 };
    });
    scope.postMessage({ type: "ready" });
    while (!stopping) {
      await socket.wait(50);
      drain();
    }
    drain();
    const drops = readNetlinkDrops(socket.portId);
    scope.postMessage({
      type: "done",
      cpus,
      keys,
      lost: overruns + (drops ?? Number.NaN),
      gaps: everything ? gaps : 0,
    });
  } finally {
    ignore(socket);
    await socket.close();
  }
}
