/**
 * The comparison of tests/fidelity_test.ts, apart from running anything, so
 * that its tolerances can be tested on made-up observations too: what the
 * workload recorded about itself ({@linkcode Truth}), what the reference
 * listener decoded, and what `watch` and `wait` printed go in; the mismatch
 * rows (case, event, field, expected, got) come out.
 *
 * @module
 */

import type { RawEvent, ReferenceMessage } from "./fidelity_reference.ts";

/** One image of a process: the argv it ran with and the comm the kernel gave it. */
export interface ImageTruth {
  argv: string[];
  comm: string;
}

/** What the workload recorded about one process or thread it made. */
export interface ProcTruth {
  case: string;
  kind: "process" | "thread";
  pid: number;
  tid: number;
  parent: number;
  /** images[0]: inherited at fork; then one per exec, in order. */
  images: ImageTruth[];
  startBefore: number;
  startAfter: number;
  endBefore: number | null;
  endAfter: number | null;
  /** The wait status its parent's waitpid() got. */
  status: number | null;
  renames: string[];
  /** Re-parented when `after` exited; `seenNs`: the orphan's clock once getppid() changed. */
  reparent?: { after: number; to: number; seenNs: number };
  minLifetimeNs?: number;
  tracer?: { pid: number; tid: number };
  /** `wait` was armed on it (its main thread ends first). */
  waited?: boolean;
}

/** The workload's truth file: its root, when the window began, and what it made. */
export interface Truth {
  root: number;
  rootArgv: string[];
  rootComm: string;
  goNs: number;
  endNs: number;
  processes: ProcTruth[];
}

/** A parsed JSON line. */
export type Json = Record<string, unknown>;

/** A row of the mismatch table. */
export interface Row {
  case: string;
  event: string;
  field: string;
  expected: string;
  got: string;
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  5: "SIGTRAP",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  10: "SIGUSR1",
  11: "SIGSEGV",
  12: "SIGUSR2",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
};

/**
 * A final image that lived less than this may have ended before procwatch's
 * reader got the CPU (2 cores shared with other process storms): it may then
 * be reported `procGone` with no command line, an honest "unknown" (README:
 * "When /proc was already gone, the event says so"), never a wrong one. The
 * workload's deliberate lifetimes (`sleep 0.05`, `sleep 0.3`) are longer:
 * those images must be named.
 */
export const SHORT_LIVED_NS = 50_000_000n;
/** At most this many short-lived images may go unnamed in one run (README: 200 of 200 named). */
export const MAX_UNNAMED = 5;

/** Duration tolerance: the workload's clock reads are near, not at, the kernel's stamps. */
export function tolerance(expectedNs: number): number {
  return Math.max(2_000_000, expectedNs / 100);
}

/** The JSON `time` (ISO with nanoseconds) as nanoseconds since the epoch. */
export function isoToNs(iso: string): bigint {
  const match = /^(.*T\d\d:\d\d:\d\d)\.(\d{9})Z$/.exec(iso);
  if (!match) throw new Error(`not an ISO time with ns: ${iso}`);
  return BigInt(Date.parse(`${match[1]}Z`)) * 1_000_000n + BigInt(match[2]);
}

/** Local time of day in microseconds, as the human column should show `wallNs`. */
export function localMicrosOfDay(wallNs: bigint): bigint {
  const date = new Date(Number(wallNs / 1_000_000n));
  const seconds = (date.getHours() * 60 + date.getMinutes()) * 60 + date.getSeconds();
  return BigInt(seconds) * 1_000_000n + (wallNs % 1_000_000_000n) / 1000n;
}

/** Key of an event's process/thread for matching: type/pid/tid (the child for a fork). */
export function eventKey(type: string, fields: Record<string, unknown>): string {
  return type === "fork"
    ? `fork/${fields.childPid}/${fields.childTid}`
    : `${type}/${fields.pid}/${fields.tid}`;
}

function describeRaw(event: RawEvent): string {
  const f = event.fields;
  return event.what === "fork"
    ? `fork ${f.childPid}${f.thread ? `/${f.childTid}` : ""}`
    : `${event.what} ${f.pid}${f.tid !== f.pid ? `/${f.tid}` : ""}`;
}

/** Text shown as is in the table (a description, not a value). */
class Note {
  constructor(readonly text: string) {}
}

function show(value: unknown): string {
  if (value instanceof Note) return value.text;
  return value === undefined
    ? "(absent)"
    : JSON.stringify(value, (_key, v) => typeof v === "bigint" ? String(v) : v);
}

/** Prints the rows as an aligned table, at most 8 per (case, field) plus a count. */
export function printTable(rows: Row[]): void {
  const shown: Row[] = [];
  const counts = new Map<string, number>();
  for (const row of rows) {
    const key = `${row.case}\0${row.field}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n <= 8) shown.push(row);
  }
  const cut = (text: string) => text.length > 70 ? `${text.slice(0, 67)}...` : text;
  const cells = shown.map((r) => [r.case, r.event, r.field, cut(r.expected), cut(r.got)]);
  const header = ["case", "event", "field", "expected", "got"];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((cell, i) => cell.padEnd(widths[i])).join(" | ");
  const text = [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...cells.map(line)];
  for (const [key, n] of counts) {
    if (n > 8) text.push(`... ${n - 8} more rows for ${key.replace("\0", " / ")}`);
  }
  console.log(`\nfidelity mismatches (${rows.length}):\n${text.join("\n")}`);
}

/** One life of a pid in the window: from its fork (or the window's start) on. */
interface Life {
  pid: number;
  /** Its fork stamp; `null` when it began before the window. */
  forkNs: bigint | null;
  /** Its kernel messages, in order. */
  events: RawEvent[];
  /** What the workload recorded about it. */
  truth?: ProcTruth;
}

/** Everything one run produced, for {@linkcode compare}. */
export interface Observed {
  truth: Truth;
  reference: Extract<ReferenceMessage, { type: "done" }>;
  referenceStartOffsetNs: bigint;
  json: Json[];
  human: string[];
  /** `watch --json --threads -p ROOT` lines. */
  onlyRoot: Json[];
  jsonStderr: string;
  humanStderr: string;
  /** `cli.ts wait --json PID` runs: exit code (null: still waiting after 10 s) and JSON line. */
  waited: WaitResult[];
}

/** One `cli.ts wait --json PID` run. */
export interface WaitResult {
  pid: number;
  code: number | null;
  result: Json | null;
}

/**
 * Compares everything; returns the mismatch rows. `unnamed` collects the
 * short-lived final images that ended before procwatch could read them.
 */
export function compare(observed: Observed, unnamed: Set<string>): Row[] {
  const { truth, reference } = observed;
  const rows: Row[] = [];
  const goNs = BigInt(truth.goNs);
  const refEvents = reference.events.filter((e) => BigInt(e.timestampNs) >= goNs);

  // Truth of the root itself (its parent is this test process), and indexes.
  const rootTruth: ProcTruth = {
    case: "workload root",
    kind: "process",
    pid: truth.root,
    tid: truth.root,
    parent: Deno.pid,
    images: [{ argv: truth.rootArgv, comm: truth.rootComm }],
    startBefore: 0,
    startAfter: 0,
    endBefore: null,
    endAfter: null,
    status: 0,
    renames: [],
  };
  // Kernel truth per life of a pid: a busy machine with pid_max 32768 reuses pids within
  // seconds, so a pid is a process only together with its fork stamp.
  const lives = new Map<number, Life[]>();
  const threadForks = new Map<number, bigint[]>();
  for (const event of refEvents) {
    const f = event.fields;
    const ts = BigInt(event.timestampNs);
    const pid = (event.what === "fork" ? f.childPid : f.pid) as number;
    const list = lives.get(pid) ?? [];
    lives.set(pid, list);
    if (event.what === "fork" && !f.thread) list.push({ pid, forkNs: ts, events: [] });
    if (list.length === 0) list.push({ pid, forkNs: null, events: [] });
    list[list.length - 1].events.push(event);
    if (event.what === "fork" && f.thread) {
      const tid = f.childTid as number;
      threadForks.set(tid, [...(threadForks.get(tid) ?? []), ts]);
    }
  }
  const lifeAt = (pid: number, ts: bigint): Life | undefined =>
    (lives.get(pid) ?? []).findLast((life) => life.forkNs === null || life.forkNs <= ts);
  // The fork (or clone) of a process (thread) the workload made lies between its clock reads.
  const forkedWithin = (p: ProcTruth, ts: bigint | null) =>
    ts !== null && BigInt(p.startBefore) <= ts && ts <= BigInt(p.startAfter);
  const truthLife = new Map<ProcTruth, Life>();
  for (const p of [rootTruth, ...truth.processes.filter((p) => p.kind === "process")]) {
    const life = (lives.get(p.pid) ?? []).find((life) =>
      p === rootTruth ? life.forkNs === null : forkedWithin(p, life.forkNs)
    );
    if (life !== undefined) {
      life.truth = p;
      truthLife.set(p, life);
    }
  }
  const threadTruth = (tid: number, cloneNs: bigint) =>
    truth.processes.find((p) => p.kind === "thread" && p.tid === tid && forkedWithin(p, cloneNs));
  const caseAt = (pid: number, ts: bigint) => lifeAt(pid, ts)?.truth?.case ?? "?";
  const add = (c: string, event: string, field: string, expected: unknown, got: unknown) =>
    rows.push({ case: c, event, field, expected: show(expected), got: show(got) });

  // 0. The workload's truth agrees with the kernel (checks the test itself).
  if (reference.overruns > 0) {
    add("reference", "-", "overruns", 0, reference.overruns);
  }
  for (const p of truth.processes.filter((p) => p.kind === "process")) {
    const events = truthLife.get(p)?.events ?? [];
    const execs = events.filter((e) => e.what === "exec").length;
    if (execs !== p.images.length - 1) {
      add(p.case, `pid ${p.pid}`, "truth: execs", p.images.length - 1, execs);
    }
    const exits = events.filter((e) => e.what === "exit");
    const last = exits[exits.length - 1];
    if (last?.fields.status !== p.status) {
      add(p.case, `pid ${p.pid}`, "truth: waitpid status", p.status, last?.fields.status);
    }
    const renames = events.filter((e) => e.what === "comm" && e.fields.tid === p.pid)
      .map((e) => e.fields.comm);
    if (JSON.stringify(renames) !== JSON.stringify(p.renames)) {
      add(p.case, `pid ${p.pid}`, "truth: comm events", p.renames, renames);
    }
    if (p.tracer) {
      const attach = events.find((e) => e.what === "ptrace" && e.fields.tracerPid !== 0);
      if (attach?.fields.tracerPid !== p.tracer.pid || attach?.fields.tracerTid !== p.tracer.tid) {
        add(p.case, `pid ${p.pid}`, "truth: tracer", p.tracer, attach?.fields);
      }
    }
  }

  // 1. Every kernel message in the JSON output with equal fields, and nothing more.
  const jsonEvents = observed.json.filter((e) =>
    e.type !== "lost" && BigInt(e.timestampNs as string) >= goNs
  );
  for (const lost of observed.json.filter((e) => e.type === "lost")) {
    add("watch --json", "lost", "count", 0, lost.count);
  }
  const jsonByKey = new Map<string, Json>();
  for (const e of jsonEvents) {
    jsonByKey.set(`${eventKey(e.type as string, e)}@${e.timestampNs}`, e);
  }
  const matched = new Set<Json>();
  const startOffset = observed.referenceStartOffsetNs;
  const endOffset = BigInt(reference.offsetNs);
  // The offset only moves on a clock step (settimeofday, NTP step): then time can't be checked.
  const offsetStable =
    (startOffset > endOffset ? startOffset - endOffset : endOffset - startOffset) <
      1000n;
  const pairs: { ref: RawEvent; json: Json }[] = [];
  for (const ref of refEvents) {
    const pid = (ref.what === "fork" ? ref.fields.childPid : ref.fields.pid) as number;
    const c = caseAt(pid, BigInt(ref.timestampNs));
    const label = describeRaw(ref);
    const json = jsonByKey.get(`${eventKey(ref.what, ref.fields)}@${ref.timestampNs}`);
    if (json === undefined) {
      add(c, label, "event", new Note(`${ref.what} at ${ref.timestampNs}`), new Note("missing"));
      continue;
    }
    matched.add(json);
    pairs.push({ ref, json });
    if (json.cpu !== ref.cpu) add(c, label, "cpu", ref.cpu, json.cpu);
    for (const [field, value] of Object.entries(ref.fields)) {
      if (json[field] !== value) add(c, label, field, value, json[field]);
    }
    if (ref.what === "exit") {
      const status = ref.fields.status as number;
      const signal = status & 0x7f;
      const expected = {
        exitCode: signal === 0 ? (status >> 8) & 0xff : null,
        signal: signal === 0 ? null : SIGNALS[signal] ?? `SIG${signal}`,
        coreDumped: (status & 0x80) !== 0,
      };
      for (const [field, value] of Object.entries(expected)) {
        if (json[field] !== value) add(c, label, field, value, json[field]);
      }
    }
    if (offsetStable) {
      const expected = BigInt(ref.timestampNs) + startOffset;
      const got = isoToNs(json.time as string);
      const diff = got > expected ? got - expected : expected - got;
      // Both offsets come from bracketed reads of a clock pair whose difference is constant
      // between steps; 2 µs covers the two measurements' error.
      if (diff > 2000n) {
        add(c, label, "time (vs reference offset, ±2 µs)", isoFromNs(expected), json.time);
      }
    }
  }
  for (const e of jsonEvents) {
    if (!matched.has(e)) {
      const pid = (e.type === "fork" ? e.childPid : e.pid) as number;
      add(
        caseAt(pid, BigInt(e.timestampNs as string)),
        eventKey(e.type as string, e),
        "event",
        new Note("none (not sent by the kernel)"),
        e,
      );
    }
  }

  // 2. Context against the workload's truth (and the kernel's own stamps for durations).
  for (const { ref, json } of pairs) {
    const pid = (ref.what === "fork" ? ref.fields.childPid : ref.fields.pid) as number;
    const ts = BigInt(ref.timestampNs);
    const life = lifeAt(pid, ts);
    const p = life?.truth;
    const label = describeRaw(ref);
    if (life === undefined || p === undefined) {
      add("?", label, "truth", new Note("a process the workload made"), new Note("unknown pid"));
      continue;
    }
    const context = json.process as Json | undefined;
    if (context === undefined) {
      add(p.case, label, "process", new Note("context"), undefined);
      continue;
    }
    const own = life.events;
    const image = own.filter((e) => e.what === "exec" && BigInt(e.timestampNs) <= ts).length;
    const intermediate = image < p.images.length - 1;
    const renames = own.filter((e) =>
      e.what === "comm" && e.fields.tid === pid && BigInt(e.timestampNs) <= ts
    );
    const truthImage = p.images[Math.min(image, p.images.length - 1)];

    // cmdline: the image's own argv; null only for an image replaced by a later exec, with a reason.
    const cmdline = context.cmdline;
    // The rule is "cmdline: null plus a reason": any field named like one
    // (e.g. `cmdlineUnknown: "replaced"`) with a non-empty string.
    const reason = Object.entries(context).find(([key, value]) =>
      /reason|unknown/i.test(key) && typeof value === "string" && value !== ""
    );
    // A final image that lived under SHORT_LIVED_NS may have ended before procwatch could read
    // it: `procGone: true` with a null cmdline says so honestly (README: "When /proc was
    // already gone, the event says so"). Counted and printed, not hidden.
    const imageStart = image === 0
      ? life.forkNs ?? undefined
      : BigInt(own.filter((e) => e.what === "exec")[image - 1].timestampNs);
    const lastExit = own.filter((e) => e.what === "exit").pop();
    const shortLived = !intermediate && imageStart !== undefined && lastExit !== undefined &&
      BigInt(lastExit.timestampNs) - imageStart < SHORT_LIVED_NS;
    const unread = cmdline === null && context.procGone === true && shortLived;
    if (unread && imageStart !== undefined && lastExit !== undefined) {
      const lived = Number(BigInt(lastExit.timestampNs) - imageStart) / 1e6;
      unnamed.add(`${p.case}: pid ${pid} ${show(truthImage.argv)} (lived ${lived.toFixed(1)} ms)`);
    }
    if (cmdline === null && (intermediate || unread)) {
      if (intermediate && reason === undefined) {
        add(
          p.case,
          label,
          "process.cmdline",
          new Note(`${show(truthImage.argv)} or null + reason`),
          new Note("null, no reason field"),
        );
      }
    } else if (JSON.stringify(cmdline) !== JSON.stringify(truthImage.argv)) {
      const gone = context.procGone === true ? " (procGone)" : "";
      add(
        p.case,
        `${label} (image ${image})`,
        "process.cmdline",
        truthImage.argv,
        new Note(`${show(cmdline)}${gone}`),
      );
    }
    // comm: the image's name, or the last name the process gave itself.
    const comm = renames.length > 0 ? renames[renames.length - 1].fields.comm : truthImage.comm;
    if (context.comm !== comm && !(context.comm === null && (intermediate || unread))) {
      add(p.case, `${label} (image ${image})`, "process.comm", comm, context.comm);
    }
    // ppid: the parent at the event's time; after the parent's exit, the (sub)reaper. The
    // re-parenting (exit_notify() in kernel/exit.c) comes before the parent's exit event
    // (proc_exit_connector() follows it) and before the orphan saw getppid() change.
    let ppid = p.parent;
    if (p.reparent) {
      const parentLife = life.forkNs === null ? undefined : lifeAt(p.reparent.after, life.forkNs);
      const parentExit = (parentLife?.events ?? []).find((e) =>
        e.what === "exit" && e.fields.tid === p.reparent?.after
      );
      let movedBy = BigInt(p.reparent.seenNs);
      if (parentExit && BigInt(parentExit.timestampNs) < movedBy) {
        movedBy = BigInt(parentExit.timestampNs);
      }
      if (ts > movedBy) ppid = p.reparent.to;
    }
    if (context.ppid !== ppid) add(p.case, label, "process.ppid", ppid, context.ppid);

    // durationNs at exit: the process's life for its main thread, a thread's own life for a thread.
    if (ref.what !== "exit" || pid === truth.root) continue;
    const tid = ref.fields.tid as number;
    const got = context.durationNs === null || context.durationNs === undefined
      ? null
      : Number(context.durationNs as string);
    const started = tid === pid
      ? life.forkNs ?? undefined
      : (threadForks.get(tid) ?? []).findLast((cloneNs) => cloneNs <= ts);
    if (started === undefined) {
      add(
        p.case,
        label,
        "truth: fork event",
        new Note("seen by the reference"),
        new Note("missing"),
      );
      continue;
    }
    const kernelNs = Number(ts - started);
    if (got === null || Math.abs(got - kernelNs) > tolerance(kernelNs)) {
      add(p.case, label, "process.durationNs (kernel fork→exit)", kernelNs, got);
    }
    // The workload's own bracket: fork/clone and exit each lie between two of its clock reads.
    const own2 = tid === pid ? p : threadTruth(tid, started);
    const final = own[own.length - 1] === ref;
    if (own2 !== undefined && own2.endAfter !== null && (tid !== pid || final)) {
      const low = Math.max(
        own2.endBefore === null ? 0 : own2.endBefore - own2.startAfter,
        own2.minLifetimeNs ?? 0,
      );
      const high = own2.endAfter - own2.startBefore;
      if (got === null || got < low - tolerance(low) || got > high + tolerance(high)) {
        add(
          p.case,
          label,
          "process.durationNs (workload's clock)",
          new Note(`${low}..${high}`),
          got,
        );
      }
    }
  }

  // 2b. `wait` ends with the status the parent's waitpid() got, when the whole process ends.
  for (const { pid, code, result } of observed.waited) {
    const p = truth.processes.find((p) => p.waited === true && p.pid === pid);
    const c = p?.case ?? "?";
    const status = p?.status ?? null;
    const shell = status === null
      ? null
      : (status & 0x7f) === 0
      ? (status >> 8) & 0xff
      : 128 + (status & 0x7f);
    if (code !== shell) add(c, `wait ${pid}`, "wait exit code", shell, code);
    if (result?.status !== status) add(c, `wait ${pid}`, "wait status", status, result?.status);
    const exits = (p === undefined ? [] : truthLife.get(p)?.events ?? []).filter((e) =>
      e.what === "exit"
    );
    const end = exits[exits.length - 1];
    if (
      end !== undefined && typeof result?.timestampNs === "string" &&
      BigInt(result.timestampNs) < BigInt(end.timestampNs)
    ) {
      add(
        c,
        `wait ${pid}`,
        "wait timestampNs (not before the process's end)",
        end.timestampNs,
        result.timestampNs,
      );
    }
  }

  // 1b. `-p ROOT --threads`: the root's own events, and a fork counts for parent and child, but
  // a new thread belongs to its process: the kernel reports the process's parent as the
  // thread's parent (copy_process() with CLONE_THREAD keeps real_parent), so a thread of a
  // child of ROOT must not show up.
  const wanted = refEvents.filter((e) =>
    e.what === "fork"
      ? e.fields.childPid === truth.root || (e.fields.parentPid === truth.root && !e.fields.thread)
      : e.fields.pid === truth.root
  );
  const seenByPid = new Set(
    observed.onlyRoot.filter((e) => e.type !== "lost").map((e) =>
      `${eventKey(e.type as string, e)}@${e.timestampNs}`
    ),
  );
  const wantedKeys = new Set<string>();
  for (const e of wanted) {
    const key = `${eventKey(e.what, e.fields)}@${e.timestampNs}`;
    wantedKeys.add(key);
    if (!seenByPid.has(key)) {
      add(
        rootTruth.case,
        describeRaw(e),
        "watch -p ROOT: event",
        new Note("shown"),
        new Note("missing"),
      );
    }
  }
  for (const e of observed.onlyRoot.filter((e) => e.type !== "lost")) {
    if (BigInt(e.timestampNs as string) < goNs) continue;
    if (!wantedKeys.has(`${eventKey(e.type as string, e)}@${e.timestampNs}`)) {
      const pid = (e.type === "fork" ? e.childPid : e.pid) as number;
      add(
        caseAt(pid, BigInt(e.timestampNs as string)),
        eventKey(e.type as string, e),
        "watch -p ROOT: event",
        new Note("not shown"),
        e,
      );
    }
  }

  // 3. Human lines: same events, and the time column equal to the JSON time in local time.
  const humanByKey = new Map<string, { micros: bigint; line: string }[]>();
  const humanLine = /^(\d\d):(\d\d):(\d\d)\.(\d{6}) (\S+) +(\d+) (.*)$/;
  for (const line of observed.human) {
    const m = humanLine.exec(line);
    if (!m) continue;
    const [, h, min, s, us, type, pidText, rest] = m;
    const thread = /(?:^|\s)(?:tid|thread) (\d+)(?:\s|$)/.exec(rest);
    const pid = Number(pidText);
    const tid = thread ? Number(thread[1]) : pid;
    const key = `${type}/${pid}/${tid}`;
    const micros = BigInt((Number(h) * 60 + Number(min)) * 60 + Number(s)) * 1_000_000n +
      BigInt(us);
    humanByKey.set(key, [...(humanByKey.get(key) ?? []), { micros, line }]);
  }
  const jsonByIdentity = new Map<string, Json[]>();
  for (const e of observed.json.filter((e) => e.type !== "lost")) {
    const key = eventKey(e.type as string, e);
    jsonByIdentity.set(key, [...(jsonByIdentity.get(key) ?? []), e]);
  }
  const day = 86_400_000_000n;
  for (const key of new Set([...jsonByIdentity.keys(), ...humanByKey.keys()])) {
    const js = jsonByIdentity.get(key) ?? [];
    const hs = humanByKey.get(key) ?? [];
    const pid = Number(key.split("/")[1]);
    const caseOf = () => js.length > 0 ? caseAt(pid, BigInt(js[0].timestampNs as string)) : "?";
    if (js.length !== hs.length) {
      add(caseOf(), key, "human lines", js.length, hs.length);
      continue;
    }
    js.forEach((e, i) => {
      const expected = localMicrosOfDay(isoToNs(e.time as string));
      let diff = hs[i].micros - expected;
      if (diff < 0n) diff = -diff;
      if (diff > day / 2n) diff = day - diff;
      // Two processes measure the same wall-clock offset; truncating to µs may differ by one.
      if (diff > 1n) {
        add(caseOf(), key, "human time (±1 µs)", fromMicros(expected), hs[i].line.slice(0, 15));
      }
    });
  }
  return rows;
}

function fromMicros(micros: bigint): string {
  const pad = (n: bigint, w = 2) => String(n).padStart(w, "0");
  const s = micros / 1_000_000n;
  return `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}.${pad(micros % 1_000_000n, 6)}`;
}

/** ISO 8601 UTC with nanoseconds from nanoseconds since the epoch. */
export function isoFromNs(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString();
  return iso.replace(/\.\d{3}Z$/, `.${String(ns % 1_000_000_000n).padStart(9, "0")}Z`);
}
