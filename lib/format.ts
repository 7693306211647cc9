/**
 * Turning events into output lines: JSON lines and forkstat-style text.
 * Pure: the process name comes from the caller.
 *
 * @module
 */

import type { ProcEvent } from "./events.ts";

/**
 * ISO 8601 UTC time with nanoseconds from a kernel timestamp and the wall
 * clock offset (`Date` keeps only milliseconds).
 *
 * @example
 * ```ts
 * import { isoTimeNs } from "./format.ts";
 * console.log(isoTimeNs(1n, 1_700_000_000_000_000_000n)); // "2023-11-14T22:13:20.000000001Z"
 * ```
 */
export function isoTimeNs(timestampNs: bigint, wallOffsetNs: bigint): string {
  const wall = timestampNs + wallOffsetNs;
  const seconds = wall / 1_000_000_000n;
  const fraction = (wall % 1_000_000_000n).toString().padStart(9, "0");
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, `.${fraction}Z`);
}

/**
 * The JSON-ready form of an event: the same field names as the TypeScript
 * event; `timestampNs` as a decimal string (exact beyond 2^53) and `time` as
 * an ISO string with nanoseconds. `extra` fields are added after the event's.
 *
 * @example
 * ```ts
 * import { eventToJson } from "./format.ts";
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
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key === "timestampNs") out[key] = String(value);
    else if (key === "time") out[key] = isoTimeNs(event.timestampNs, wallOffsetNs);
    else out[key] = value;
  }
  if (extra) Object.assign(out, extra);
  return JSON.stringify(out);
}

/** Local time of day with microseconds, as forkstat prints it. */
export function clockTime(time: Date, timestampNs: bigint): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const micros = Number((timestampNs / 1000n) % 1_000_000n);
  return `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${
    pad(micros, 6)
  }`;
}

/** How an exit ended, in words: `exited with code 3`, `killed by SIGKILL (core dumped)`. */
export function describeExit(
  exit: { exitCode: number | null; signal: string | null; coreDumped: boolean },
): string {
  if (exit.exitCode !== null) return `exited with code ${exit.exitCode}`;
  return `killed by ${exit.signal}${exit.coreDumped ? " (core dumped)" : ""}`;
}

/**
 * One human-readable line: time, event, pid, details, process name.
 *
 * @example
 * ```ts
 * import { humanLine } from "./format.ts";
 * console.log(humanLine({
 *   type: "exec", pid: 42, tid: 42, cpu: 0, timestampNs: 5n, time: new Date(0),
 * }, "ls"));
 * ```
 */
export function humanLine(event: ProcEvent, name: string): string {
  const time = clockTime(event.time, event.timestampNs);
  const label = event.type.padEnd(8);
  switch (event.type) {
    case "lost":
      return `${time} ${label} ${String(event.count).padStart(7)} events lost (${event.reason}${
        event.cpu === null ? "" : `, cpu ${event.cpu}`
      })`;
    case "fork":
      return `${time} ${label} ${String(event.childPid).padStart(7)} ${
        (event.thread ? `thread ${event.childTid} of` : "parent").padEnd(18)
      } ${event.thread ? "" : event.parentPid} ${name}`.replace(/ {2,}$/, " ");
    default:
      return `${time} ${label} ${String(event.pid).padStart(7)} ${
        details(event).padEnd(25)
      } ${name}`;
  }
}

function details(event: Exclude<ProcEvent, { type: "fork" | "lost" }>): string {
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
      return `${thread}renamed ${JSON.stringify(event.comm)}`;
    case "coredump":
      return `${thread}parent ${event.parentPid ?? "?"}`;
    case "exit":
      return `${thread}${describeExit(event)}`;
  }
}
