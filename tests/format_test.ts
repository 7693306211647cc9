/**
 * The formats of lib/format: human and JSON lines (text.ts: columns, exit
 * statuses, escaping of control characters, the `(gone)` rule, counts in
 * words, nanosecond timestamps), the `--format tree` depths (tree.ts) and the
 * `-S` summary (stats.ts). tests/output_test.ts has the writer they go through.
 */

import assert from "node:assert/strict";
import type { ExitEvent, ForkEvent, ProcessInfo, ProcEvent } from "../lib/events/events.ts";
import { decodeDatagram, type DecodedMessage } from "../lib/connector/decode.ts";
import {
  escapeText,
  eventToJson,
  eventToJsonReference,
  formatBytes,
  humanCommandLine,
  humanLine,
  isoTimeNs,
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

// The made-up events of the column, JSON, tree and -S tests: alice's /bin/true
// at 12:00 local time on a tty.
const noon = { cpu: 1, time: new Date(2024, 0, 1, 12, 0, 0), timestampNs: 5_000_123_000n };
const trueInfo = (fields: Partial<ProcessInfo> = {}): ProcessInfo => ({
  pid: 42,
  comm: "true",
  cmdline: ["/bin/true", "", "a b"],
  cmdlineUnknown: null,
  exe: "/usr/bin/true",
  cwd: "/",
  uid: 1000,
  user: "alice",
  ppid: 41,
  parentComm: "sh",
  tty: "pts/3",
  startNs: 1_000_000_000n,
  durationNs: null,
  procGone: false,
  ...fields,
});
const exitOf = (status: number, fields: Partial<ExitEvent> = {}): ExitEvent => ({
  ...noon,
  type: "exit",
  pid: 42,
  tid: 42,
  exitCode: status & 0x7f ? null : status >> 8,
  signal: status & 0x7f ? "SIGSEGV" : null,
  coreDumped: (status & 0x80) !== 0,
  status,
  exitSignal: 17,
  parentPid: 41,
  parentTid: 41,
  process: trueInfo({ durationNs: 2_500_000n }),
  ...fields,
});

// --- human and JSON lines (lib/format/text.ts) ---

Deno.test("JSON lines keep nanoseconds and exact timestamps", () => {
  assert.equal(isoTimeNs(123n, 1_700_000_000_000_000_000n), "2023-11-14T22:13:20.000000123Z");
  const line = eventToJson({
    type: "exit",
    cpu: 0,
    timestampNs: 18_014_398_509_481_985n, // 2^54 + 1: beyond a double's precision
    time: new Date(0),
    pid: 1,
    tid: 1,
    exitCode: 0,
    signal: null,
    coreDumped: false,
    status: 0,
    exitSignal: 17,
    parentPid: 0,
    parentTid: 0,
  }, 0n);
  const parsed = JSON.parse(line);
  assert.equal(parsed.timestampNs, "18014398509481985");
  assert.match(parsed.time, /\.\d{9}Z$/);
  assert.equal(parsed.type, "exit");
});

Deno.test("human lines name the event, pid, details and process", () => {
  const line = humanLine({
    type: "exit",
    cpu: 0,
    timestampNs: 1n,
    time: new Date(),
    pid: 4321,
    tid: 4321,
    exitCode: null,
    signal: "SIGSEGV",
    coreDumped: true,
    status: 0x8b,
    exitSignal: 17,
    parentPid: 1,
    parentTid: 1,
    process: {
      pid: 4321,
      comm: "crashy",
      cmdline: ["./crashy", "--now"],
      cmdlineUnknown: null,
      exe: "/tmp/crashy",
      cwd: "/tmp",
      uid: 0,
      user: "root",
      ppid: 1,
      parentComm: "systemd",
      tty: null,
      startNs: 0n,
      durationNs: 1_500_000n,
      procGone: false,
    },
  });
  assert.match(
    line,
    /^\d\d:\d\d:\d\d\.\d{6} exit +4321 root +exit SIGSEGV\+core +0\.002s +\.\/crashy --now$/,
  );
});

Deno.test("format: human line columns with decoded exit status and colour only when asked", () => {
  // The offset that puts timestampNs (5.000123 s) at 12:00:00.000123 local time.
  const offset = BigInt(noon.time.getTime()) * 1_000_000n - 5_000_000_000n;
  const line = humanLine(exitOf(3 << 8), { color: false }, offset);
  assert.match(
    line,
    /^12:00:00\.000123 exit +42 alice +pts\/3 +exit 3 +0\.003s +\/bin\/true '' 'a b'$/,
  );
  assert.ok(!line.includes("768"));
  assert.match(humanLine(exitOf(0x80 | 11)), / exit SIGSEGV\+core /);
  // "(gone)" only where it says something: never on exit lines (README, "Human output").
  assert.ok(!humanLine(exitOf(0, { process: trueInfo({ procGone: true }) })).includes("(gone)"));
  const coloured = humanLine(exitOf(3 << 8), { color: true });
  assert.ok(coloured.includes("\x1b[31mexit"), "failed exit in red");
  assert.equal(processLabel(trueInfo({ cmdline: [], comm: "kworker/0:1" })), "[kworker/0:1]");
  assert.equal(processLabel(trueInfo({ cmdline: null, comm: null })), "?");
});

Deno.test("format: JSON keeps field names, process included, nanoseconds as strings", () => {
  const json = JSON.parse(eventToJson(exitOf(3 << 8), 0n));
  assert.equal(json.timestampNs, "5000123000");
  assert.equal(json.process.durationNs, "2500000");
  assert.equal(json.process.startNs, "1000000000");
  assert.deepEqual(json.process.cmdline, ["/bin/true", "", "a b"]);
  assert.equal(json.process.parentComm, "sh");
  assert.equal(json.process.procGone, false);
});

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

// --- the tree format (lib/format/tree.ts) ---

Deno.test("tree format: children indented under parents, extrace style", () => {
  const parents = new Map([[12, 11], [11, 10]]);
  const tree = new TreeFormatter({ root: 10, parentOf: (pid) => parents.get(pid) });
  const fork: ForkEvent = {
    ...noon,
    type: "fork",
    parentPid: 10,
    parentTid: 10,
    childPid: 11,
    childTid: 11,
    thread: false,
    process: trueInfo({ pid: 11, comm: "sh" }),
  };
  assert.equal(tree.line(fork), "  11 fork of 10 (sh)");
  assert.equal(
    tree.line({
      ...noon,
      type: "exec",
      pid: 11,
      tid: 11,
      process: trueInfo({ pid: 11, ppid: 10 }),
    }),
    "  11+ /bin/true '' 'a b'",
  );
  // A grandchild that existed before: depth found through the table's parents.
  assert.equal(
    tree.line({
      ...exitOf(0),
      pid: 12,
      tid: 12,
      process: trueInfo({ pid: 12, ppid: 11, durationNs: 1_000_000n }),
    }),
    "    12- /bin/true '' 'a b' exited status=0 time=0.001s",
  );
  assert.equal(tree.line({ ...noon, type: "exec", pid: 11, tid: 13 }), null, "threads hidden");
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

// --- the -S summary (lib/format/stats.ts) ---

Deno.test("stats: per type and per process, failures counted, busiest first", () => {
  const stats = new EventStats();
  stats.add(exitOf(3 << 8));
  stats.add(exitOf(0));
  stats.add({ ...noon, type: "exec", pid: 5, tid: 5, process: trueInfo({ comm: "sh" }) });
  stats.add({ ...noon, type: "lost", count: 4, reason: "kernel", exact: true });
  assert.equal(stats.totals.exit, 2);
  assert.equal(stats.totals.failed, 1);
  assert.equal(stats.totals.total, 3);
  assert.equal(stats.lost, 4);
  const table = stats.table(2);
  assert.equal(table[0], "procwatch: 3 events in 2.0 s, 4 lost (4 by the kernel)");
  assert.match(
    table[1],
    /^ +Fork +Exec +Exit +Fail +Core +Comm +Ptrc +UID +GID +SID +Total {2}Process$/,
  );
  assert.match(table[2], /^ +0 +0 +2 +1 +0( +0){5} +2 {2}true$/);
  assert.match(table[3], / +1 {2}sh$/);
  assert.match(table.at(-1) ?? "", / +3 {2}Total$/);
  const json = stats.toJSON(2) as { type: string; processes: Record<string, { exit: number }> };
  assert.equal(json.type, "summary");
  assert.equal(json.processes.true.exit, 2);
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
