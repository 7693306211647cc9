/**
 * The exec-capture worker: its own proc connector subscription (exec events
 * only, filtered by the kernel when it can), drained on a thread of its own
 * that blocks in `poll()` — no event loop between the kernel's wake-up and
 * the /proc read. For each exec it reads the name, executable and command
 * line at once and publishes them in shared memory ({@linkcode ExecCapture}).
 *
 * Runs as a module Worker; started and stopped by lib/exec_capture.ts.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { raiseThisThread } from "../ffi/priority.ts";
import { readFileBytes, readFileText, readLink } from "../ffi/proc_fs.ts";
import { decodeDatagram, type DecodedMessage } from "./decode.ts";
import { parseStat } from "./proc_parse.ts";
import { ProcEventWhat } from "./protocol.ts";
import { CaptureRing } from "./capture_ring.ts";
import { ignore, listen, openSocket } from "./subscription.ts";

self.onmessage = (
  message: MessageEvent<{ ring: SharedArrayBuffer; control: SharedArrayBuffer }>,
) => {
  const ring = new CaptureRing(message.data.ring);
  const control = new BigInt64Array(message.data.control);
  try {
    run(ring, control);
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
  self.close();
};

function run(ring: CaptureRing, control: BigInt64Array): void {
  // This thread sleeps in poll() and works for microseconds per exec: running it ahead of
  // the workload costs the machine nothing and is what lets it beat a process's exit.
  raiseThisThread();
  const socket = openSocket(4 << 20);
  const buffer = new Uint8Array(64 * 1024);
  const messages: DecodedMessage[] = [];
  const acks = new Map<number, number>();
  const drain = (): void => {
    for (;;) {
      const result = socket.receive(buffer);
      if (result.kind === "empty") return;
      if (result.kind !== "datagram" || result.senderPort !== 0) continue;
      messages.length = 0;
      decodeDatagram(buffer, result.length, 0n, messages);
      for (const decoded of messages) {
        if (decoded.kind === "ack") acks.set(decoded.ack, decoded.error);
        else if (decoded.kind === "event" && decoded.event.type === "exec") {
          const event = decoded.event;
          if (event.pid === event.tid) capture(ring, event.pid, event.timestampNs);
          // Tells the watcher this exec was handled: no need to wait for it.
          Atomics.store(control, 1, BigInt.asIntN(64, event.timestampNs));
        }
      }
    }
  };
  try {
    listen(socket, ProcEventWhat.EXEC, true, (ack) => {
      drain();
      const error = acks.get(ack);
      return { seen: error !== undefined, error: error ?? 0 };
    });
    self.postMessage({ ready: true });
    while (Atomics.load(control, 0) === 0n) {
      if (socket.waitSync(100)) drain();
    }
  } finally {
    ignore(socket);
    socket.close();
  }
}

function capture(ring: CaptureRing, pid: number, timestampNs: bigint): void {
  const cmdline = readFileBytes(`/proc/${pid}/cmdline`, ring.maxCmdlineBytes);
  if (!cmdline.ok || cmdline.bytes.length === 0) return;
  const comm = parseStat(readFileText(`/proc/${pid}/stat`, 1024) ?? "")?.comm ?? "";
  const exe = readLink(`/proc/${pid}/exe`) ?? "";
  ring.write(pid, timestampNs, comm, exe, cmdline.bytes);
}
