/**
 * The fidelity test: a scripted workload (tests/support/fidelity_workload.py)
 * runs every lifetime case (reparenting, threads, exec chains, waits) while an independent reference listener
 * (tests/support/fidelity_reference.ts: its own socket and decoder) and two
 * CLIs (`watch --json --context --threads` and human `watch --threads`, both
 * `--tree <workload>`) watch the same window. Then, field by field:
 *
 * 1. every kernel message the reference saw in the workload's sub-tree is in
 *    the JSON output with equal fields, and nothing else is; its `time` is the
 *    kernel stamp plus the wall-clock offset the reference measured;
 * 2. the context (`process.cmdline`, `comm`, `ppid`, `durationNs`) equals the
 *    truth the workload recorded about itself (and the kernel's own stamps);
 * 3. each human line's time is the JSON `time` of the same event, in local time;
 * 4. `watch -p ROOT --threads` shows the root's events and its forks, not its
 *    children's threads;
 * 5. `wait --json PID`, armed on the two processes whose main thread ends
 *    before the process does, ends with the status the parent's waitpid() got.
 *
 * A mismatch prints a per-case table (case, event, field, expected, got).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type DenoChild, LineReader, serialKernelTest, spawnDeno } from "./support/subprocess.ts";
import { CONTROL_ROOT, CONTROL_STOP, type ReferenceMessage } from "./support/fidelity_reference.ts";
import {
  compare,
  isoFromNs,
  isoToNs,
  type Json,
  localMicrosOfDay,
  MAX_UNNAMED,
  type Observed,
  printTable,
  type Truth,
  type WaitResult,
} from "./support/fidelity_compare.ts";

const WORKLOAD = new URL("./support/fidelity_workload.py", import.meta.url).pathname;
const REFERENCE = new URL("./support/fidelity_reference.ts", import.meta.url);

/** Runs the workload with the reference and both CLIs listening. */
async function observe(dir: string): Promise<Observed> {
  const truthPath = `${dir}/truth.json`;
  const coreDir = `${dir}/core`;
  await Deno.mkdir(coreDir);
  const control = new SharedArrayBuffer(8);
  const flags = new Int32Array(control);
  const worker = new Worker(REFERENCE, { type: "module" });
  const messages: ReferenceMessage[] = [];
  const wakers: (() => void)[] = [];
  worker.onmessage = (message: MessageEvent<ReferenceMessage>) => {
    messages.push(message.data);
    wakers.splice(0).forEach((wake) => wake());
  };
  const nextMessage = async (type: string, timeoutMs: number): Promise<ReferenceMessage> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages.find((m) => m.type === type || m.type === "error");
      if (found) {
        if (found.type === "error") throw new Error(`reference listener: ${found.message}`);
        return found;
      }
      if (Date.now() > deadline) throw new Error(`reference listener never said ${type}`);
      await new Promise<void>((resolve) => {
        wakers.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  let workload: Deno.ChildProcess | undefined;
  const clis: DenoChild[] = [];
  const waits: { pid: number; cli: DenoChild }[] = [];
  try {
    worker.postMessage({ control });
    const ready = await nextMessage("ready", 10_000) as Extract<
      ReferenceMessage,
      { type: "ready" }
    >;

    workload = new Deno.Command("python3", {
      args: [WORKLOAD, truthPath, coreDir],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const workloadOut = new LineReader(workload.stdout);
    const running = workload;
    // A line from the workload, or its exit status as the error if it ends first.
    const workloadSays = (match: (line: string) => boolean, what: string) =>
      Promise.race([
        workloadOut.waitFor(match, 30_000),
        running.status.then((status) => {
          throw new Error(`the workload exited (${status.code}) before saying '${what}'`);
        }),
      ]);
    const root = Number((await workloadSays((l) => l.startsWith("ready "), "ready")).split(" ")[1]);
    Atomics.store(flags, CONTROL_ROOT, root);

    const tree = ["--tree", String(root), "--threads", "-v"];
    const json = spawnDeno("cli.ts", ["watch", "--json", "--context", ...tree], {
      env: { NO_COLOR: "1" },
    });
    const human = spawnDeno("cli.ts", ["watch", ...tree], { env: { NO_COLOR: "1" } });
    // `-p ROOT --threads` sees the root's own events and the forks of its children.
    const onlyRoot = spawnDeno("cli.ts", [
      "watch",
      "--json",
      "--threads",
      "-v",
      "-p",
      String(root),
    ]);
    clis.push(json, human, onlyRoot);
    await Promise.all(
      clis.map((cli) => cli.stderr.waitFor(isListening, 60_000)),
    );

    const stdin = workload.stdin.getWriter();
    await stdin.write(new TextEncoder().encode("go\n"));
    // `wait` armed on the two processes whose main thread ends first.
    const hold = await workloadSays((line) => line.startsWith("hold "), "hold");
    const waitPids = hold.split(" ").slice(1).map(Number);
    for (const pid of waitPids) {
      const waiter = spawnDeno("cli.ts", ["wait", "--json", "-v", String(pid)]);
      waits.push({ pid, cli: waiter });
      clis.push(waiter);
    }
    await Promise.all(
      waits.map(({ cli }) =>
        cli.stderr.waitFor((line) => line.startsWith("procwatch: armed"), 60_000)
      ),
    );
    await stdin.write(new TextEncoder().encode("go\n"));
    await stdin.close();
    await workloadSays((line) => line === "done", "done");
    const status = await workload.status;
    assert.equal(status.code, 0, "the workload ran every case");

    // The root's own exit is the last event of its sub-tree (it reaped everything first).
    const rootExit = new RegExp(`^\\S+ exit +${root} `);
    await Promise.all([
      ...[json, onlyRoot].map((cli) =>
        cli.stdout.waitFor(
          (line) => line.includes(`"type":"exit","`) && rootExitJson(line, root),
          60_000,
        )
      ),
      human.stdout.waitFor((line) => rootExit.test(line), 60_000),
    ]);
    await Promise.all([json, human, onlyRoot].map((cli) => cli.stop("SIGINT")));
    const waited: WaitResult[] = [];
    for (const { pid, cli } of waits) {
      const code = await Promise.race([
        cli.child.status.then((s) => s.code),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000)),
      ]);
      await cli.stop("SIGKILL");
      const line = cli.stdout.lines.find((l) => l.startsWith("{"));
      waited.push({ pid, code, result: line === undefined ? null : JSON.parse(line) as Json });
    }

    Atomics.store(flags, CONTROL_STOP, 1);
    const done = await nextMessage("done", 10_000) as Extract<ReferenceMessage, { type: "done" }>;
    const truth = JSON.parse(await Deno.readTextFile(truthPath)) as Truth;
    return {
      truth,
      reference: done,
      referenceStartOffsetNs: BigInt(ready.offsetNs),
      json: json.stdout.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Json),
      human: human.stdout.lines,
      onlyRoot: onlyRoot.stdout.lines.filter((l) => l.startsWith("{")).map((l) =>
        JSON.parse(l) as Json
      ),
      jsonStderr: [json, onlyRoot].map((cli) => cli.stderr.lines.join("\n")).join("\n"),
      humanStderr: human.stderr.lines.join("\n"),
      waited,
    };
  } finally {
    Atomics.store(flags, CONTROL_STOP, 1);
    for (const cli of clis) await cli.stop("SIGKILL").catch(() => {});
    if (workload !== undefined) {
      // On a failure part-way, the workload's descendants may still run (e.g. `sleep 30`).
      const root = Atomics.load(flags, CONTROL_ROOT);
      for (const pid of root === 0 ? [] : descendantsOf(root)) killQuietly(pid);
      killQuietly(workload.pid);
      await workload.status;
      await workload.stdout.cancel().catch(() => {});
    }
    // Give the worker its 20 ms receive timeout to see the flag, then end it.
    await nextMessage("done", 2_000).catch(() => {});
    worker.terminate();
  }
}

/** `watch -v`'s "listening" line: a sentence, or with `--json` a JSON object of type "listening". */
function isListening(line: string): boolean {
  if (line.startsWith("procwatch: listening")) return true;
  if (!line.startsWith("{")) return false;
  try {
    return (JSON.parse(line) as Json).type === "listening";
  } catch {
    return false;
  }
}

/** Every live descendant of `root`, from the ppid links of /proc/PID/stat. */
function descendantsOf(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      parentOf.set(Number(entry.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const found = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (found.has(ppid) && !found.has(pid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  found.delete(root);
  return [...found];
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

function rootExitJson(line: string, root: number): boolean {
  const event = JSON.parse(line) as Json;
  return event.type === "exit" && event.pid === root && event.tid === root;
}

serialKernelTest(
  "fidelity: a scripted workload, a reference listener and watch agree field by field",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "procwatch-fidelity-" });
    try {
      const observed = await observe(dir);
      const unnamed = new Set<string>();
      const rows = compare(observed, unnamed);
      if (unnamed.size > MAX_UNNAMED) {
        rows.push({
          case: "short-lived images",
          event: "-",
          field: "unnamed (procGone)",
          expected: `at most ${MAX_UNNAMED}`,
          got: String(unnamed.size),
        });
      }
      if (unnamed.size > 0) {
        console.log(
          `note: ${unnamed.size} short-lived final image(s) ended before procwatch read them ` +
            `(cmdline null, procGone): ${[...unnamed].join("; ")}`,
        );
      }
      const lostWarnings = [observed.jsonStderr, observed.humanStderr].join("\n").split("\n")
        .filter((line) => line.includes("events lost"));
      for (const line of lostWarnings) {
        rows.push({ case: "watch", event: "-", field: "stderr", expected: "no loss", got: line });
      }
      const processes = observed.truth.processes.length;
      console.log(
        `fidelity: ${observed.reference.events.length} kernel messages, ${observed.json.length} JSON, ` +
          `${observed.human.length} human lines, ${processes} processes/threads of truth`,
      );
      if (rows.length > 0) printTable(rows);
      assert.equal(rows.length, 0, `${rows.length} fidelity mismatches (table above)`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

// The comparison's tolerances on made-up observations: it accepts what the rules allow and
// flags everything else. Process 1001 execs `env sleep 1` then `sleep 1`, has a thread 1002.

const OFFSET = 1_700_000_000_000_000_000n;
const ROOT_PID = 1000;
const ROOT_ARGV = ["python3", "workload.py"];

function syntheticRun(): Observed {
  const image0 = { argv: ROOT_ARGV, comm: "python3" };
  const truth: Truth = {
    root: ROOT_PID,
    rootArgv: ROOT_ARGV,
    rootComm: "python3",
    goNs: 0,
    endNs: 140_000_000,
    processes: [
      {
        case: "chain",
        kind: "process",
        pid: 1001,
        tid: 1001,
        parent: ROOT_PID,
        images: [image0, { argv: ["env", "sleep", "1"], comm: "env" }, {
          argv: ["sleep", "1"],
          comm: "sleep",
        }],
        startBefore: 900_000,
        startAfter: 1_100_000,
        endBefore: null,
        endAfter: 111_000_000,
        status: 0,
        renames: [],
        waited: true,
      },
      {
        case: "chain",
        kind: "thread",
        pid: 1001,
        tid: 1002,
        parent: ROOT_PID,
        images: [],
        startBefore: 39_900_000,
        startAfter: 40_100_000,
        endBefore: 99_900_000,
        endAfter: 111_000_000,
        status: null,
        renames: [],
      },
    ],
  };
  const exit = (pid: number, tid: number, parentPid: number, ts: number) => ({
    what: "exit",
    ts,
    fields: {
      tid,
      pid,
      status: 0,
      exitSignal: tid === pid ? 17 : -1,
      parentTid: parentPid,
      parentPid,
    },
  });
  const fork = (parentPid: number, childPid: number, childTid: number, ts: number) => ({
    what: "fork",
    ts,
    fields: { parentTid: parentPid, parentPid, childTid, childPid, thread: childPid !== childTid },
  });
  const raw: { what: string; ts: number; fields: Record<string, number | boolean> }[] = [
    fork(ROOT_PID, 1001, 1001, 1_000_000),
    { what: "exec", ts: 2_000_000, fields: { tid: 1001, pid: 1001 } },
    { what: "exec", ts: 3_000_000, fields: { tid: 1001, pid: 1001 } },
    fork(ROOT_PID, 1001, 1002, 40_000_000),
    exit(1001, 1002, ROOT_PID, 100_000_000),
    exit(1001, 1001, ROOT_PID, 110_000_000),
    exit(ROOT_PID, ROOT_PID, Deno.pid, 130_000_000),
  ];
  const context = (pid: number, ts: number, tid: number, what: string): Json => {
    const root = pid === ROOT_PID;
    const image = root ? 0 : ts >= 3_000_000 ? 2 : ts >= 2_000_000 ? 1 : 0;
    const info = image === 0 ? image0 : truth.processes[0].images[image];
    const started = root ? null : tid === pid ? 1_000_000 : 40_000_000;
    return {
      pid,
      comm: info.comm,
      cmdline: info.argv,
      ppid: root ? Deno.pid : ROOT_PID,
      procGone: false,
      durationNs: what === "exit" && started !== null ? String(ts - started) : null,
    };
  };
  const json: Json[] = raw.map((event) => {
    const pid = (event.what === "fork" ? event.fields.childPid : event.fields.pid) as number;
    const tid = (event.what === "fork" ? event.fields.childTid : event.fields.tid) as number;
    const fields: Json = { ...event.fields };
    if (event.what === "exit") {
      Object.assign(fields, { exitCode: 0, signal: null, coreDumped: false });
    }
    return {
      type: event.what,
      cpu: 0,
      timestampNs: String(event.ts),
      time: isoFromNs(BigInt(event.ts) + OFFSET),
      ...fields,
      process: context(pid, event.ts, tid, event.what),
    };
  });
  const human = json.map((event) => {
    const micros = localMicrosOfDay(isoToNs(event.time as string));
    const pid = (event.type === "fork" ? event.childPid : event.pid) as number;
    const tid = (event.type === "fork" ? event.childTid : event.tid) as number;
    const details = event.type === "fork"
      ? (tid !== pid ? `thread ${tid}` : `child of ${event.parentPid}`)
      : (tid !== pid ? `tid ${tid} ` : "");
    return `${clock(micros)} ${String(event.type).padEnd(8)} ${
      String(pid).padStart(7)
    } root ${details}`;
  });
  return {
    truth,
    reference: {
      type: "done",
      events: raw.map((e) => ({
        what: e.what,
        cpu: 0,
        timestampNs: String(e.ts),
        fields: e.fields,
      })),
      overruns: 0,
      offsetNs: String(OFFSET),
      offsetBracketNs: "100",
    },
    referenceStartOffsetNs: OFFSET,
    json,
    human,
    onlyRoot: json.filter((e) =>
      e.type === "fork" ? e.parentPid === ROOT_PID && !e.thread : e.pid === ROOT_PID
    ),
    jsonStderr: "",
    humanStderr: "",
    waited: [{ pid: 1001, code: 0, result: { pid: 1001, status: 0, timestampNs: "110000000" } }],
  };
}

function clock(micros: bigint): string {
  const pad = (n: bigint, width = 2) => String(n).padStart(width, "0");
  const s = micros / 1_000_000n;
  return `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}.${pad(micros % 1_000_000n, 6)}`;
}

/** The (case, field) pairs the comparison flags after `change` spoils a correct run. */
function flagged(change: (run: Observed) => void): string[] {
  const run = syntheticRun();
  change(run);
  return compare(run, new Set()).map((row) => `${row.event} ${row.field}`);
}

function processOf(run: Observed, type: string, ts: number): Json {
  const event = run.json.find((e) => e.type === type && e.timestampNs === String(ts));
  assert.ok(event, `${type} at ${ts}`);
  return event.process as Json;
}

Deno.test("fidelity comparison: a correct run has no mismatch", () => {
  assert.deepEqual(flagged(() => {}), []);
});

Deno.test("fidelity comparison: an intermediate image may be unknown only with a reason", () => {
  assert.deepEqual(
    flagged((run) => {
      Object.assign(processOf(run, "exec", 2_000_000), {
        cmdline: null,
        comm: null,
        cmdlineUnknown: "replaced",
      });
    }),
    [],
  );
  assert.deepEqual(
    flagged((run) => Object.assign(processOf(run, "exec", 2_000_000), { cmdline: null })),
    ["exec 1001 process.cmdline"],
  );
  // Never another image's argv: the later `sleep 1` on the `env` image's exec.
  assert.deepEqual(
    flagged((run) => Object.assign(processOf(run, "exec", 2_000_000), { cmdline: ["sleep", "1"] })),
    ["exec 1001 (image 1) process.cmdline"],
  );
});

Deno.test("fidelity comparison: a final image that lived 107 ms must be named", () => {
  assert.deepEqual(
    flagged((run) =>
      Object.assign(processOf(run, "exit", 110_000_000), { cmdline: null, procGone: true })
    ),
    ["exit 1001 (image 2) process.cmdline"],
  );
});

Deno.test("fidelity comparison: durations within 2 ms pass, a thread given the process's age fails", () => {
  assert.deepEqual(
    flagged((run) =>
      Object.assign(processOf(run, "exit", 100_000_000), { durationNs: "61000000" })
    ),
    [],
  );
  assert.deepEqual(
    flagged((run) =>
      Object.assign(processOf(run, "exit", 100_000_000), { durationNs: "99000000" })
    ),
    [
      "exit 1001/1002 process.durationNs (kernel fork→exit)",
      "exit 1001/1002 process.durationNs (workload's clock)",
    ],
  );
});

Deno.test("fidelity comparison: a wrong parent, status, time or event is flagged", () => {
  assert.deepEqual(
    flagged((run) => Object.assign(processOf(run, "exit", 110_000_000), { ppid: 4242 })),
    ["exit 1001 process.ppid"],
  );
  assert.deepEqual(
    flagged((run) => {
      const exit = run.json.find((e) => e.type === "exit" && e.timestampNs === "110000000");
      Object.assign(exit ?? {}, { status: 256, exitCode: 1 });
    }),
    ["exit 1001 status", "exit 1001 exitCode"],
  );
  assert.deepEqual(
    flagged((run) => {
      const exit = run.json.find((e) => e.type === "exit" && e.timestampNs === "110000000");
      Object.assign(exit ?? {}, { time: isoFromNs(110_000_000n + OFFSET + 3000n) });
    }),
    ["exit 1001 time (vs reference offset, ±2 µs)", "exit/1001/1001 human time (±1 µs)"],
  );
  assert.deepEqual(
    flagged((run) => run.json.splice(1, 1)),
    ["exec 1001 event", "exec/1001/1001 human lines"],
  );
  // A thread of the root's child under `-p ROOT` (the kernel names ROOT as its parentPid).
  assert.deepEqual(
    flagged((run) => run.onlyRoot.push(run.json[3])),
    ["fork/1001/1002 watch -p ROOT: event"],
  );
  assert.deepEqual(
    flagged((run) => run.waited[0].result = { pid: 1001, status: 0, timestampNs: "9000000" }),
    ["wait 1001 wait timestampNs (not before the process's end)"],
  );
});

Deno.test("fidelity comparison: the human time may differ from the JSON time by 1 µs, not 2", () => {
  const shift = (micros: bigint) => (run: Observed) => {
    const line = run.human[1];
    const [h, m, s] = line.slice(0, 8).split(":").map(BigInt);
    const at = ((h * 60n + m) * 60n + s) * 1_000_000n + BigInt(line.slice(9, 15)) + micros;
    run.human[1] = `${clock(at)}${line.slice(15)}`;
  };
  assert.deepEqual(flagged(shift(1n)), []);
  assert.deepEqual(flagged(shift(2n)), ["exec/1001/1001 human time (±1 µs)"]);
});
