/**
 * Checks of `watch`'s options that need more than one option or the system:
 * conflicting formats, `-x` without JSON, pids that are threads or name no
 * process, and `-r` without the privilege for it.
 *
 * @module
 */

import { warn } from "../lib/format/mod.ts";
import { checkProcessId, raisePriority } from "../lib/process/mod.ts";
import { ErrnoError, UsageError } from "../mod.ts";

/** Output formats of `watch`. */
export const FORMATS = ["human", "json", "tree"] as const;

/** One of {@linkcode FORMATS}. */
export type WatchFormat = (typeof FORMATS)[number];

/**
 * Parses `--format`.
 *
 * @example
 * ```ts
 * import { parseFormat } from "./watch_input.ts";
 * console.log(parseFormat("tree")); // "tree"
 * ```
 */
export function parseFormat(text: string): WatchFormat {
  if (!(FORMATS as readonly string[]).includes(text)) {
    throw new UsageError(`unknown format '${text}' (known: ${FORMATS.join(", ")})`);
  }
  return text as WatchFormat;
}

/** The options {@linkcode checkWatchInput} looks at. */
export interface WatchInput {
  pid?: readonly number[];
  tree?: number;
  ppid?: number;
  json?: true;
  format?: string;
  context?: true;
}

/**
 * Checks the options together and returns the output format. Throws
 * {@linkcode UsageError} (exit 2) for `--json` with another `--format`, for
 * `-x` without JSON output, and for a thread id given as `-p`, `--tree` or
 * `--ppid` (the same check as `wait`); `NoSuchProcessError` (exit 7) when
 * one of those pids names no process: such a filter could never match.
 *
 * @example
 * ```ts
 * import { checkWatchInput } from "./watch_input.ts";
 * console.log(checkWatchInput({ json: true, pid: [1] })); // "json"
 * ```
 */
export function checkWatchInput(options: WatchInput): WatchFormat {
  const format = options.format === undefined ? undefined : parseFormat(options.format);
  if (options.json && format !== undefined && format !== "json") {
    throw new UsageError(
      `--json conflicts with --format ${format}: --json means --format json; give one of them`,
    );
  }
  const chosen = options.json ? "json" : (format ?? "human");
  if (options.context && chosen !== "json") {
    throw new UsageError(
      `-x/--context adds the process context to JSON output: use it with --json (${chosen} output always shows the context)`,
    );
  }
  for (const pid of options.pid ?? []) checkProcessId(pid, "use -p");
  if (options.tree !== undefined) checkProcessId(options.tree, "use --tree");
  if (options.ppid !== undefined) checkProcessId(options.ppid, "use --ppid");
  return chosen;
}

/**
 * `-r`: raises procwatch to real-time priority. Without the privilege for it
 * (`sched_setscheduler(2)` fails with `EPERM` for a user without
 * `CAP_SYS_NICE` and without an `RLIMIT_RTPRIO` allowance) it warns on stderr
 * and carries on at normal priority: the events are the same, only the
 * naming of the shortest-lived processes is less certain. Returns whether
 * the priority was raised. Other errors propagate.
 *
 * @example
 * ```ts
 * import { raiseRealtimeOrWarn } from "./watch_input.ts";
 * raiseRealtimeOrWarn();
 * ```
 */
export function raiseRealtimeOrWarn(): boolean {
  try {
    raisePriority("realtime");
    return true;
  } catch (error) {
    if (!(error instanceof ErrnoError) || error.errnoName !== "EPERM") throw error;
    warn(
      "procwatch: warning: -r ignored: real-time priority needs root (CAP_SYS_NICE) or an RLIMIT_RTPRIO allowance (sched_setscheduler: EPERM); carrying on at normal priority",
    );
    return false;
  }
}
