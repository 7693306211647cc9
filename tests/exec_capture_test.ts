/**
 * The exec-capture worker runs the main thread's code: its source text is
 * made of the same control message builder, exec/ACK readers and ring
 * writers (lib/process/exec_capture_worker.ts captureWorkerSource), and what
 * it writes decodes as CaptureRing.write's does.
 * The capture ring itself (lib/process/capture_ring.ts) is checked at the end.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { controlMessage, PROC_CN_MCAST_IGNORE, PROC_EVENT_ALL } from "../ground/cn_proc.ts";
import { ackErrorAt, decodeDatagram, execEventAt } from "../lib/connector/decode.ts";
import type { DecodedMessage } from "../lib/connector/decode.ts";
import {
  CaptureRing,
  CaptureStatus,
  RING_LAYOUT,
  setCaptureStatus,
  writeCapture,
} from "../lib/process/capture_ring.ts";
import { ExecCapture } from "../lib/process/exec_capture.ts";
import {
  captureWorker,
  captureWorkerSource,
  WORKER_FUNCTIONS,
} from "../lib/process/exec_capture_worker.ts";
import { monotonicNs } from "../ffi/clock.ts";
import { datagram, message, ProcEventWhat } from "./support/fixtures.ts";
import { kernelTest } from "./support/kernel.ts";
import { until } from "./support/processes.ts";

/** The shared functions as the worker's text defines them. */
interface WorkerText {
  controlMessage: typeof controlMessage;
  execEventAt: typeof execEventAt;
  ackErrorAt: typeof ackErrorAt;
  writeCapture: typeof writeCapture;
  setCaptureStatus: typeof setCaptureStatus;
  onmessage: unknown;
}

/**
 * Evaluates the worker's whole source text in a scope of its own — no module
 * names, only globals and a stand-in `self` — and returns its functions: a
 * function that named anything the text does not declare would throw here.
 */
function evaluateWorkerText(): WorkerText {
  const self: { onmessage?: unknown } = {};
  const names = "{ controlMessage, execEventAt, ackErrorAt, writeCapture, setCaptureStatus }";
  const make = new Function("self", `${captureWorkerSource()}\nreturn ${names};`);
  return { ...make(self), onmessage: self.onmessage };
}

Deno.test("capture worker text: made of the main thread's functions, imports nothing", () => {
  const source = captureWorkerSource();
  for (const fn of WORKER_FUNCTIONS) {
    assert.ok(source.includes(fn.toString()), `the worker's text holds ${fn.name} as it runs here`);
  }
  for (const fn of [controlMessage, execEventAt, ackErrorAt, writeCapture, setCaptureStatus]) {
    assert.ok(WORKER_FUNCTIONS.includes(fn as never), `${fn.name} is one of the worker's`);
    // The body calls the shared function by its name, not a copy of its own.
    assert.match(captureWorker.toString(), new RegExp(`\\b${fn.name}\\(`));
  }
  assert.doesNotMatch(source, /^\s*import\b|\bimport\(/m, "imports would need --allow-read");
  const text = evaluateWorkerText();
  assert.equal(typeof text.onmessage, "function");
});

Deno.test("capture worker text: control messages byte-equal to the main thread's", () => {
  const text = evaluateWorkerText();
  const cases: [number, number, number, number, number?][] = [
    [1, 4242, 77, 77, PROC_EVENT_ALL],
    [1, 4242, 79, 79, ProcEventWhat.EXEC],
    [1, 0x80000001, 0x3fffffff, 0x3fffffff],
    [PROC_CN_MCAST_IGNORE, 99, 0, 0],
  ];
  for (const [op, port, seq, ack, mask] of cases) {
    assert.deepEqual(
      text.controlMessage(op, port, seq, ack, mask),
      controlMessage(op, port, seq, ack, mask),
    );
  }
  // IGNORE as the worker used to build it by hand (unsubscribeWorker): same 40 bytes.
  const ignore = controlMessage(PROC_CN_MCAST_IGNORE, 99, 0, 0);
  const view = new DataView(ignore.buffer);
  assert.equal(ignore.length, 40);
  assert.deepEqual(
    [view.getUint32(0, true), view.getUint16(4, true), view.getUint32(12, true)],
    [40, 3, 99],
  );
  assert.deepEqual([view.getUint16(32, true), view.getUint32(36, true)], [4, 2]);
});

Deno.test("capture worker text: reads exec events and ACKs as the decoder does", () => {
  const text = evaluateWorkerText();
  const bytes = datagram(
    message({ what: ProcEventWhat.FORK, data: [10, 10, 11, 11] }),
    message({ what: ProcEventWhat.EXEC, timestampNs: 2n ** 40n + 5n, data: [31, 30] }), // thread
    message({ what: ProcEventWhat.EXEC, timestampNs: 123_456_789n, data: [30, 30] }),
    message({ what: ProcEventWhat.EXEC, data: [40, 40], idx: 2 }), // another connector user
    message({ what: ProcEventWhat.EXEC, data: [41, 41], dataLength: 20 }), // too short
    message({ what: ProcEventWhat.NONE, ack: 8, data: [0] }),
    message({ what: ProcEventWhat.NONE, ack: 6, data: [22] }),
  );
  const decoded: DecodedMessage[] = [];
  decodeDatagram(bytes, bytes.length, 0n, decoded);
  const view = new DataView(bytes.buffer);
  const reads: {
    exec: [bigint, number, number] | null;
    ack7: number | null;
    ack5: number | null;
  }[] = [];
  const textReads: typeof reads = [];
  for (let offset = 0; offset < bytes.length;) {
    const length = view.getUint32(offset, true);
    for (
      const [readers, into] of [[{ execEventAt, ackErrorAt }, reads], [text, textReads]] as const
    ) {
      const ids = new Int32Array(2);
      const timestampNs = readers.execEventAt(view, offset, length, ids);
      into.push({
        exec: timestampNs === null ? null : [timestampNs, ids[0], ids[1]],
        ack7: readers.ackErrorAt(view, offset, length, 7),
        ack5: readers.ackErrorAt(view, offset, length, 5),
      });
    }
    offset += (length + 3) & ~3;
  }
  assert.deepEqual(textReads, reads, "the worker's text reads as the module does");
  // And both as the full decoder (and the fixtures' fields) say.
  assert.deepEqual(reads.map((r) => r.exec), [
    null,
    [2n ** 40n + 5n, 30, 31],
    [123_456_789n, 30, 30],
    null,
    null,
    null,
    null,
  ]);
  const execs = decoded.flatMap((d) =>
    d.kind === "event" && d.event.type === "exec"
      ? [[d.event.timestampNs, d.event.pid, d.event.tid]]
      : []
  );
  assert.deepEqual(execs, [[2n ** 40n + 5n, 30, 31], [123_456_789n, 30, 30]]);
  const acks = decoded.flatMap((d) => d.kind === "ack" ? [[d.ack, d.error]] : []);
  assert.deepEqual(acks, [[8, 0], [6, 22]]);
  assert.deepEqual(reads.map((r) => [r.ack7, r.ack5]).slice(5), [[0, null], [null, 22]]);
});

Deno.test("capture worker text: a ring it writes decodes as CaptureRing.write's, byte for byte", () => {
  const text = evaluateWorkerText();
  const byWorker = CaptureRing.allocate();
  const byRing = CaptureRing.allocate();
  const ring = new CaptureRing(byRing);
  const encode = (s: string) => new TextEncoder().encode(s);
  const ns = Uint32Array.from([4026531836, 4026531841, 4026531840, 4026531837, 1, 2, 3]);
  const entries: [
    number,
    bigint,
    number,
    string,
    string,
    string,
    bigint,
    string,
    Uint32Array | null,
  ][] = [
    [
      4242,
      99n,
      CaptureStatus.CAPTURED,
      "true",
      "/usr/bin/true",
      "/bin/true\0\0x\0",
      120n,
      "/a.slice",
      ns,
    ],
    [4242, 101n, CaptureStatus.REPLACED, "env", "/usr/bin/env", "env\0", 130n, "/a", ns],
    [9, 103n, CaptureStatus.GONE, "sh", "/bin/sh", "sh\0", 140n, "/b", ns],
    [
      7,
      2n ** 40n + 3n,
      CaptureStatus.CAPTURED,
      "x".repeat(80),
      "/e".repeat(700),
      "a\0".repeat(5000),
      2n ** 41n,
      "/c".repeat(300),
      null,
    ],
    [8, 5n, CaptureStatus.CAPTURED, "é", "", "", 6n, "", null],
  ];
  for (const [pid, ts, status, comm, exe, cmdline, readEnd, cgroup, inodes] of entries) {
    const index = text.writeCapture(
      new Int32Array(byWorker),
      new Uint8Array(byWorker),
      pid,
      ts,
      status,
      encode(comm),
      encode(exe),
      encode(cmdline),
      readEnd,
      encode(cgroup),
      inodes,
    );
    ring.write(pid, ts, comm, exe, encode(cmdline), status, readEnd, cgroup, inodes);
    assert.equal(index, new Int32Array(byRing)[0] - 1);
  }
  assert.deepEqual(new Uint8Array(byWorker), new Uint8Array(byRing));
  const workerRing = new CaptureRing(byWorker);
  for (const [pid, ts] of entries) assert.deepEqual(workerRing.read(pid, ts), ring.read(pid, ts));
  // What those entries decode to, from what was written.
  assert.deepEqual(ring.read(4242, 99n), {
    status: "captured",
    comm: "true",
    exe: "/usr/bin/true",
    cmdline: ["/bin/true", "", "x"],
    readEndNs: 120n,
    cgroup: "/a.slice",
    namespaces: ns,
  });
  assert.deepEqual(ring.read(4242, 101n), { status: "replaced" });
  assert.deepEqual(ring.read(9, 103n), {
    status: "gone",
    comm: "sh",
    cgroup: "/b",
    namespaces: ns,
  });
  const long = ring.read(7, 2n ** 40n + 3n);
  assert.ok(long?.status === "captured");
  assert.equal(long.comm, "x".repeat(64));
  assert.equal(long.exe, "/e".repeat(512));
  assert.equal(long.cmdline.length, 3520, "cut at the slot's room");
  assert.equal(long.cgroup, undefined, "a cgroup path too long for the slot is not kept");
  // Voiding, by the worker's text and by the module, alike.
  text.setCaptureStatus(new Int32Array(byWorker), 0, CaptureStatus.REPLACED);
  setCaptureStatus(new Int32Array(byRing), 0, CaptureStatus.REPLACED);
  assert.deepEqual(new Uint8Array(byWorker), new Uint8Array(byRing));
  assert.deepEqual(workerRing.read(4242, 99n), { status: "replaced" });
});

Deno.test("capture ring: voiding an entry a lap of the ring later leaves the slot's new record alone", () => {
  const buffer = CaptureRing.allocate();
  const ring = new CaptureRing(buffer);
  const ints = new Int32Array(buffer);
  const cmdline = new TextEncoder().encode("/bin/true\0");
  ring.write(1000, 1n, "true", "/usr/bin/true", cmdline, CaptureStatus.CAPTURED, 2n, "", null);
  // The slot of entry 0 is written again by entry RING_LAYOUT.slots.
  for (let i = 1; i <= RING_LAYOUT.slots; i++) {
    ring.write(
      1000 + i,
      BigInt(i) + 1n,
      "true",
      "/usr/bin/true",
      cmdline,
      CaptureStatus.CAPTURED,
      2n,
      "",
      null,
    );
  }
  const lapped = 1000 + RING_LAYOUT.slots;
  const before = ring.read(lapped, BigInt(RING_LAYOUT.slots) + 1n);
  assert.equal(before?.status, "captured");
  setCaptureStatus(ints, 0, CaptureStatus.REPLACED); // entry 0's own voiding, too late
  assert.deepEqual(ring.read(lapped, BigInt(RING_LAYOUT.slots) + 1n), before);
  // Within the lap, voiding still works.
  setCaptureStatus(ints, RING_LAYOUT.slots, CaptureStatus.REPLACED);
  assert.deepEqual(ring.read(lapped, BigInt(RING_LAYOUT.slots) + 1n), { status: "replaced" });
});

kernelTest(
  "capture worker: its capture of a real exec is what the process shows of itself",
  async () => {
    const capture = new ExecCapture(true);
    try {
      await capture.ready;
      assert.ok(capture.running, "the worker listens");
      // Linux >= 6.6 acknowledges the event filter (struct proc_input): the worker's ACK
      // reader (ackErrorAt) found that answer, else it would listen unfiltered.
      const [major, minor] = Deno.osRelease().split(".").map(Number);
      if (major > 6 || (major === 6 && minor >= 6)) assert.ok(capture.kernelFiltered);
      const startNs = monotonicNs();
      const marker = `capture-${crypto.randomUUID()}`;
      // A shell that waits on its stdin (the builtin `read`: no further exec), unique argv.
      const child = new Deno.Command("/bin/sh", { args: ["-c", "read x", marker], stdin: "piped" })
        .spawn();
      let execNs: bigint | undefined;
      await until(
        () => (execNs = capture.newestExecsAfter(startNs).get(child.pid)) !== undefined,
        "the exec",
      );
      const found = capture.lookup(child.pid, execNs!);
      // The process's own record of itself, read while it still lives.
      const cmdline = Deno.readTextFileSync(`/proc/${child.pid}/cmdline`).split("\0").slice(0, -1);
      const comm = Deno.readTextFileSync(`/proc/${child.pid}/comm`).trim();
      const exe = Deno.readLinkSync(`/proc/${child.pid}/exe`);
      await child.stdin.close();
      await child.status;
      assert.deepEqual(cmdline, ["/bin/sh", "-c", "read x", marker]);
      assert.ok(found?.status === "captured", `captured: ${JSON.stringify(found?.status)}`);
      assert.ok(found.readEndNs > execNs! && found.readEndNs < monotonicNs());
      // Decodes as CaptureRing.write's entry of what the process showed.
      const ring = new CaptureRing(CaptureRing.allocate());
      const argv = new TextEncoder().encode(cmdline.map((a) => `${a}\0`).join(""));
      ring.write(child.pid, execNs!, comm, exe, argv, CaptureStatus.CAPTURED, found.readEndNs);
      assert.deepEqual(found, ring.read(child.pid, execNs!));
    } finally {
      capture.close();
    }
  },
);

Deno.test("capture ring: keyed by exec, every image of a pid kept, statuses, wrap-around", () => {
  const ring = new CaptureRing(CaptureRing.allocate());
  const argv = new TextEncoder().encode("/bin/true\0\0x\0");
  ring.write(4242, 99n, "true", "/usr/bin/true", argv, CaptureStatus.CAPTURED, 120n);
  assert.deepEqual(ring.read(4242, 99n), {
    status: "captured",
    comm: "true",
    exe: "/usr/bin/true",
    cmdline: ["/bin/true", "", "x"],
    readEndNs: 120n,
  });
  assert.equal(ring.read(4242, 100n), null, "another exec of that pid");
  // A later exec of the same pid, and one of a pid in the same slot modulo the size:
  // the first entry stays (one entry per exec, not per pid).
  ring.write(4242, 101n, "env", "", new TextEncoder().encode("env\0"), CaptureStatus.REPLACED);
  ring.write(4242 + 512, 102n, "other", "", new TextEncoder().encode("other\0"));
  assert.equal(ring.read(4242, 99n)?.status, "captured");
  assert.deepEqual(ring.read(4242, 101n), { status: "replaced" });
  assert.equal(ring.hasExecBetween(4242, 99n, 101n), true);
  assert.equal(ring.hasExecBetween(4242, 99n, 100n), false);
  assert.equal(ring.hasExecBetween(4242, 101n, 2000n), false);
  ring.write(9, 103n, "sh", "", new Uint8Array(), CaptureStatus.GONE);
  assert.deepEqual(ring.read(9, 103n), { status: "gone", comm: "sh" });
  const big = ring.read(4242 + 512, 102n);
  assert.equal(big?.status === "captured" ? big.exe : "?", null);
  ring.write(7, 2n ** 40n + 3n, "big", "/x", new TextEncoder().encode("big\0"));
  const found = ring.read(7, 2n ** 40n + 3n);
  assert.equal(found?.status === "captured" ? found.comm : "?", "big", "64-bit timestamps");
  // After a full turn of the ring the oldest entries are gone, not misread.
  for (let i = 0; i < 512; i++) ring.write(100 + i, 1000n + BigInt(i), "x", "", new Uint8Array());
  assert.equal(ring.read(4242, 99n), null, "overwritten");
  assert.equal(ring.read(100 + 511, 1511n)?.status, "captured");
});
