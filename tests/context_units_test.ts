/**
 * Pure pieces of context, filters and output: /proc parsing, users, filter
 * validation, the capture ring, human/tree/JSON formats and the -S summary.
 */

import assert from "node:assert/strict";
import type { ExitEvent, ForkEvent, ProcessInfo } from "../lib/events/events.ts";
import { parseProcStat, parseProcStatus } from "../lib/process/proc_stat.ts";
import { NoSuchProcessError, UsageError } from "../ground/errors.ts";
import { CaptureRing, CaptureStatus } from "../lib/process/capture_ring.ts";
import { compileFilters } from "../lib/watch/filters.ts";
import { eventToJson, humanLine, processLabel } from "../lib/format/text.ts";
import { commandLine, parseCmdline, ttyName } from "../lib/process/proc_parse.ts";
import { EventStats } from "../lib/format/stats.ts";
import { TreeFormatter } from "../lib/format/tree.ts";
import { parsePasswd, UserNames } from "../lib/process/users.ts";

const base = { cpu: 1, time: new Date(2024, 0, 1, 12, 0, 0), timestampNs: 5_000_123_000n };
const info = (fields: Partial<ProcessInfo> = {}): ProcessInfo => ({
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
const exit = (status: number, fields: Partial<ExitEvent> = {}): ExitEvent => ({
  ...base,
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
  process: info({ durationNs: 2_500_000n }),
  ...fields,
});

Deno.test("proc_parse: stat with a name holding ') ', cmdline with empty args, tty", () => {
  const stat = parseProcStat("7 (a) b (c)) R 3 7 7 34817 7 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0");
  assert.deepEqual(
    {
      comm: stat?.comm,
      state: stat?.state,
      ppid: stat?.ppid,
      tty: stat?.ttyNr,
      start: stat?.startTicks,
    },
    { comm: "a) b (c)", state: "R", ppid: 3, tty: 34817, start: 4242n },
  );
  assert.equal(parseProcStat("garbage"), null);
  const bytes = new TextEncoder().encode("sh\0-c\0\0x\0");
  assert.deepEqual(parseCmdline(bytes), ["sh", "-c", "", "x"]);
  assert.deepEqual(parseCmdline(new TextEncoder().encode("title rewritten")), ["title rewritten"]);
  assert.deepEqual(parseCmdline(new Uint8Array()), []);
  assert.equal(ttyName(0), null);
  assert.equal(ttyName(34816 + 3), "pts/3");
  assert.equal(ttyName((4 << 8) | 1), "tty1");
  assert.equal(ttyName((4 << 8) | 64), "ttyS0");
  assert.deepEqual(
    parseProcStatus("Tgid:\t9\nUid:\t0\t1000\t1000\t1000\nGid:\t5\t6\t6\t6\n"),
    { tgid: 9, uids: [0, 1000, 1000, 1000], gids: [5, 6, 6, 6] },
  );
  assert.equal(commandLine(["echo", "", "a b", "it's"]), `echo '' 'a b' 'it'\\''s'`);
});

Deno.test("users: names, numeric ids, unknown names are a UsageError", () => {
  const users = new UserNames("root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n#bad\n");
  assert.equal(users.name(1000), "alice");
  assert.equal(users.name(7), null);
  assert.equal(users.resolve("alice"), 1000);
  assert.equal(users.resolve("1234"), 1234);
  assert.equal(users.resolve(0), 0);
  assert.throws(() => users.resolve("mallory"), UsageError);
  assert.equal(parsePasswd("a:x:1:1\na2:x:1:1\n").get(1), "a", "first name of a uid wins");
});

Deno.test("filters: bad input is a one-line UsageError; a missing tree root is NoSuchProcessError", () => {
  const users = new UserNames("root:x:0:0::/:/bin/sh\n");
  assert.throws(() => compileFilters({ match: "(" }, users), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /^invalid regular expression '\(': /);
    assert.ok(!error.message.includes("\n"));
    return true;
  });
  assert.throws(() => compileFilters({ uid: "nobody-here" }, users), /unknown user 'nobody-here'/);
  assert.throws(() => compileFilters({ tree: -1 }, users), UsageError);
  assert.throws(() => compileFilters({ ppid: 1.5 }, users), UsageError);
  assert.throws(() => compileFilters({ comm: [] }, users), UsageError);
  assert.throws(() => compileFilters({ tree: 4194000 }, users), NoSuchProcessError);
  const filters = compileFilters(
    { comm: ["averyveryverylongname"], uid: "root", match: "x", tree: 1 },
    users,
  );
  assert.deepEqual([...filters.comm ?? []], ["averyveryveryl".padEnd(15, "o").slice(0, 15)]);
  assert.deepEqual(filters.uid, new Set([0]));
  assert.equal(filters.tree, 1);
});

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

Deno.test("format: human line columns with decoded exit status and colour only when asked", () => {
  // The offset that puts timestampNs (5.000123 s) at 12:00:00.000123 local time.
  const offset = BigInt(base.time.getTime()) * 1_000_000n - 5_000_000_000n;
  const line = humanLine(exit(3 << 8), { color: false }, offset);
  assert.match(
    line,
    /^12:00:00\.000123 exit +42 alice +pts\/3 +exit 3 +0\.003s +\/bin\/true '' 'a b'$/,
  );
  assert.ok(!line.includes("768"));
  assert.match(humanLine(exit(0x80 | 11)), / exit SIGSEGV\+core /);
  // "(gone)" only where it says something: never on exit lines (README, "Human output").
  assert.ok(!humanLine(exit(0, { process: info({ procGone: true }) })).includes("(gone)"));
  const coloured = humanLine(exit(3 << 8), { color: true });
  assert.ok(coloured.includes("\x1b[31mexit"), "failed exit in red");
  assert.equal(processLabel(info({ cmdline: [], comm: "kworker/0:1" })), "[kworker/0:1]");
  assert.equal(processLabel(info({ cmdline: null, comm: null })), "?");
});

Deno.test("format: JSON keeps field names, process included, nanoseconds as strings", () => {
  const json = JSON.parse(eventToJson(exit(3 << 8), 0n));
  assert.equal(json.timestampNs, "5000123000");
  assert.equal(json.process.durationNs, "2500000");
  assert.equal(json.process.startNs, "1000000000");
  assert.deepEqual(json.process.cmdline, ["/bin/true", "", "a b"]);
  assert.equal(json.process.parentComm, "sh");
  assert.equal(json.process.procGone, false);
});

Deno.test("tree format: children indented under parents, extrace style", () => {
  const parents = new Map([[12, 11], [11, 10]]);
  const tree = new TreeFormatter({ root: 10, parentOf: (pid) => parents.get(pid) });
  const fork: ForkEvent = {
    ...base,
    type: "fork",
    parentPid: 10,
    parentTid: 10,
    childPid: 11,
    childTid: 11,
    thread: false,
    process: info({ pid: 11, comm: "sh" }),
  };
  assert.equal(tree.line(fork), "  11 fork of 10 (sh)");
  assert.equal(
    tree.line({ ...base, type: "exec", pid: 11, tid: 11, process: info({ pid: 11, ppid: 10 }) }),
    "  11+ /bin/true '' 'a b'",
  );
  // A grandchild that existed before: depth found through the table's parents.
  assert.equal(
    tree.line({
      ...exit(0),
      pid: 12,
      tid: 12,
      process: info({ pid: 12, ppid: 11, durationNs: 1_000_000n }),
    }),
    "    12- /bin/true '' 'a b' exited status=0 time=0.001s",
  );
  assert.equal(tree.line({ ...base, type: "exec", pid: 11, tid: 13 }), null, "threads hidden");
});

Deno.test("stats: per type and per process, failures counted, busiest first", () => {
  const stats = new EventStats();
  stats.add(exit(3 << 8));
  stats.add(exit(0));
  stats.add({ ...base, type: "exec", pid: 5, tid: 5, process: info({ comm: "sh" }) });
  stats.add({ ...base, type: "lost", count: 4, reason: "kernel", exact: true });
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
