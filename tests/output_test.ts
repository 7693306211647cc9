/**
 * The bounded stdout writer (lib/format/output.ts) on a real pipe whose reader
 * stops reading, and on a regular file: a write never blocks, overflow is
 * counted and reported, a reader that left is a BrokenPipeError.
 */

import assert from "node:assert/strict";
import { OutputStream } from "../lib/format/output.ts";
import { neverWaits } from "../ffi/output_fd.ts";

const libc = Deno.dlopen("libc.so.6", {
  pipe: { parameters: ["buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
});
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const FIONREAD = 0x541b;

/** A pipe whose write end is blocking, as stdout is. */
function makePipe(): { read: number; write: number } {
  const fds = new Int32Array(2);
  assert.equal(libc.symbols.pipe(new Uint8Array(fds.buffer)), 0);
  libc.symbols.fcntl(fds[0], F_SETFL, O_NONBLOCK); // only the test's read end
  return { read: fds[0], write: fds[1] };
}

function queuedInPipe(fd: number): number {
  const count = new Int32Array(1);
  libc.symbols.ioctl(fd, BigInt(FIONREAD), new Uint8Array(count.buffer));
  return count[0];
}

function readAll(fd: number): string {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = Number(libc.symbols.read(fd, buffer, BigInt(buffer.length)));
    if (n <= 0) break;
    chunks.push(buffer.slice(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
}

Deno.test("output queue: a full pipe never blocks; overflow is counted and reported when read again", async () => {
  const pipe = makePipe();
  try {
    const losses: number[] = [];
    let stalls = 0;
    const out = new OutputStream(pipe.write, {
      capacity: 1000,
      lossLine: (count) => {
        losses.push(count);
        return `LOST ${count}`;
      },
      onStall: () => stalls++,
    });
    // Fill the pipe (64 KiB) and the queue: every call returns at once.
    const line = "x".repeat(99);
    const started = performance.now();
    let accepted = 0;
    for (let i = 0; i < 1000; i++) {
      if (out.line(`${i} ${line}`)) accepted++;
      out.flush();
    }
    assert.ok(performance.now() - started < 2000, "writes did not wait for the reader");
    // Every slot of the pipe is taken (line-sized writes leave each page a little short).
    assert.ok(queuedInPipe(pipe.read) > 60_000, `the pipe is full: ${queuedInPipe(pipe.read)}`);
    assert.ok(out.queued > 0, "lines wait in the queue");
    assert.ok(out.dropped > 0, "lines beyond the queue were dropped");
    assert.equal(accepted + out.dropped, 1000, "every line written, queued or counted");
    assert.equal(stalls, 1, "one warning per stall");
    assert.deepEqual(losses, [], "reported only once there is room");

    // The reader comes back: once the queue is written, the loss record follows.
    const first = readAll(pipe.read);
    assert.equal(await out.drain(() => false), true);
    assert.ok(out.line("after"));
    assert.equal(await out.drain(() => false), true);
    const rest = readAll(pipe.read);
    const lines = (first + rest).split("\n").filter((text) => text !== "");
    assert.deepEqual(losses, [out.dropped]);
    assert.equal(lines.length, accepted + 2);
    assert.equal(lines.at(-2), `LOST ${out.dropped}`);
    assert.equal(lines.at(-1), "after");
    // The accepted lines arrived whole and in order.
    const numbers = lines.slice(0, -2).map((text) => Number(text.split(" ")[0]));
    assert.deepEqual(numbers, numbers.toSorted((a, b) => a - b));
    assert.equal(numbers[0], 0);

    // A second stall, then the reader catches up while lines keep coming: the
    // queue empties in the background and the next line brings the record.
    const droppedBefore = out.dropped;
    for (let i = 0; i < 1000; i++) out.line(`${i} ${line}`);
    out.flush();
    assert.ok(out.dropped > droppedBefore);
    readAll(pipe.read);
    const deadline = Date.now() + 5000;
    while (out.queued > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(out.queued, 0, "written without a drain() call");
    assert.ok(out.line("again"));
    out.flush();
    const tail = readAll(pipe.read).split("\n").filter((text) => text !== "");
    assert.deepEqual(tail.slice(-2), [`LOST ${out.dropped - droppedBefore}`, "again"]);
  } finally {
    libc.symbols.close(pipe.read);
    libc.symbols.close(pipe.write);
  }
});

Deno.test("output queue: drain gives up when told to, counting what was left", async () => {
  const pipe = makePipe();
  try {
    const out = new OutputStream(pipe.write);
    const line = "y".repeat(1000);
    for (let i = 0; i < 100; i++) out.line(line); // 100 KB: more than the pipe holds
    out.flush();
    // Filled up to the last whole line that fits the 64 KiB pipe.
    assert.equal(queuedInPipe(pipe.read), 64 * 1001);
    let rounds = 0;
    assert.equal(await out.drain(() => ++rounds > 2), false);
    const inPipe = queuedInPipe(pipe.read);
    assert.equal(inPipe % 1001, 0, "what was given up leaves no half line in the pipe");
    assert.equal(out.dropped, 100 - inPipe / 1001);
    assert.equal(out.queued, 0);
  } finally {
    libc.symbols.close(pipe.read);
    libc.symbols.close(pipe.write);
  }
});

Deno.test("output queue: a reader that left makes flush() throw BrokenPipeError", () => {
  const pipe = makePipe();
  libc.symbols.close(pipe.read);
  try {
    const out = new OutputStream(pipe.write);
    out.line("nobody reads this");
    assert.throws(() => out.flush(), { name: "BrokenPipeError" });
    assert.equal(out.broken, true);
  } finally {
    libc.symbols.close(pipe.write);
  }
});

Deno.test("output queue: a regular file takes each batch whole (it never makes a write wait)", async () => {
  const path = await Deno.makeTempFile({ prefix: "procwatch-out-" });
  const O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000;
  const fd = libc.symbols.open(new TextEncoder().encode(`${path}\0`), O_WRONLY_CREAT_TRUNC, 0o600);
  assert.ok(fd >= 0);
  try {
    assert.equal(neverWaits(fd), true);
    const pipe = makePipe();
    assert.equal(neverWaits(pipe.write), false, "a pipe can make a write wait");
    libc.symbols.close(pipe.read);
    libc.symbols.close(pipe.write);
    const out = new OutputStream(fd);
    const expected: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      expected.push(`line ${i} ${"z".repeat(i % 300)}`);
      out.line(expected[i]);
      if (i % 1000 === 999) out.flush();
    }
    assert.equal(await out.drain(() => false), true);
    assert.equal(out.dropped, 0);
    assert.equal(await Deno.readTextFile(path), expected.join("\n") + "\n");
  } finally {
    libc.symbols.close(fd);
    await Deno.remove(path);
  }
});
