/**
 * `procwatch watch`: print process events as they happen.
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { monotonicNs, wallOffsetNs } from "../ffi/clock.ts";
import type { EventType, ProcEvent } from "../lib/events.ts";
import { ExitCode } from "../lib/errors.ts";
import { eventToJson, HUMAN_HEADER, humanLine, type Style } from "../lib/format.ts";
import { EventStats } from "../lib/stats.ts";
import { TreeFormatter } from "../lib/tree_format.ts";
import { watch } from "../lib/watcher.ts";
import { BrokenPipeError, LineWriter, warn } from "./output.ts";
import {
  addEvents,
  addPids,
  addWords,
  once,
  parseBytes,
  parseCount,
  parsePid,
  parseSeconds,
  verbatim,
} from "./parse.ts";
import { checkWatchInput, raiseRealtimeOrWarn } from "./watch_input.ts";
import { onTerminationSignal } from "./signals.ts";

/** Output formats of `watch`. */
export const FORMATS = ["human", "json", "tree"] as const;

/** Options of the `watch` command, as parsed. */
export interface WatchCommandOptions {
  events?: EventType[];
  pid: number[];
  threads?: true;
  duration?: number;
  count?: number;
  json?: true;
  format?: string;
  kernelFilter: boolean;
  buffer?: number;
  verbose?: true;
  tree?: number;
  comm?: string[];
  match?: string;
  uid?: string[];
  ppid?: number;
  failed?: true;
  stats?: true;
  context?: true;
  realtime?: true;
}

/** Builds the `watch` subcommand. */
export function watchCommand(): Command {
  return new Command("watch")
    .description("print process events as they happen (one line each)")
    .option(
      "-e, --events <list>",
      "event types to show, comma-separated: fork,exec,uid,gid,sid,ptrace,comm,coredump,exit or all (repeatable; default: all, or exit,coredump with --failed)",
      addEvents,
    )
    .option(
      "-p, --pid <pid>",
      "only events of these processes (repeatable, or comma-separated)",
      addPids,
    )
    .option(
      "--tree <pid>",
      "only this process and its descendants, existing and future",
      once("--tree", parsePid),
    )
    .option(
      "--comm <name>",
      "only processes with these names (repeatable, or comma-separated)",
      (value: string, previous: string[] | undefined) => addWords("--comm", value, previous),
    )
    .option(
      "--match <regex>",
      "only processes whose command line matches",
      once("--match", verbatim),
    )
    .option(
      "--uid <user>",
      "only processes of these effective users, names or uids (repeatable, or comma-separated)",
      (value: string, previous: string[] | undefined) => addWords("--uid", value, previous),
    )
    .option("--ppid <pid>", "only children of this process", once("--ppid", parsePid))
    .option(
      "--failed",
      "only failed exits (non-zero or signalled) and core dumps; the kernel filters when it can",
    )
    .option("--threads", "also show events of threads other than the main thread")
    .option(
      "-D, --duration <seconds>",
      "stop after this many seconds",
      once("--duration", parseSeconds),
    )
    .option("-n, --count <n>", "stop after this many events", once("--count", parseCount))
    .option("--json", "print one JSON object per line (same as --format json)")
    .option(
      "--format <format>",
      "output format: human, json or tree (default: human)",
      once("--format", verbatim),
    )
    .option("-x, --context", "with --json: add each event's process context (`process`)")
    .option("-S, --stats", "print a summary per event type and process at the end")
    .option(
      "-r, --realtime",
      "run at real-time priority to name even the shortest processes (needs root; else a warning)",
    )
    .option("--no-kernel-filter", "filter event types in procwatch, not in the kernel")
    .option(
      "--buffer <bytes>",
      "socket receive buffer to ask for, e.g. 64M (default: 16M)",
      once("--buffer", parseBytes),
    )
    .option("-v, --verbose", "say on stderr how events are received")
    .action(async (options) => {
      Deno.exitCode = await runWatch({ ...options, pid: options.pid ?? [] });
    }) as unknown as Command;
}

/** Whether to colour output: only on a terminal, and never with `NO_COLOR` set. */
export function useColor(): boolean {
  return !Deno.noColor && Deno.stdout.isTerminal();
}

/** Runs `watch` and returns the exit code. */
export async function runWatch(options: WatchCommandOptions): Promise<number> {
  const format = checkWatchInput(options);
  // --failed alone means "show me failures": exits and core dumps.
  const events = options.events ?? (options.failed ? ["exit", "coredump"] : undefined);
  if (options.realtime) raiseRealtimeOrWarn();

  const watcher = watch({
    events,
    pids: options.pid,
    threads: options.threads ?? false,
    kernelFilter: options.kernelFilter,
    receiveBufferBytes: options.buffer,
    handleSignals: false,
    failedOnly: options.failed ?? false,
    tree: options.tree,
    comm: options.comm,
    match: options.match,
    uid: options.uid,
    ppid: options.ppid,
    context: format !== "json" || (options.context ?? false),
  });
  const started = monotonicNs();
  let exitCode: number = ExitCode.OK;
  const stopSignals = onTerminationSignal((signal) => {
    exitCode = 128 + signal;
    watcher.close();
  });
  const timer = options.duration === undefined
    ? undefined
    : setTimeout(() => watcher.close(), options.duration * 1000);
  await watcher.ready;
  if (options.verbose) {
    warn(
      `procwatch: listening (${
        watcher.filterMode === "kernel" ? "kernel-side event filter" : "filtering in procwatch"
      }, receive buffer ${watcher.receiveBufferBytes} bytes)`,
    );
  }

  const style: Style = { color: useColor() };
  const out = new LineWriter();
  const stats = options.stats ? new EventStats() : undefined;
  const table = watcher.processTable;
  const tree = format === "tree"
    ? new TreeFormatter({
      root: options.tree,
      parentOf: (pid) => table?.get(pid)?.ppid,
      style,
    })
    : undefined;
  let remaining = options.count ?? Infinity;
  try {
    if (format === "human") {
      out.line(HUMAN_HEADER);
      out.flush();
    }
    for await (const batch of watcher.batches()) {
      const offset = wallOffsetNs();
      for (const event of batch) {
        if (event.type === "lost") reportLoss(event);
        stats?.add(event);
        if (tree !== undefined) {
          const line = tree.line(event);
          if (line !== null) out.line(line);
        } else {
          out.line(format === "human" ? humanLine(event, style) : eventToJson(event, offset));
        }
        if (event.type !== "lost" && --remaining === 0) break;
      }
      out.flush();
      if (remaining === 0) break;
    }
    if (stats !== undefined) {
      const seconds = Number(monotonicNs() - started) / 1e9;
      if (format === "json") out.line(JSON.stringify(stats.toJSON(seconds)));
      else for (const line of stats.table(seconds)) out.line(line);
      out.flush();
    }
  } catch (error) {
    if (!(error instanceof BrokenPipeError)) throw error;
  } finally {
    watcher.close();
    clearTimeout(timer);
    stopSignals();
  }
  if (options.verbose) {
    const counters = watcher.stats;
    warn(`procwatch: ${JSON.stringify(counters)}`);
  }
  return exitCode;
}

function reportLoss(event: Extract<ProcEvent, { type: "lost" }>): void {
  warn(
    `procwatch: warning: ${event.count} events lost (${
      event.reason === "kernel"
        ? "the kernel dropped them: socket buffer full"
        : "procwatch's queue was full"
    }${event.cpu === null ? "" : `, cpu ${event.cpu}`})`,
  );
}
