import assert from "node:assert/strict";
import { decodeDatagram, type DecodedMessage } from "../lib/connector/decode.ts";
import type { KernelEvent } from "../lib/events/events.ts";
import { commBytes, datagram, message, ProcEventWhat } from "./support/fixtures.ts";

const WALL_OFFSET = 1_700_000_000_000_000_000n;

function decode(bytes: Uint8Array): DecodedMessage[] {
  const out: DecodedMessage[] = [];
  decodeDatagram(bytes, bytes.length, WALL_OFFSET, out);
  return out;
}

function single(bytes: Uint8Array): KernelEvent {
  const out = decode(bytes);
  assert.equal(out.length, 1);
  const first = out[0];
  assert.equal(first.kind, "event", first.kind === "malformed" ? first.reason : first.kind);
  return (first as { event: KernelEvent }).event;
}

const head = { cpu: 1, timestampNs: 5_000_000_123n };
const time = new Date(Number((5_000_000_123n + WALL_OFFSET) / 1_000_000n));

Deno.test("fork of a process: tgid is pid, kernel pid is tid", () => {
  const event = single(message({ what: ProcEventWhat.FORK, ...head, data: [100, 100, 200, 200] }));
  assert.deepEqual(event, {
    type: "fork",
    cpu: 1,
    timestampNs: 5_000_000_123n,
    time,
    parentPid: 100,
    parentTid: 100,
    childPid: 200,
    childTid: 200,
    thread: false,
  });
});

Deno.test("fork of a thread is marked as one", () => {
  // parent thread 101 of process 100 creates thread 205 in process 100
  const event = single(message({ what: ProcEventWhat.FORK, ...head, data: [101, 100, 205, 100] }));
  assert.equal(event.type, "fork");
  if (event.type !== "fork") return;
  assert.equal(event.parentPid, 100);
  assert.equal(event.parentTid, 101);
  assert.equal(event.childPid, 100);
  assert.equal(event.childTid, 205);
  assert.equal(event.thread, true);
});

Deno.test("exec, sid", () => {
  assert.deepEqual(single(message({ what: ProcEventWhat.EXEC, ...head, data: [42, 42] })), {
    type: "exec",
    ...head,
    time,
    pid: 42,
    tid: 42,
  });
  assert.deepEqual(single(message({ what: ProcEventWhat.SID, ...head, data: [43, 42] })), {
    type: "sid",
    ...head,
    time,
    pid: 42,
    tid: 43,
  });
});

Deno.test("uid and gid changes", () => {
  assert.deepEqual(
    single(message({ what: ProcEventWhat.UID, ...head, data: [7, 7, 1000, 0] })),
    { type: "uid", ...head, time, pid: 7, tid: 7, ruid: 1000, euid: 0 },
  );
  assert.deepEqual(
    single(message({ what: ProcEventWhat.GID, ...head, data: [7, 7, 65534, 65534] })),
    { type: "gid", ...head, time, pid: 7, tid: 7, rgid: 65534, egid: 65534 },
  );
});

Deno.test("ptrace attach and detach", () => {
  assert.deepEqual(
    single(message({ what: ProcEventWhat.PTRACE, ...head, data: [9, 9, 31, 30] })),
    { type: "ptrace", ...head, time, pid: 9, tid: 9, tracerPid: 30, tracerTid: 31 },
  );
  const detach = single(message({ what: ProcEventWhat.PTRACE, ...head, data: [9, 9, 0, 0] }));
  assert.equal(detach.type === "ptrace" && detach.tracerPid, 0);
});

Deno.test("comm: NUL-terminated, 15 bytes at most, UTF-8", () => {
  assert.deepEqual(
    single(message({ what: ProcEventWhat.COMM, ...head, data: [5, 5], tail: commBytes("worker") })),
    { type: "comm", ...head, time, pid: 5, tid: 5, comm: "worker" },
  );
  const full = single(
    message({ what: ProcEventWhat.COMM, data: [5, 5], tail: commBytes("abcdefghijklmnopq") }),
  );
  assert.equal(full.type === "comm" && full.comm, "abcdefghijklmno");
  const unicode = single(
    message({ what: ProcEventWhat.COMM, data: [5, 5], tail: commBytes("ünï") }),
  );
  assert.equal(unicode.type === "comm" && unicode.comm, "ünï");
});

Deno.test("coredump with parent (4.18+) and without (older layout)", () => {
  assert.deepEqual(
    single(message({ what: ProcEventWhat.COREDUMP, ...head, data: [8, 8, 3, 3] })),
    { type: "coredump", ...head, time, pid: 8, tid: 8, parentPid: 3, parentTid: 3 },
  );
  const old = single(
    message({ what: ProcEventWhat.COREDUMP, ...head, data: [8, 8], dataLength: 24 }),
  );
  assert.equal(old.type === "coredump" && old.parentPid, null);
});

Deno.test("exit: code, signal, core dump, raw status, parent", () => {
  assert.deepEqual(
    single(message({ what: ProcEventWhat.EXIT, ...head, data: [9, 9, 3 << 8, 17, 4, 4] })),
    {
      type: "exit",
      ...head,
      time,
      pid: 9,
      tid: 9,
      exitCode: 3,
      signal: null,
      coreDumped: false,
      status: 768,
      exitSignal: 17,
      parentPid: 4,
      parentTid: 4,
    },
  );
  const killed = single(message({ what: ProcEventWhat.EXIT, data: [9, 9, 9, 17, 4, 4] }));
  assert.ok(killed.type === "exit");
  if (killed.type !== "exit") return;
  assert.equal(killed.exitCode, null);
  assert.equal(killed.signal, "SIGKILL");
  assert.equal(killed.coreDumped, false);
  const dumped = single(message({ what: ProcEventWhat.EXIT, data: [9, 9, 0x80 | 11, 17, 4, 4] }));
  assert.ok(dumped.type === "exit" && dumped.signal === "SIGSEGV" && dumped.coreDumped);
  // A thread's exit: exit_signal is -1.
  const thread = single(message({ what: ProcEventWhat.EXIT, data: [10, 9, 0, -1, 4, 4] }));
  assert.ok(thread.type === "exit" && thread.exitSignal === -1 && thread.tid === 10);
});

Deno.test("exit before 4.18 (no parent fields, 32-byte proc_event before comm existed)", () => {
  const old = single(message({ what: ProcEventWhat.EXIT, data: [9, 9, 256, 17], dataLength: 32 }));
  assert.ok(old.type === "exit");
  if (old.type !== "exit") return;
  assert.equal(old.exitCode, 1);
  assert.equal(old.parentPid, null);
  assert.equal(old.parentTid, null);
});

Deno.test("ACK: cpu, seq, ack and error", () => {
  assert.deepEqual(decode(message({ what: 0, cpu: 1, seq: 12, ack: 8, data: [0] })), [
    { kind: "ack", cpu: 1, seq: 12, ack: 8, error: 0 },
  ]);
  // Older kernels send cpu -1: the ACK took no number.
  assert.deepEqual(decode(message({ what: 0, cpu: 0xffffffff, seq: 1, ack: 2, data: [1] }))[0], {
    kind: "ack",
    cpu: null,
    seq: 1,
    ack: 2,
    error: 1,
  });
});

Deno.test("unknown what values are reported, not thrown", () => {
  assert.deepEqual(decode(message({ what: 0x400, cpu: 1, seq: 77 })), [
    { kind: "unknown", what: 0x400, cpu: 1, seq: 77 },
  ]);
});

Deno.test("truncated messages are malformed; earlier messages still decode", () => {
  const good = message({ what: ProcEventWhat.EXEC, data: [1, 1] });
  const short = message({ what: ProcEventWhat.FORK, data: [1, 1], dataLength: 20 });
  const out = decode(datagram(good, short));
  assert.equal(out.length, 2);
  assert.equal(out[0].kind, "event");
  assert.equal(out[1].kind, "malformed");
});

Deno.test("lying lengths are malformed, never thrown", () => {
  const good = message({ what: ProcEventWhat.EXEC, data: [1, 1] });
  const tooLong = message({ what: ProcEventWhat.EXEC, data: [1, 1], nlmsgLength: 4000 });
  const tooShort = message({ what: ProcEventWhat.EXEC, data: [1, 1], nlmsgLength: 8 });
  const cnLies = message({ what: ProcEventWhat.EXEC, data: [1, 1] });
  new DataView(cnLies.buffer).setUint16(32, 60000, true);
  for (const bad of [tooLong, tooShort, cnLies]) {
    const out = decode(datagram(good, bad));
    assert.deepEqual(out.map((m) => m.kind), ["event", "malformed"]);
  }
  assert.deepEqual(decode(new Uint8Array(10)).map((m) => m.kind), ["malformed"]);
});

Deno.test("several messages in one datagram, other connector users set apart", () => {
  const out = decode(datagram(
    message({ what: ProcEventWhat.EXEC, data: [1, 1] }),
    message({ what: ProcEventWhat.EXEC, data: [2, 2], idx: 4, val: 1 }),
    message({ what: ProcEventWhat.EXIT, data: [1, 1, 0, 17, 0, 0] }),
  ));
  assert.deepEqual(out.map((m) => m.kind), ["event", "other", "event"]);
});
