/**
 * Turning events into output lines: JSON lines and forkstat-style text.
 * Pure but for the time: the process context comes with the event
 * (`event.process`), the wall-clock offset from `wallClock` unless given.
 *
 * @module
 */

import { shortContainerId } from "../process/cgroup_path.ts";
import type { LostEvent, ProcessInfo, ProcEvent } from "../events/events.ts";
import { EVENT_TABLE, type EventType, KIND_COLOURS } from "../events/event_types.ts";
import { commandLine } from "../process/proc_parse.ts";
import { wallClock } from "../events/wall_clock.ts";

/**
 * ISO 8601 UTC time with nanoseconds from a kernel timestamp and the wall
 * clock offset (`Date` keeps only milliseconds).
 *
 * @example
 * ```ts
 * import { isoTimeNs } from "@procwatch/procwatch/format";
 * console.log(isoTimeNs(1n, 1_700_000_000_000_000_000n)); // "2023-11-14T22:13:20.000000001Z"
 * ```
 */
export function isoTimeNs(timestampNs: bigint, wallOffsetNs: bigint): string {
  const wall = timestampNs + wallOffsetNs;
  const seconds = wall / 1_000_000_000n;
  const fraction = String(wall - seconds * 1_000_000_000n);
  // Events come in bursts within one second: the date part is made once per
  // second (a `Date` and its ISO text cost more than the rest of a JSON line).
  if (seconds !== isoSecond) {
    isoPrefix = new Date(Number(seconds) * 1000).toISOString().slice(0, -4); // drop ".mmmZ"
    isoSecond = seconds;
  }
  return `${isoPrefix}${"000000000".slice(fraction.length)}${fraction}Z`;
}

let isoSecond = -1n;
let isoPrefix = "";

/**
 * The JSON-ready form of an event: the same field names as the TypeScript
 * event (`process` included, when present); `timestampNs` and other
 * nanosecond counts as decimal strings (exact beyond 2^53) and `time` as an
 * ISO string with nanoseconds. `extra` fields are added after the event's.
 *
 * @example
 * ```ts
 * import { eventToJson } from "@procwatch/procwatch/format";
 * const line = eventToJson({
 *   type: "exec", pid: 42, tid: 42, cpu: 0, timestampNs: 5n, time: new Date(0),
 * }, 0n);
 * console.log(line); // {"type":"exec","cpu":0,"timestampNs":"5",...}
 * ```
 */
export function eventToJson(
  event: ProcEvent,
  wallOffsetNs: bigint,
  extra?: Record<string, unknown>,
): string {
  if (extra !== undefined) return eventToJsonSlow(event, wallOffsetNs, extra);
  const known = knownEventJson(event, wallOffsetNs);
  if (known !== undefined) return known;
  // Written straight from the event, key by key in its own order, as
  // JSON.stringify would (the output is byte-identical to eventToJsonSlow's,
  // tests/format_test.ts compares them): no intermediate object and no
  // replacer callback per value, which were most of `watch --json`'s CPU.
  let out = "{";
  let first = true;
  for (const key in event) {
    const value = (event as unknown as Record<string, unknown>)[key];
    const text = key === "time"
      ? `"${isoTimeNs(event.timestampNs, wallOffsetNs)}"`
      : jsonValue(value);
    if (text === undefined) continue;
    out += first ? quotedKey(key) + text : "," + quotedKey(key) + text;
    first = false;
  }
  return out + "}";
}

/**
 * The keys of each event type in the order lib/connector/decode.ts (and
 * lostEventNow()) create them; `process` may follow. An event with exactly
 * these keys is written by {@linkcode knownEventJson}'s template for its type.
 */
const KNOWN_KEYS: ReadonlyMap<string, readonly string[]> = new Map(Object.entries({
  fork: ["parentPid", "parentTid", "childPid", "childTid", "thread"],
  exec: ["pid", "tid"],
  uid: ["pid", "tid", "ruid", "euid"],
  gid: ["pid", "tid", "rgid", "egid"],
  sid: ["pid", "tid"],
  ptrace: ["pid", "tid", "tracerPid", "tracerTid"],
  comm: ["pid", "tid", "comm"],
  coredump: ["pid", "tid", "parentPid", "parentTid"],
  exit: [
    "pid",
    "tid",
    "exitCode",
    "signal",
    "coreDumped",
    "status",
    "exitSignal",
    "parentPid",
    "parentTid",
  ],
  lost: ["count", "reason", "exact"],
}));
const HEAD_KEYS = ["type", "cpu", "timestampNs", "time"];

/** Set by the value writers below when a value is not of a type their template expects. */
let unexpected = false;

/** A number or `null` as JSON.stringify writes it (non-finite numbers: `null`). */
function num(value: unknown): string | number {
  if (typeof value === "number") return value - value === 0 ? value : "null";
  if (value !== null) unexpected = true;
  return "null";
}

function str(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value !== null) unexpected = true;
  return "null";
}

function bool(value: unknown): string {
  if (typeof value !== "boolean") unexpected = true;
  return value ? "true" : "false";
}

/**
 * The JSON line of an event whose keys are its type's {@linkcode KNOWN_KEYS}
 * (every event the watcher makes), written from one template per type:
 * `watch --json` writes one per event, and the generic key-by-key writer
 * below costs several times more (a megamorphic read per key). `undefined`
 * for any other event (more, fewer or reordered keys, a value of another
 * type), which the generic writer then writes: the output is byte-identical
 * either way (tests/output_units_test.ts).
 */
function knownEventJson(event: ProcEvent, wallOffsetNs: bigint): string | undefined {
  const keys = KNOWN_KEYS.get(event.type);
  if (keys === undefined || typeof event.timestampNs !== "bigint") return undefined;
  // The same keys in the same order as JSON.stringify would write them.
  let i = 0;
  let process = false;
  for (const key in event) {
    if (i < 4) {
      if (key !== HEAD_KEYS[i]) return undefined;
    } else if (i - 4 < keys.length) {
      if (key !== keys[i - 4]) return undefined;
    } else if (key === "process" && !process) {
      process = true;
      continue;
    } else return undefined;
    i++;
  }
  if (i !== 4 + keys.length) return undefined;
  unexpected = false;
  const head = `{"type":"${event.type}","cpu":${
    num(event.cpu)
  },"timestampNs":"${event.timestampNs}","time":"${isoTimeNs(event.timestampNs, wallOffsetNs)}"`;
  let out: string;
  switch (event.type) {
    case "fork":
      out = `${head},"parentPid":${num(event.parentPid)},"parentTid":${
        num(event.parentTid)
      },"childPid":${num(event.childPid)},"childTid":${num(event.childTid)},"thread":${
        bool(event.thread)
      }`;
      break;
    case "exec":
    case "sid":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)}`;
      break;
    case "uid":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"ruid":${
        num(event.ruid)
      },"euid":${num(event.euid)}`;
      break;
    case "gid":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"rgid":${
        num(event.rgid)
      },"egid":${num(event.egid)}`;
      break;
    case "ptrace":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"tracerPid":${
        num(event.tracerPid)
      },"tracerTid":${num(event.tracerTid)}`;
      break;
    case "comm":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"comm":${str(event.comm)}`;
      break;
    case "coredump":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"parentPid":${
        num(event.parentPid)
      },"parentTid":${num(event.parentTid)}`;
      break;
    case "exit":
      out = `${head},"pid":${num(event.pid)},"tid":${num(event.tid)},"exitCode":${
        num(event.exitCode)
      },"signal":${str(event.signal)},"coreDumped":${bool(event.coreDumped)},"status":${
        num(event.status)
      },"exitSignal":${num(event.exitSignal)},"parentPid":${num(event.parentPid)},"parentTid":${
        num(event.parentTid)
      }`;
      break;
    case "lost":
      out = `${head},"count":${num(event.count)},"reason":${str(event.reason)},"exact":${
        bool(event.exact)
      }`;
      break;
    default:
      return undefined;
  }
  if (unexpected) return undefined;
  if (process) {
    const text = jsonValue(event.process);
    if (text !== undefined) out += `,"process":${text}`;
  }
  return out + "}";
}

/** The object form {@linkcode eventToJson} wrote before its fast path: its reference. */
function eventToJsonSlow(
  event: ProcEvent,
  wallOffsetNs: bigint,
  extra?: Record<string, unknown>,
): string {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key === "time") out[key] = isoTimeNs(event.timestampNs, wallOffsetNs);
    else out[key] = value;
  }
  if (extra) Object.assign(out, extra);
  return JSON.stringify(out, bigintAsString);
}

function bigintAsString(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? String(value) : value;
}

const KEYS = new Map<string, string>();

function quotedKey(key: string): string {
  let quoted = KEYS.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key) + ":";
    if (KEYS.size < 256) KEYS.set(key, quoted);
  }
  return quoted;
}

/**
 * One value as JSON.stringify with {@linkcode bigintAsString} writes it;
 * `undefined` where it would leave the key out.
 */
function jsonValue(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? String(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return `"${value}"`;
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ",";
          out += jsonValue(value[i]) ?? "null";
        }
        return out + "]";
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) {
        return JSON.stringify(value, bigintAsString); // a Date or other toJSON owner
      }
      let out = "{";
      let first = true;
      for (const key in value) {
        const text = jsonValue((value as Record<string, unknown>)[key]);
        if (text === undefined) continue;
        out += first ? quotedKey(key) + text : "," + quotedKey(key) + text;
        first = false;
      }
      return out + "}";
    }
    default:
      return undefined; // undefined, functions and symbols are left out
  }
}

/** @internal The reference eventToJson's fast path must equal, for tests. */
export const eventToJsonReference = eventToJsonSlow;

let clockSecond = Number.NaN;
let clockPrefix = "";

/**
 * Local time of day with microseconds, as forkstat prints it, of a wall-clock
 * time in ns since the epoch: the same instant as {@linkcode isoTimeNs} prints,
 * its digits truncated alike. The `HH:MM:SS` part is kept per second, so
 * consecutive events cost no `Date`.
 *
 * @example
 * ```ts
 * import { clockTime } from "@procwatch/procwatch/format";
 * console.log(clockTime(1_700_000_000_123_456_789n)); // "22:13:20.123456" in UTC
 * ```
 */
export function clockTime(wallNs: bigint): string {
  const second = Number(wallNs / 1_000_000_000n);
  if (second !== clockSecond) {
    const time = new Date(second * 1000);
    clockPrefix = `${pad2(time.getHours())}:${pad2(time.getMinutes())}:${pad2(time.getSeconds())}.`;
    clockSecond = second;
  }
  return clockPrefix + String(Number((wallNs % 1_000_000_000n) / 1000n)).padStart(6, "0");
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * How an exit ended, in words: `exited with code 3`, `killed by SIGKILL (core dumped)`.
 *
 * @example
 * ```ts
 * import { describeExit } from "@procwatch/procwatch/format";
 * console.log(describeExit({ exitCode: null, signal: "SIGSEGV", coreDumped: true }));
 * // "killed by SIGSEGV (core dumped)"
 * ```
 */
export function describeExit(
  exit: { exitCode: number | null; signal: string | null; coreDumped: boolean },
): string {
  if (exit.exitCode !== null) return `exited with code ${exit.exitCode}`;
  return `killed by ${exit.signal}${exit.coreDumped ? " (core dumped)" : ""}`;
}

/**
 * An exit status in a few characters: `0`, `3`, `SIGKILL`, `SIGSEGV+core`
 * (forkstat prints the raw 768 for `exit 3`).
 *
 * @example
 * ```ts
 * import { shortExit } from "@procwatch/procwatch/format";
 * console.log(shortExit({ exitCode: 3, signal: null, coreDumped: false })); // "3"
 * ```
 */
export function shortExit(
  exit: { exitCode: number | null; signal: string | null; coreDumped: boolean },
): string {
  if (exit.exitCode !== null) return String(exit.exitCode);
  return `${exit.signal}${exit.coreDumped ? "+core" : ""}`;
}

/**
 * A duration in seconds with millisecond precision: `0.003s`, `12.500s`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "@procwatch/procwatch/format";
 * console.log(formatDuration(2_500_000n)); // "0.003s"
 * ```
 */
export function formatDuration(ns: bigint): string {
  return `${(Number(ns) / 1e9).toFixed(3)}s`;
}

/**
 * Escapes what a terminal or `grep` would misread in a name: C0 control
 * characters (`\n`, `\t`, `\r`, ESC as `\x1b`, the others as `\xNN`), DEL
 * (`\x7f`), C1 controls (`\u0080`–`\u009f`) and the backslash itself (`\\`),
 * so that one event stays one line and escape sequences are shown, not run.
 * Text without those characters is returned unchanged. Bytes that were not
 * valid UTF-8 arrive here already replaced by U+FFFD (see lib/process/proc_parse.ts).
 *
 * @example
 * ```ts
 * import { escapeText } from "@procwatch/procwatch/format";
 * console.log(escapeText("a\nb\x1b[31m")); // a\nb\x1b[31m (as backslash sequences)
 * ```
 */
export function escapeText(text: string): string {
  // deno-lint-ignore no-control-regex
  if (!/[\x00-\x1f\x7f-\x9f\\]/.test(text)) return text;
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (char) => {
    const code = char.charCodeAt(0);
    switch (char) {
      case "\\":
        return "\\\\";
      case "\n":
        return "\\n";
      case "\t":
        return "\\t";
      case "\r":
        return "\\r";
    }
    const hex = code.toString(16).padStart(2, "0");
    return code >= 0x80 ? `\\u00${hex}` : `\\x${hex}`;
  });
}

/**
 * A command line for human output, on one line: each argument as
 * {@linkcode commandLine} quotes it for a POSIX shell, except an argument
 * holding control characters, which is written in bash's `$'...'` notation
 * with {@linkcode escapeText}'s escapes (`$'a\nb'`): unambiguous, and
 * pasteable into bash, zsh or ksh.
 *
 * @example
 * ```ts
 * import { humanCommandLine } from "@procwatch/procwatch/format";
 * console.log(humanCommandLine(["printf", "a\nb"])); // printf $'a\nb'
 * ```
 */
export function humanCommandLine(argv: readonly string[]): string {
  // The same argv array comes with every event of a process and of the
  // children it forks (the table shares it): quote it once.
  let text = labels.get(argv);
  if (text === undefined) {
    text = quoteCommandLine(argv);
    labels.set(argv, text);
  }
  return text;
}

/** Each argv array's text; arrays are never changed once made (lib/process/table.ts). */
const labels = new WeakMap<readonly string[], string>();

function quoteCommandLine(argv: readonly string[]): string {
  // deno-lint-ignore no-control-regex
  const control = /[\x00-\x1f\x7f-\x9f]/;
  if (!argv.some((arg) => control.test(arg))) return commandLine(argv);
  return argv.map((arg) =>
    control.test(arg) ? `$'${escapeText(arg).replaceAll("'", "\\'")}'` : commandLine([arg])
  ).join(" ");
}

/**
 * The process column: the command line when known, else `[comm]`, else `?`;
 * control characters escaped ({@linkcode humanCommandLine}, {@linkcode escapeText}).
 *
 * @example
 * ```ts
 * import { processLabel } from "@procwatch/procwatch/format";
 * console.log(processLabel({ comm: "kworker/0:1", cmdline: [] })); // "[kworker/0:1]"
 * ```
 */
export function processLabel(
  info: { comm: string | null; cmdline: readonly string[] | null } | undefined,
): string {
  if (info === undefined) return "";
  if (info.cmdline !== null && info.cmdline.length > 0) return humanCommandLine(info.cmdline);
  return info.comm === null ? "?" : `[${escapeText(info.comm)}]`;
}

/**
 * `1 event`, `2 events`: a count with its noun, singular or plural.
 *
 * @example
 * ```ts
 * import { plural } from "@procwatch/procwatch/format";
 * console.log(plural(1, "event"), plural(3, "event")); // "1 event 3 events"
 * ```
 */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/**
 * A size in bytes as people write it: `32 MiB`, `416 KiB`, `1000 bytes`
 * (binary units, exact to one decimal).
 *
 * @example
 * ```ts
 * import { formatBytes } from "@procwatch/procwatch/format";
 * console.log(formatBytes(33554432)); // "32 MiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1 << 10]] as const) {
    if (bytes >= size) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
    }
  }
  return plural(bytes, "byte");
}

/**
 * Why a `lost` event's events were lost, in words.
 *
 * @example
 * ```ts
 * import { lossReason } from "@procwatch/procwatch/format";
 * console.log(lossReason("output")); // "stdout was not being read: output dropped"
 * ```
 */
export function lossReason(reason: LostEvent["reason"]): string {
  switch (reason) {
    case "kernel":
      return "the kernel dropped them: socket buffer full";
    case "queue":
      return "procwatch's queue was full";
    case "output":
      return "stdout was not being read: output dropped";
    case "export":
      return "the exporter's spool was full: not exported";
  }
}

/**
 * How to draw human output.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { humanLine, type Style } from "@procwatch/procwatch/format";
 *
 * const style: Style = { color: Deno.stdout.isTerminal() && !Deno.noColor };
 * for await (const event of watch()) console.log(humanLine(event, style));
 * ```
 */
export interface Style {
  /** Use ANSI colours (only on a terminal, and never with `NO_COLOR`). */
  color: boolean;
}

/** Each kind's colour, from the event-type table (lib/events/event_types.ts). */
const COLORS: Readonly<Record<string, string>> = KIND_COLOURS;

/** The Event column of each type, padded to its 8 characters once. */
const LABEL_CELLS = Object.fromEntries(
  EVENT_TABLE.map((row) => [row.type, row.label.padEnd(8)]),
) as Record<EventType, string>;

/**
 * Wraps `text` in the ANSI colour of `kind` when `style.color` is set.
 *
 * @example
 * ```ts
 * import { paint } from "./text.ts";
 * console.log(paint("exec", "exec", { color: false })); // "exec"
 * ```
 */
export function paint(text: string, kind: string, style: Style): string {
  const code = COLORS[kind];
  return style.color && code !== undefined && code !== "0" ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** Width of the container/unit column (a short container id is 12). */
const PLACE_WIDTH = 14;

/**
 * The header of {@linkcode humanLine}'s columns.
 *
 * @example
 * ```ts
 * import { HUMAN_HEADER } from "@procwatch/procwatch/format";
 * console.log(HUMAN_HEADER); // Time            Event        PID …
 * ```
 */
export const HUMAN_HEADER = `${"Time".padEnd(15)} ${"Event".padEnd(8)} ${"PID".padStart(7)} ${
  "User".padEnd(8)
} ${"TTY".padEnd(6)} ${"Info".padEnd(22)} ${"Duration".padStart(9)} ${
  "Ctr/Unit".padEnd(PLACE_WIDTH)
} Process`;

/**
 * The container/unit column: the container's short id (12 hex digits, as
 * `docker ps` shows it), else the systemd unit, else empty.
 *
 * @example
 * ```ts
 * import { placeLabel } from "./text.ts";
 * console.log(placeLabel({ unit: "cron.service", container: null })); // "cron.service"
 * ```
 */
export function placeLabel(
  info: Pick<ProcessInfo, "unit" | "container"> | undefined,
): string {
  if (info?.container) return shortContainerId(info.container.id);
  return info?.unit ? escapeText(info.unit) : "";
}

/**
 * One human-readable line, forkstat's columns: time, event, pid, user, tty,
 * details (with the decoded exit status), duration at exit, container or
 * unit ({@linkcode placeLabel}), and the process (command line, or name). The process columns come from `event.process`.
 * The time is `timestampNs + wallOffsetNs` in local time, the instant the JSON
 * line's `time` shows; the offset defaults to the process-wide `wallClock`'s,
 * the one the watcher gave `event.time` from.
 *
 * @example
 * ```ts
 * import { humanLine } from "@procwatch/procwatch/format";
 * console.log(humanLine({
 *   type: "exec", pid: 42, tid: 42, cpu: 0, timestampNs: 5n, time: new Date(0),
 * }));
 * ```
 */
export function humanLine(
  event: ProcEvent,
  style: Style = { color: false },
  wallOffsetNs: bigint = wallClock.offsetAt(event.timestampNs),
): string {
  const time = clockTime(event.timestampNs + wallOffsetNs);
  if (event.type === "lost") {
    return `${time} ${paint("lost".padEnd(8), "lost", style)} ${String(event.count).padStart(7)} ${
      event.count === 1 ? "event" : "events"
    } lost (${event.reason}${event.cpu === null ? "" : `, cpu ${event.cpu}`})`;
  }
  const info = event.process;
  const pid = event.type === "fork" ? event.childPid : event.pid;
  const kind = event.type === "exit" && event.status !== 0 ? "failed" : event.type;
  const user = info?.user ??
    (info?.uid === null || info?.uid === undefined ? "" : String(info.uid));
  const duration = event.type === "exit" && info?.durationNs != null
    ? formatDuration(info.durationNs)
    : "";
  // "(gone)": this event's process had already ended when procwatch read its
  // /proc entry, so the columns show what was known before (the exec
  // capture's record, the parent's at a fork). Never on exit lines: every
  // exiting process is gone, so the mark would say nothing there.
  const gone = info?.procGone && event.type !== "exit" ? " (gone)" : "";
  return `${time} ${paint(LABEL_CELLS[event.type], kind, style)} ${String(pid).padStart(7)} ${
    user.slice(0, 8).padEnd(8)
  } ${(info?.tty ?? "").padEnd(6)} ${details(event).padEnd(22)} ${duration.padStart(9)} ${
    placeLabel(info).padEnd(PLACE_WIDTH)
  } ${processLabel(info)}${gone}`.trimEnd();
}

function details(event: Exclude<ProcEvent, { type: "lost" }>): string {
  if (event.type === "fork") {
    return event.thread ? `thread ${event.childTid}` : `child of ${event.parentPid}`;
  }
  const thread = event.tid !== event.pid ? `tid ${event.tid} ` : "";
  switch (event.type) {
    case "exec":
    case "sid":
      return thread;
    case "uid":
      return `${thread}ruid ${event.ruid} euid ${event.euid}`;
    case "gid":
      return `${thread}rgid ${event.rgid} egid ${event.egid}`;
    case "ptrace":
      return event.tracerPid === 0
        ? `${thread}detached`
        : `${thread}attached by ${event.tracerPid}`;
    case "comm":
      return `${thread}renamed ${JSON.stringify(event.comm)}`; // JSON escapes controls too
    case "coredump":
      return `${thread}parent ${event.parentPid ?? "?"}`;
    case "exit":
      return `${thread}exit ${shortExit(event)}`;
  }
}
