/**
 * The /proc readers of lib/process: `/proc/PID/stat` (a comm holding ") "),
 * `/proc/PID/status`, `/proc/PID/cmdline` and tty numbers (proc_stat.ts,
 * proc_parse.ts).
 */

import assert from "node:assert/strict";
import { parseProcStat, parseProcStatus } from "../lib/process/proc_stat.ts";
import { commandLine, parseCmdline, ttyName } from "../lib/process/proc_parse.ts";

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

Deno.test("proc_parse: stat fields of every process here equal a whole split of the line", async () => {
  // The reference: proc_pid_stat(5)'s numbering over a split of everything after the last ')'.
  let compared = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let text: string;
    try {
      text = await Deno.readTextFile(`/proc/${entry.name}/stat`);
    } catch {
      continue; // Ended meanwhile.
    }
    const close = text.lastIndexOf(")");
    const fields = ["", "", "", ...text.slice(close + 2).trim().split(" ")];
    const stat = parseProcStat(text);
    assert.deepEqual(stat, {
      pid: Number(entry.name),
      comm: text.slice(text.indexOf("(") + 1, close),
      state: fields[3],
      ppid: Number(fields[4]),
      ttyNr: Number(fields[7]),
      numThreads: Number(fields[20]),
      startTicks: BigInt(fields[22]),
      exitSignal: Number(fields[38]),
      exitStatus: Number(fields[52]),
    }, text);
    compared++;
  }
  assert.ok(compared > 10, `only ${compared} processes compared`);
  // Lines of older kernels end sooner: fields after the last one present are null.
  const short = parseProcStat("5 (x) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99");
  assert.equal(short?.startTicks, 99n);
  assert.equal(short?.exitStatus, null);
  assert.equal(short?.exitSignal, null);
  assert.equal(parseProcStat("5 (x) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0"), null);
});
