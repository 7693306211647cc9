/**
 * The classic BPF socket filter: unit tests run each program in a small cBPF
 * interpreter (the kernel's semantics: big-endian word loads, out-of-bounds
 * loads drop the packet, forward jumps only) over proc connector messages laid
 * out as the kernel sends them (tests/support/fixtures.ts); real-kernel tests
 * prove that a `wait` or a pid-filtered watcher receives only its pids'
 * messages during a storm, that the forced type filter keeps only the wanted
 * types, and that a pid list past the instruction limit falls back to procwatch.
 */

import assert from "node:assert/strict";
import {
  BPF,
  BPF_MAXINSNS,
  buildSocketFilter,
  encodeProgram,
  planSocketFilter,
  type SockFilter,
} from "../lib/connector/bpf.ts";
import { message, ProcEventWhat } from "./support/fixtures.ts";
import { collectUntil, kernelTest, watchAll } from "./support/kernel.ts";
import { killQuietly, startWait, until } from "./support/processes.ts";
import { spawnDeno } from "./support/subprocess.ts";
import { readFileText } from "../ffi/proc_fs.ts";
import { SleepingProcesses, spawnExiting, spawnExitingMany } from "./support/ffi/clone.ts";
import type { ProcEvent } from "../lib/events/events.ts";
import { PROC_EVENT_ALL } from "../ground/cn_proc.ts";

/** Runs `program` over `packet` as sk_run_filter() would; returns the bytes kept (0: dropped). */
function run(program: readonly SockFilter[], packet: Uint8Array): number {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const memory = new Uint32Array(16);
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc];
    const cls = code & 0x07;
    switch (cls) {
      case BPF.LD: {
        const mode = code & 0xe0;
        const size = code & 0x18;
        if (mode === BPF.ABS && size === BPF.W) {
          if (k + 4 > packet.length) return 0; // out of bounds: the kernel drops
          a = view.getUint32(k, false); // big-endian, like the kernel
        } else if (mode === BPF.ABS && size === BPF.B) {
          if (k + 1 > packet.length) return 0;
          a = packet[k];
        } else if (mode === BPF.MEM) a = memory[k];
        else if (mode === BPF.IMM) a = k;
        else throw new Error(`unsupported load 0x${code.toString(16)}`);
        break;
      }
      case BPF.ALU: {
        const operand = (code & 0x08) === BPF.X ? x : k;
        const op = code & 0xf0;
        if (op === BPF.LSH) a = (a << operand) >>> 0;
        else if (op === BPF.OR) a = (a | operand) >>> 0;
        else throw new Error(`unsupported alu 0x${code.toString(16)}`);
        break;
      }
      case BPF.MISC:
        if ((code & 0xf8) !== BPF.TAX) throw new Error(`unsupported misc 0x${code.toString(16)}`);
        x = a;
        break;
      case BPF.LDX:
        if ((code & 0xe0) !== BPF.MEM) throw new Error(`unsupported ldx 0x${code.toString(16)}`);
        x = memory[k];
        break;
      case BPF.ST:
        memory[k] = a;
        break;
      case BPF.JMP: {
        const op = code & 0xf0;
        const operand = (code & 0x08) === BPF.X ? x : k;
        if (op === BPF.JA) {
          pc += k;
          break;
        }
        let taken: boolean;
        if (op === BPF.JEQ) taken = a === operand;
        else if (op === BPF.JSET) taken = ((a & operand) >>> 0) !== 0;
        else if (op === BPF.JGT) taken = a > operand;
        else if (op === BPF.JGE) taken = a >= operand;
        else throw new Error(`unsupported jump 0x${code.toString(16)}`);
        pc += taken ? jt : jf;
        break;
      }
      case BPF.RET:
        return k;
      default:
        throw new Error(`unsupported class ${cls}`);
    }
    if (pc + 1 > program.length) throw new Error("jump past the end");
  }
  throw new Error("fell off the end of the program");
}

/** The kernel's verifier rules that matter here (sk_chk_filter()): length, jump range, a final RET. */
function assertValid(program: readonly SockFilter[]): void {
  assert.ok(program.length > 0 && program.length <= BPF_MAXINSNS);
  program.forEach(({ code, jt, jf, k }, pc) => {
    assert.ok(jt <= 255 && jf <= 255, `8-bit jump offsets at ${pc}`);
    if ((code & 0x07) === BPF.JMP) {
      const far = (code & 0xf0) === BPF.JA ? k : Math.max(jt, jf);
      assert.ok(pc + 1 + far < program.length, `jump at ${pc} stays inside`);
    }
  });
  assert.equal(program.at(-1)!.code & 0x07, BPF.RET);
}

const fork = (parentTid: number, parentPid: number, childTid: number, childPid: number) =>
  message({ what: ProcEventWhat.FORK, data: [parentTid, parentPid, childTid, childPid] });
const exec = (tid: number, pid: number) => message({ what: ProcEventWhat.EXEC, data: [tid, pid] });
const exit = (tid: number, pid: number, status = 0) =>
  message({ what: ProcEventWhat.EXIT, data: [tid, pid, status, 17, 1, 1] });
const comm = (tid: number, pid: number) =>
  message({ what: ProcEventWhat.COMM, data: [tid, pid, 0x61626364, 0, 0, 0] });
const ack = message({ what: ProcEventWhat.NONE, ack: 5, data: [0] });

Deno.test("bpf: the pid program keeps ACKs and the watcher's pid rule, drops the rest", () => {
  const program = buildSocketFilter({ eventMask: null, pids: [4242, 77], acks: true })!;
  assertValid(program);
  const kept = (packet: Uint8Array) => run(program, packet) > 0;
  assert.ok(kept(ack), "an ACK always passes");
  assert.ok(kept(exit(4242, 4242)), "exit of a watched process");
  assert.ok(kept(exit(4250, 4242)), "exit of a thread of a watched process");
  assert.ok(!kept(exit(999, 999)), "exit of another process");
  assert.ok(kept(exec(77, 77)) && !kept(exec(78, 78)));
  assert.ok(kept(comm(77, 77)) && !kept(comm(76, 76)));
  assert.ok(kept(fork(4242, 4242, 5000, 5000)), "a watched process's child");
  assert.ok(kept(fork(1, 1, 4243, 4242)), "a new thread of a watched process");
  assert.ok(kept(fork(1, 1, 77, 77)), "a new process with a watched pid (reused)");
  assert.ok(
    !kept(fork(4242, 4242, 6001, 6000)),
    "a thread of a watched process's child: its parent_tgid is the grandparent",
  );
  assert.ok(!kept(fork(1, 1, 6000, 6000)), "another process's child");
  // Pids whose bytes are the swap of each other must not be confused.
  const swapped = buildSocketFilter({ eventMask: null, pids: [0x0100], acks: true })!;
  assert.equal(run(swapped, exit(0x0001, 0x0001)), 0);
  assert.ok(run(swapped, exit(0x0100, 0x0100)) > 0);
  // A message too short for the fields the program reads is dropped, never misread.
  assert.equal(run(program, exit(4242, 4242).subarray(0, 50)), 0);
});

Deno.test("bpf: the type program keeps the asked types, and ACKs while subscribing", () => {
  const program = buildSocketFilter({
    eventMask: ProcEventWhat.EXIT | ProcEventWhat.EXEC,
    pids: null,
    acks: true,
  })!;
  assertValid(program);
  assert.ok(run(program, ack) > 0);
  assert.ok(run(program, exit(5, 5)) > 0);
  assert.ok(run(program, exec(5, 5)) > 0);
  assert.equal(run(program, fork(1, 1, 5, 5)), 0);
  assert.equal(run(program, comm(5, 5)), 0);
  // NONZERO_EXIT has no `what` of its own: failed exits arrive as EXIT, with exit_code ≠ 0.
  const failed = buildSocketFilter({
    eventMask: ProcEventWhat.NONZERO_EXIT,
    pids: null,
    acks: true,
  })!;
  assertValid(failed);
  assert.ok(run(failed, exit(5, 5, 256)) > 0, "exit code 1");
  assert.ok(run(failed, exit(5, 5, 9)) > 0, "killed by SIGKILL");
  assert.equal(run(failed, exit(5, 5, 0)), 0, "a successful exit is not a failure");
  assert.equal(run(failed, fork(1, 1, 5, 5)), 0);
  const failedOrFork = buildSocketFilter({
    eventMask: ProcEventWhat.NONZERO_EXIT | ProcEventWhat.FORK,
    pids: [5],
    acks: true,
  })!;
  assertValid(failedOrFork);
  assert.ok(run(failedOrFork, fork(5, 5, 6, 6)) > 0, "what is reloaded for the pid part");
  assert.ok(run(failedOrFork, exit(5, 5, 256)) > 0);
  assert.equal(run(failedOrFork, exit(5, 5, 0)), 0);
  assert.equal(run(failedOrFork, exit(6, 6, 256)), 0);
  assert.ok(run(failedOrFork, ack) > 0);
  // Types and pids together: both must hold.
  const both = buildSocketFilter({ eventMask: ProcEventWhat.EXIT, pids: [5], acks: true })!;
  assert.ok(run(both, exit(5, 5)) > 0);
  assert.equal(run(both, exit(6, 6)), 0);
  assert.equal(run(both, exec(5, 5)), 0);
  assert.ok(run(both, ack) > 0);
  // Once subscribed, ACKs (any listener's LISTEN or IGNORE) are dropped too.
  const subscribed = buildSocketFilter({ eventMask: ProcEventWhat.EXIT, pids: [5], acks: false })!;
  assertValid(subscribed);
  assert.equal(run(subscribed, ack), 0);
  assert.ok(run(subscribed, exit(5, 5)) > 0);
  const pidsOnly = buildSocketFilter({ eventMask: null, pids: [5], acks: false })!;
  assert.equal(run(pidsOnly, ack), 0);
  assert.ok(run(pidsOnly, exec(5, 5)) > 0);
});

Deno.test("bpf: long pid lists: a binary search within jump range, runs as ranges", () => {
  // Scattered pids, every one its own range: each and nothing between is kept.
  const pids = Array.from({ length: 1700 }, (_, i) => 300 + i * 7);
  const program = buildSocketFilter({
    eventMask: ProcEventWhat.EXIT | ProcEventWhat.FORK,
    pids,
    acks: true,
  })!;
  assert.ok(program !== null, "1,700 scattered pids fit");
  assertValid(program);
  // `wait` reads each event unbatched up to 1,024 pids (lib/wait/wait.ts): with its types they always fit.
  const waitPids = Array.from({ length: 1024 }, (_, i) => 2 + i * 2);
  const waitMask = ProcEventWhat.FORK | ProcEventWhat.EXEC | ProcEventWhat.EXIT;
  assert.ok(buildSocketFilter({ eventMask: waitMask, pids: waitPids, acks: true }) !== null);
  for (const pid of pids) {
    assert.ok(run(program, exit(pid, pid)) > 0, `pid ${pid} is kept`);
    assert.equal(run(program, exit(pid + 1, pid + 1)), 0, `pid ${pid + 1} is not`);
  }
  for (const pid of [pids[0], pids[63], pids[64], pids[777], pids.at(-1)!]) {
    assert.ok(run(program, fork(pid, pid, 90_000, 90_000)) > 0, `the child of ${pid} is kept`);
    assert.ok(run(program, fork(1, 1, pid + 3, pid)) > 0, `a new thread of ${pid} is kept`);
    assert.equal(run(program, fork(pid, pid, 90_001, 90_000)), 0, "its child's thread is not");
  }
  assert.equal(run(program, exit(299, 299)), 0);
  assert.equal(run(program, exit(0x7fff_0000, 0x7fff_0000)), 0);
  // Runs of consecutive pids (8,000 sleepers made at once) are ranges.
  const runs = [
    ...Array.from({ length: 5000 }, (_, i) => 1000 + i),
    ...Array.from({ length: 3000 }, (_, i) => 70_000 + i),
    65_536,
  ];
  const ranged = buildSocketFilter({ eventMask: null, pids: runs, acks: true })!;
  assert.ok(ranged !== null && ranged.length < 200, `${ranged?.length} instructions`);
  assertValid(ranged);
  for (const pid of [1000, 3456, 5999, 70_000, 72_999, 65_536]) {
    assert.ok(run(ranged, exit(pid, pid)) > 0, `pid ${pid} is kept`);
  }
  for (const pid of [999, 6000, 69_999, 73_000, 65_535, 65_537, 256, 1]) {
    assert.equal(run(ranged, exit(pid, pid)), 0, `pid ${pid} is not`);
  }
  // Past the limit: no program with pids; the plan says why and keeps the types.
  const many = Array.from({ length: 2500 }, (_, i) => 300 + i * 2);
  assert.equal(buildSocketFilter({ eventMask: null, pids: many, acks: true }), null);
  const plan = planSocketFilter(ProcEventWhat.EXIT, many, null, true);
  assert.equal(plan.info.pids, false);
  assert.equal(plan.info.types, true);
  assert.match(plan.info.pidsInProcwatch ?? "", /2500 pids need more than the kernel's 4096/);
  assert.equal(planSocketFilter(null, many, null, true).program, null);
  // Nothing to select: no program at all.
  assert.equal(buildSocketFilter({ eventMask: null, pids: null, acks: true }), null);
  assert.ok(buildSocketFilter({ eventMask: PROC_EVENT_ALL, pids: null, acks: true }) !== null);
});

Deno.test("bpf: encoding is struct sock_filter, 8 bytes each in host order", () => {
  const program = buildSocketFilter({ eventMask: null, pids: [1], acks: true })!;
  const bytes = encodeProgram(program);
  assert.equal(bytes.length, program.length * 8);
  const view = new DataView(bytes.buffer);
  // The first instruction: BPF_LD|BPF_W|BPF_ABS at offset 36 (struct proc_event.what).
  assert.equal(view.getUint16(0, true), 0x20);
  assert.equal(view.getUint32(4, true), 36);
});

// --- Real kernel ---

const STORM = 3000;

/** The `Rmem` (bytes queued) and `Drops` columns of netlink port `port` in /proc/net/netlink. */
function socketQueue(port: number): { queued: number; drops: number } {
  const lines = (readFileText("/proc/net/netlink") ?? "").trim().split("\n");
  const header = lines[0].trim().split(/\s+/);
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[header.indexOf("Eth")] === "11" && Number(fields[header.indexOf("Pid")]) === port) {
      return {
        queued: Number(fields[header.indexOf("Rmem")]),
        drops: Number(fields[header.indexOf("Drops")]),
      };
    }
  }
  throw new Error(`no connector socket with port ${port}`);
}

kernelTest(
  "wait during a storm: the kernel queues none of the storm for it; the status is the target's",
  async () => {
    const target = await sleeper();
    const wait = await startWait([String(target.pid)]);
    let stopped = false;
    try {
      const armed = await wait.armed;
      // Beside it, a watcher without any kernel filter, never read during the storm.
      using control = watchAll({ pids: [target.pid], kernelFilter: false });
      // Stopped, the wait cannot read: whatever the kernel lets through stays queued.
      Deno.kill(wait.child.pid, "SIGSTOP");
      stopped = true;
      const made = spawnExitingMany(STORM, Infinity);
      const waitQueue = socketQueue(wait.child.pid);
      const controlQueue = socketQueue(control.portId);
      Deno.kill(wait.child.pid, "SIGCONT");
      stopped = false;
      assert.equal(made, STORM);
      assert.equal(waitQueue.drops, 0);
      // 2 × 3,000 messages take megabytes of the control's buffer (each skb's truesize);
      // the wait's queue holds at most what other processes did meanwhile to nothing (0).
      assert.ok(controlQueue.queued > STORM * 2 * 256, `control queued ${controlQueue.queued} B`);
      assert.equal(waitQueue.queued, 0, `wait queued ${waitQueue.queued} B: ${armed}`);
      target.kill("SIGTERM");
      const status = await target.status;
      assert.equal(status.signal, "SIGTERM");
      const result = await wait.done;
      assert.equal(result.code, 128 + 15, result.stderr);
      assert.match(result.stdout, new RegExp(`^${target.pid} killed by SIGTERM$`, "m"));
      assert.match(result.stderr, /learnt from: event/);
      assert.match(result.stderr, /the kernel drops other processes' events \(BPF socket filter/);
    } finally {
      if (stopped) Deno.kill(wait.child.pid, "SIGCONT");
      killQuietly(target.pid);
      if (!wait.finished()) wait.child.kill("SIGKILL");
      await wait.done.catch(() => {});
    }
  },
);

kernelTest(
  "watch -p during a storm: only the pid's messages arrive, the same events as without the filter",
  async () => {
    const target = await sleeper();
    try {
      using watcher = watchAll({ pids: [target.pid] });
      using control = watchAll({ pids: [target.pid], kernelFilter: false });
      assert.equal(watcher.socketFilter.pids, true);
      assert.equal(control.socketFilter.instructions, 0);
      const made = spawnExitingMany(STORM, Infinity);
      target.kill("SIGTERM");
      assert.equal((await target.status).signal, "SIGTERM");
      const isEnd = (event: ProcEvent) => event.type === "exit" && event.pid === target.pid;
      const seen = await collectUntil(watcher, isEnd);
      const reference = await collectUntil(control, isEnd);
      const about = (events: ProcEvent[]) =>
        events.filter((event) => event.type !== "lost").map((event) =>
          JSON.stringify(event, plain)
        );
      assert.deepEqual(about(seen), about(reference));
      const exit = seen.at(-1)!;
      assert.ok(exit.type === "exit" && exit.signal === "SIGTERM");
      // The control received the whole storm (two events per process); the
      // filtered watcher its pid's exit and the ACKs of its own subscription.
      assert.ok(control.stats.received >= 2 * made, `control received ${control.stats.received}`);
      assert.ok(watcher.stats.received <= 8, `received ${watcher.stats.received}`);
      assert.equal(watcher.stats.filtered, 0, "nothing left for procwatch to filter");
      assert.equal(watcher.stats.lostByKernel, 0);
    } finally {
      killQuietly(target.pid);
    }
  },
);

kernelTest(
  "cli watch -p --json -v during a storm: its counters show only the pid's messages",
  async () => {
    const target = await sleeper();
    const cli = spawnDeno("cli.ts", ["watch", "-v", "--json", "-p", String(target.pid)]);
    try {
      await cli.stderr.waitFor((line) => line.includes('"listening"'));
      const made = spawnExitingMany(STORM, Infinity);
      target.kill("SIGTERM");
      await target.status;
      // It ends by itself once its only pid is gone.
      assert.equal((await cli.child.status).code, 0);
      await Promise.all([cli.stdout.done, cli.stderr.done]);
      const objects = cli.stderr.lines.filter((line) => line !== "").map((line) =>
        JSON.parse(line)
      );
      assert.deepEqual(objects[0].socketFilter, {
        types: false,
        pids: true,
        pidsInProcwatch: null,
        instructions: objects[0].socketFilter.instructions,
      });
      const counters = objects.find((object) => object.type === "counters");
      assert.equal(made, STORM);
      assert.ok(counters.received <= 8, `received ${counters.received} while ${2 * made} happened`);
      assert.equal(counters.filtered, 0);
      const exits = cli.stdout.lines.filter((line) => line !== "").map((line) => JSON.parse(line));
      assert.equal(exits.length, 1);
      assert.equal(exits[0].pid, target.pid);
      assert.equal(exits[0].signal, "SIGTERM");
    } finally {
      killQuietly(target.pid);
      await cli.stop("SIGKILL").catch(() => -1);
    }
  },
);

kernelTest(
  "BPF type filter forced (as before Linux 6.6): only failed exits reach procwatch during a storm",
  async () => {
    using watcher = watchAll({ events: ["exit"], failedOnly: true, kernelFilter: "bpf" });
    assert.equal(watcher.filterMode, "kernel");
    assert.equal(watcher.socketFilter.types, true);
    const made = spawnExitingMany(STORM, Infinity); // exit code 0: dropped in the kernel
    const failed = spawnExiting(3);
    const seen = await collectUntil(
      watcher,
      (event) => event.type === "exit" && event.pid === failed,
    );
    const last = seen.at(-1)!;
    assert.ok(last.type === "exit" && last.exitCode === 3);
    assert.equal(made, STORM);
    for (const event of seen) {
      assert.ok(event.type === "exit" && event.status !== 0, JSON.stringify(event, plain));
    }
    assert.ok(
      !seen.some((event) =>
        event.type === "exit" && event.parentPid === Deno.pid && event.pid !== failed
      ),
    );
    // Nothing of the storm (3,000 forks and successful exits) was left for
    // procwatch to filter: every event received was a failed exit.
    assert.equal(watcher.stats.filtered, 0);
  },
);

kernelTest(
  "wait on more pids than one program holds: procwatch filters them and -v says so",
  async () => {
    // Every other sleeper: 2,000 pids with gaps between them, no runs to merge.
    using sleepers = SleepingProcesses.spawn(4000);
    const pids = sleepers.pids.filter((_, i) => i % 2 === 0);
    const sorted = [...pids].sort((a, b) => a - b);
    assert.ok(sorted.every((pid, i) => i === 0 || pid > sorted[i - 1] + 1), "scattered pids");
    const wait = await startWait(pids.map(String));
    try {
      await wait.armed;
      sleepers.killAll();
      sleepers.reapAll();
      const result = await wait.done;
      assert.match(
        result.stderr,
        /procwatch: pids filtered in procwatch, not in the kernel: 2000 pids need more than the kernel's 4096 BPF instructions/,
      );
      assert.doesNotMatch(result.stderr, /BPF socket filter,/);
      const killed = result.stdout.split("\n").filter((line) => / killed by SIGKILL$/.test(line));
      assert.equal(killed.length, 2000, result.stderr.slice(-500));
    } finally {
      if (!wait.finished()) wait.child.kill("SIGKILL");
      await wait.done.catch(() => {});
    }
  },
);

kernelTest(
  "wait on sleepers made one after the other: their runs fit one small program in the kernel",
  async () => {
    using sleepers = SleepingProcesses.spawn(3000);
    // Other work on the machine may take pids in between: keep the longest
    // runs, at most 1,000 of them (each costs about two instructions).
    const sorted = [...sleepers.pids].sort((a, b) => a - b);
    const runs: number[][] = [];
    for (const pid of sorted) {
      const last = runs.at(-1);
      if (last !== undefined && last.at(-1)! + 1 === pid) last.push(pid);
      else runs.push([pid]);
    }
    const pids = runs.sort((a, b) => b.length - a.length).slice(0, 1000).flat();
    const wait = await startWait(pids.map(String));
    try {
      await wait.armed;
      sleepers.killAll();
      sleepers.reapAll();
      const result = await wait.done;
      assert.match(
        result.stderr,
        /procwatch: the kernel drops other processes' events \(BPF socket filter, \d+ instructions\)/,
      );
      const killed = result.stdout.split("\n").filter((line) => / killed by SIGKILL$/.test(line));
      assert.equal(killed.length, pids.length, result.stderr.slice(-500));
    } finally {
      if (!wait.finished()) wait.child.kill("SIGKILL");
      await wait.done.catch(() => {});
    }
  },
);

/** Starts `sleep 60` and returns once it runs sleep (its exec done: no event of it comes later). */
async function sleeper(): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
  await until(
    () => readFileText(`/proc/${child.pid}/comm`) === "sleep\n",
    `sleep ${child.pid} to have exec'd`,
  );
  return child;
}

/** JSON of an event with its bigint timestamp as text. */
function plain(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? String(value) : value;
}
