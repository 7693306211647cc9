/**
 * `procwatch watch`: print process events as they happen.
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { monotonicNs } from "../ffi/clock.ts";
import { wallClock } from "../lib/wall_clock.ts";
import { raisePriority } from "../ffi/priority.ts";
import { processExists } from "../ffi/process.ts";
import type { EventType, ProcEvent } from "../lib/events.ts";
import { ExitCode, NoSuchProcessError, UsageError } from "../lib/errors.ts";
import { eventToJson, HUMAN_HEADER, humanLine, type Style } from "../lib/format.ts";
import { EventStats } from "../lib/stats.ts";
import { TreeFormatter } from "../lib/tree_format.ts";
import { watch } from "../lib/watcher.ts";
import { BrokenPipeError, LineWriter, warn } from "./output.ts";
import { parseBytes, parseCount, parseEvents, parsePid, parseSeconds } from "./parse.ts";
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
  uid?: string;
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
      "event types to show, comma-separated: fork,exec,uid,gid,sid,ptrace,comm,coredump,exit or all",
      parseEvents,
    )
    .option(
      "-p, --pid <pid>",
      "only events of this process (repeatable)",
      (value: string, previous: number[]) => [...previous, parsePid(value)],
      [] as number[],
    )
    .option("--tree <pid>", "only this process and its descendants, existing and future", parsePid)
    .option(
      "--comm <name>",
      "only processes with this name (repeatable, or comma-separated)",
      (value: string, previous: string[] | undefined) => [
        ...(previous ?? []),
        ...value.split(",").map((name) => name.trim()),
      ],
    )
    .option("--match <regex>", "only processes whose command line matches")
    .option("--uid <user>", "only processes of this effective user (name or uid)")
    .option("--ppid <pid>", "only children of this process", parsePid)
    .option(
      "--failed",
      "only failed exits (non-zero or signalled) and core dumps; the kernel filters when it can",
    )
    .option("--threads", "also show events of threads other than the main thread")
    .option("-D, --duration <seconds>", "stop after this many seconds", parseSeconds)
    .option("-n, --count <n>", "stop after this many events", parseCount)
    .option("--json", "print one JSON object per line (same as --format json)")
    .option("--format <format>", "output format: human, json or tree")
    .option("-x, --context", "JSON: add each event's process context (`process`)")
    .option("-S, --stats", "print a summary per event type and process at the end")
    .option("-r, --realtime", "run at real-time priority to name even the shortest processes")
    .option("--no-kernel-filter", "filter event types in procwatch, not in the kernel")
    .option(
      "--buffer <bytes>",
      "socket receive buffer to ask for (e.g. 64M); more than the kernel grants (2G for root, " +
        "net.core.rmem_max otherwise) is capped, -v says so",
      parseBytes,
    )
    .option("-v, --verbose", "say on stderr how events are received")
    .action(async (options) => {
      Deno.exitCode = await runWatch(options);
    }) as unknown as Command;
}

/** Whether to colour output: only on a terminal, and never with `NO_COLOR` set. */
export function useColor(): boolean {
  return !Deno.noColor && Deno.stdout.isTerminal();
}

/** Runs `watch` and returns the exit code. */
export async function runWatch(options: WatchCommandOptions): Promise<number> {
  const format = options.json ? "json" : (options.format ?? "human");
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`unknown format '${format}' (known: ${FORMATS.join(", ")})`);
  }
  for (const pid of options.pid) if (!processExists(pid)) throw new NoSuchProcessError(pid);
  // --failed alone means "show me failures": exits and core dumps.
  const events = options.events ?? (options.failed ? ["exit", "coredump"] : undefined);
  if (options.realtime) raisePriority("realtime");

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
      }, receive buffer ${watcher.receiveBufferBytes} bytes${
        options.buffer !== undefined && watcher.receiveBufferBytes < options.buffer
          ? `, capped: asked for ${options.buffer}, the most the kernel grants`
          : ""
      })`,
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
      for (const event of batch) {
        // The offset the watcher gave this event's `time`: JSON and human lines show that instant.
        const offset = wallClock.offsetAt(event.timestampNs);
        if (event.type === "lost") reportLoss(event);
        stats?.add(event);
        if (tree !== undefined) {
          const line = tree.line(event);
          if (line !== null) out.line(line);
        } else {
          out.line(
            format === "human" ? humanLine(event, style, offset) : eventToJson(event, offset),
          );
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
