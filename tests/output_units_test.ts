/**
 * Issue 12, items 16, 17, 19 and 20, without the kernel: escaping in human
 * output, the `(gone)` rule, counts in words, tree depths, and the output
 * queue that never blocks (on a real pipe whose reader stops reading).
 */

import assert from "node:assert/strict";
import { OutputStream } from "../lib/format/output.ts";
import { neverWaits } from "../ffi/output_fd.ts";
import type { ProcessInfo, ProcEvent } from "../lib/events/events.ts";
import { decodeDatagram, type DecodedMessage } from "../lib/connector/decode.ts";
import {
  escapeText,
  eventToJson,
  eventToJsonReference,
  formatBytes,
  humanCommandLine,
  humanLine,
  plural,
  processLabel,
} from "../lib/format/text.ts";
import { EventStats } from "../lib/format/stats.ts";
import { TreeFormatter } from "../lib/format/tree.ts";
import { commBytes, message, ProcEventWhat } from "./support/fixtures.ts";

const base = { cpu: 0, time: new Date(2024, 0, 1, 12, 0, 0), timestampNs: 5_000_000_000n };

function info(fields: Partial<ProcessInfo> = {}): ProcessInfo {
  return {
    pid: 42,
    comm: "sleep",
    cmdline: ["sleep", "1"],
    cmdlineUnknown: null,
    exe: "/usr/bin/sleep",
    cwd: "/",
    uid: 0,
    user: "root",
    ppid: 1,
    parentComm: "init",
    tty: null,
    startNs: null,
    durationNs: null,
    procGone: false,
    ...fields,
  };
}

Deno.test("escapeText: control characters, DEL, C1 and backslash become escapes", () => {
  assert.equal(escapeText("plain text/é"), "plain text/é");
  assert.equal(escapeText("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  assert.equal(escapeText("\x1b[31mred"), "\\x1b[31mred");
  assert.equal(escapeText("\x00\x07\x7f"), "\\x00\\x07\\x7f");
  assert.equal(escapeText("\u009b"), "\\u009b", "C1 CSI");
  assert.equal(escapeText("back\\slash"), "back\\\\slash", "so that \\n stays unambiguous");
});

Deno.test("humanCommandLine: one line, bash $'...' for arguments with control characters", () => {
  assert.equal(humanCommandLine(["echo", "a b", ""]), "echo 'a b' ''", "unchanged without them");
  assert.equal(humanCommandLine(["printf", "a\nb"]), "printf $'a\\nb'");
  assert.equal(humanCommandLine(["x", "it's\n"]), "x $'it\\'s\\n'");
  assert.equal(humanCommandLine(["\x1b]0;title\x07"]), "$'\\x1b]0;title\\x07'");
  // What bash makes of it is the argument itself (the notation is pasteable).
  const argv = ["printf", "%s", "one\ntwo\t\x1b[1m'q'\\"];
  const echoed = new Deno.Command("bash", {
    args: ["-c", `for a in ${humanCommandLine(argv)}; do printf '%s\\0' "$a"; done`],
  }).outputSync();
  assert.deepEqual(new TextDecoder().decode(echoed.stdout).split("\0").slice(0, -1), argv);
});

Deno.test("processLabel and humanLine: a command line with a newline stays on one line", () => {
  assert.equal(processLabel(info({ cmdline: [], comm: "a\nb" })), "[a\\nb]");
  const exec: ProcEvent = {
    ...base,
    type: "exec",
    pid: 42,
    tid: 42,
    process: info({ cmdline: ["evil\nFAKE 12:00:00 exec", "\x1b[2J"] }),
  };
  const line = humanLine(exec);
  assert.equal(line.split("\n").length, 1);
  assert.ok(!line.includes("\x1b"), "no escape sequence reaches the terminal");
  assert.ok(line.endsWith("$'evil\\nFAKE 12:00:00 exec' $'\\x1b[2J'"), line);
});

Deno.test("(gone): on non-exit lines whose /proc entry was gone, never on exit lines", () => {
  const gone = info({ procGone: true });
  const exec: ProcEvent = { ...base, type: "exec", pid: 42, tid: 42, process: gone };
  assert.ok(humanLine(exec).endsWith(" (gone)"));
  const fork: ProcEvent = {
    ...base,
    type: "fork",
    parentPid: 1,
    parentTid: 1,
    childPid: 42,
    childTid: 42,
    thread: false,
    process: gone,
  };
  assert.ok(humanLine(fork).endsWith(" (gone)"));
  for (const procGone of [true, false]) {
    const exit: ProcEvent = {
      ...base,
      type: "exit",
      pid: 42,
      tid: 42,
      status: 0,
      exitCode: 0,
      signal: null,
      coreDumped: false,
      exitSignal: 17,
      parentPid: 1,
      parentTid: 1,
      process: info({ procGone }),
    };
    assert.ok(!humanLine(exit).includes("(gone)"), `exit with procGone=${procGone}`);
  }
  const alive: ProcEvent = { ...base, type: "exec", pid: 42, tid: 42, process: info() };
  assert.ok(!humanLine(alive).includes("(gone)"));
});

Deno.test("counts in words: 1 event, 2 events; sizes in binary units", () => {
  assert.equal(plural(1, "event"), "1 event");
  assert.equal(plural(0, "event"), "0 events");
  assert.equal(plural(2, "event"), "2 events");
  assert.equal(formatBytes(33554432), "32 MiB");
  assert.equal(formatBytes(16 << 20), "16 MiB");
  assert.equal(formatBytes(425984), "416 KiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(1), "1 byte");
  const one: ProcEvent = {
    ...base,
    cpu: null,
    type: "lost",
    count: 1,
    reason: "kernel",
    exact: true,
  };
  assert.match(humanLine(one), / 1 event lost \(kernel\)$/);
  const stats = new EventStats();
  stats.add({ ...base, type: "exec", pid: 1, tid: 1 });
  stats.add({ ...base, type: "lost", count: 3, reason: "output", exact: true });
  stats.add({ ...base, type: "lost", count: 2, reason: "kernel", exact: true });
  assert.equal(
    stats.table(1)[0],
    "procwatch: 1 event in 1.0 s, 5 lost (2 by the kernel, 3 in output)",
  );
  assert.deepEqual(stats.toJSON(1).lostBy, { kernel: 2, queue: 0, output: 3, export: 0 });
});

function forkOf(parentPid: number, childPid: number): ProcEvent {
  return {
    ...base,
    type: "fork",
    parentPid,
    parentTid: parentPid,
    childPid,
    childTid: childPid,
    thread: false,
  };
}

function execOf(pid: number, ppid: number): ProcEvent {
  return { ...base, type: "exec", pid, tid: pid, process: info({ pid, ppid }) };
}

function indentOf(line: string | null): number {
  assert.ok(line !== null);
  return /^ */.exec(line)![0].length;
}

Deno.test("tree: siblings share one depth, whoever shows up first (--ppid)", () => {
  // 1 → 50 → 60 (the --ppid process) → 70 (running before the watch) and 71 (forked during it).
  const parents = new Map([[50, 1], [60, 50], [70, 60], [71, 60]]);
  const parentOf = (pid: number) => parents.get(pid);
  for (const root of [undefined, 60]) {
    const tree = new TreeFormatter({ root, parentOf });
    const early = indentOf(tree.line(execOf(70, 60))); // first seen at its exec
    const fork = indentOf(tree.line(forkOf(60, 71)));
    const later = indentOf(tree.line(execOf(71, 60)));
    assert.equal(fork, early, `root ${root}: siblings at one depth`);
    assert.equal(later, early);
    if (root === 60) {
      assert.equal(early, 2, "the --ppid process is the root: children one level in");
    } else assert.equal(early, 6, "without a root, the depth below pid 1 (extrace)");
    // A grandchild is one level deeper, an unrelated process keeps its own depth.
    parents.set(80, 71);
    assert.equal(indentOf(tree.line(forkOf(71, 80))), early + 2);
  }
});

Deno.test("tree: the exit of a parent does not shift its later-seen children", () => {
  const parents = new Map([[60, 1], [70, 60], [71, 60]]);
  const tree = new TreeFormatter({ root: 60, parentOf: (pid) => parents.get(pid) });
  const first = indentOf(tree.line(forkOf(60, 70)));
  tree.line({
    ...base,
    type: "exit",
    pid: 60,
    tid: 60,
    status: 0,
    exitCode: 0,
    signal: null,
    coreDumped: false,
    exitSignal: 17,
    parentPid: 1,
    parentTid: 1,
  });
  assert.equal(indentOf(tree.line(execOf(71, 60))), first);
});

// --- the output queue, on a real pipe ---

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

Deno.test("eventToJson: byte-identical to JSON.stringify of the object form, over every event type", () => {
  // Events as the decoder makes them (fixture datagrams, kernel layout), with
  // and without context, against the old object-then-stringify writer.
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const words = () =>
    [0, 1, 2, 3, 4, 5].map(() => rand(4) === 0 ? 0xffffffff - rand(5) : rand(4_000_000));
  const texts = [
    "sleep",
    "a\nb",
    'q"uo\\te',
    "\x1b[31mred",
    "日本語",
    "\u2028x\u0000",
    "",
    "\ud800",
  ];
  const kinds = Object.values(ProcEventWhat).filter((what) => what !== 0 && what !== 0x20000000);
  const events: ProcEvent[] = [];
  for (let i = 0; i < 4000; i++) {
    const what = kinds[rand(kinds.length)];
    const data = words();
    if (what === ProcEventWhat.EXIT) data[2] = [0, 3 << 8, 9, 0x8b, 0x7f][rand(5)];
    const bytes = message({
      what,
      cpu: rand(3) === 0 ? 0xffffffff : rand(64),
      timestampNs: BigInt(rand(2_000_000_000)) * 1_000_003n + BigInt(rand(1000)),
      data,
      tail: what === ProcEventWhat.COMM ? commBytes(texts[rand(texts.length)]) : undefined,
      dataLength: rand(4) === 0 ? undefined : 40,
    });
    const out: DecodedMessage[] = [];
    decodeDatagram(bytes, bytes.length, BigInt(rand(1000)) * 1_000_000_000_000_000n, out);
    const decoded = out[0];
    if (decoded.kind !== "event") continue;
    const event: ProcEvent = decoded.event;
    if (rand(2) === 0) {
      const text = () => rand(4) === 0 ? null : texts[rand(texts.length)];
      event.process = info({
        comm: text(),
        cmdline: rand(4) === 0 ? null : [0, 1, 2].slice(0, rand(4)).map(() => texts[rand(8)]),
        cwd: text(),
        user: text(),
        tty: text(),
        ppid: rand(3) === 0 ? null : rand(100000),
        startNs: rand(3) === 0 ? null : BigInt(rand(1 << 30)) ** 2n,
        durationNs: rand(3) === 0 ? null : BigInt(rand(1 << 30)),
        procGone: rand(2) === 0,
      });
    }
    events.push(event);
  }
  events.push({ type: "lost", ...base, count: 7, reason: "kernel", exact: false });
  events.push({ type: "lost", ...base, cpu: null, count: 1, reason: "output", exact: true });
  const offsets = [0n, 1_700_000_000_123_456_789n, -5n, 999_999_999n];
  let compared = 0;
  for (const event of events) {
    for (const offset of offsets) {
      assert.equal(eventToJson(event, offset), eventToJsonReference(event, offset));
      compared++;
    }
  }
  assert.ok(compared > 10_000, `${compared} compared`);
  const types = new Set(events.map((event) => event.type));
  assert.equal(types.size, 10, [...types].join(","));
});

Deno.test("eventToJson: events its per-type templates do not fit are written as JSON.stringify would", () => {
  // The templates fit the decoder's key order; anything else (a script's own
  // event object) takes the generic writer, still byte-identical.
  const head = { cpu: 3, timestampNs: 1_234_567_891n, time: new Date(0) };
  const exec = { type: "exec" as const, ...head, pid: 42, tid: 43 };
  const odd: unknown[] = [
    exec,
    { ...exec, process: undefined }, // what `watch --json` without -x hands over
    { ...exec, process: info() },
    { ...exec, process: null },
    { ...exec, extra: 1 },
    { type: "exec", pid: 42, tid: 43, ...head }, // keys in another order
    { type: "exec", ...head, pid: 42 }, // a key missing
    { ...exec, pid: Number.NaN, tid: Infinity },
    { ...exec, pid: "42" },
    { ...exec, cpu: null },
    { type: "constructor", ...head, pid: 1, tid: 1 },
    { type: "comm", ...head, pid: 1, tid: 1, comm: null },
    { type: "comm", ...head, pid: 1, tid: 1, comm: 'a"\n\u2028' },
    { type: "exit", ...head, pid: 1, tid: 1, exitCode: null, signal: "SIGKILL", coreDumped: "no" },
    {
      type: "exit",
      ...head,
      pid: 1,
      tid: 1,
      exitCode: null,
      signal: 9,
      coreDumped: true,
      status: 9,
      exitSignal: 17,
      parentPid: null,
      parentTid: null,
    },
    { type: "fork", ...head, parentPid: 1, parentTid: 1, childPid: 2, childTid: 2, thread: 0 },
    { type: "lost", ...head, count: 2, reason: "queue", exact: false },
  ];
  for (const event of odd) {
    for (const offset of [0n, 1_700_000_000_123_456_789n, -2_000_000_000n]) {
      assert.equal(
        eventToJson(event as ProcEvent, offset),
        eventToJsonReference(event as ProcEvent, offset),
        JSON.stringify(event, (_key, value) => typeof value === "bigint" ? `${value}n` : value),
      );
    }
  }
});
