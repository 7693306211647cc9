/**
 * `procwatch watch`: print process events as they happen.
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { wallOffsetNs } from "../ffi/clock.ts";
import { processExists } from "../ffi/process.ts";
import type { EventType, ProcEvent } from "../lib/events.ts";
import { ExitCode, NoSuchProcessError, UsageError } from "../lib/errors.ts";
import { eventToJson, humanLine } from "../lib/format.ts";
import { ProcessNames } from "../lib/names.ts";
import { watch } from "../lib/watcher.ts";
import { BrokenPipeError, LineWriter, warn } from "./output.ts";
import { parseBytes, parseCount, parseEvents, parsePid, parseSeconds } from "./parse.ts";
import { onTerminationSignal } from "./signals.ts";

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
    .option("--threads", "also show events of threads other than the main thread")
    .option("-D, --duration <seconds>", "stop after this many seconds", parseSeconds)
    .option("-n, --count <n>", "stop after this many events", parseCount)
    .option("--json", "print one JSON object per line (same as --format json)")
    .option("--format <format>", "output format: human or json")
    .option("--no-kernel-filter", "filter event types in procwatch, not in the kernel")
    .option("--buffer <bytes>", "socket receive buffer to ask for (e.g. 64M)", parseBytes)
    .option("-v, --verbose", "say on stderr how events are received")
    .action(async (options) => {
      Deno.exitCode = await runWatch(options);
    }) as unknown as Command;
}

/** Runs `watch` and returns the exit code. */
export async function runWatch(options: WatchCommandOptions): Promise<number> {
  const format = options.json ? "json" : (options.format ?? "human");
  if (format !== "human" && format !== "json") {
    throw new UsageError(`unknown format '${format}' (known: human, json)`);
  }
  for (const pid of options.pid) if (!processExists(pid)) throw new NoSuchProcessError(pid);

  const watcher = watch({
    events: options.events,
    pids: options.pid,
    threads: options.threads ?? false,
    kernelFilter: options.kernelFilter,
    receiveBufferBytes: options.buffer,
    handleSignals: false,
  });
  let exitCode: number = ExitCode.OK;
  const stopSignals = onTerminationSignal((signal) => {
    exitCode = 128 + signal;
    watcher.close();
  });
  const timer = options.duration === undefined
    ? undefined
    : setTimeout(() => watcher.close(), options.duration * 1000);
  if (options.verbose) {
    warn(
      `procwatch: listening (${
        watcher.filterMode === "kernel" ? "kernel-side event filter" : "filtering in procwatch"
      }, receive buffer ${watcher.receiveBufferBytes} bytes)`,
    );
  }

  const out = new LineWriter();
  const names = format === "human" ? new ProcessNames() : undefined;
  let remaining = options.count ?? Infinity;
  try {
    for await (const batch of watcher.batches()) {
      const offset = wallOffsetNs();
      for (const event of batch) {
        if (event.type === "lost") reportLoss(event);
        out.line(
          names ? humanLine(event, names.forEvent(event)) : eventToJson(event, offset),
        );
        if (event.type !== "lost" && --remaining === 0) break;
      }
      out.flush();
      if (remaining === 0) break;
    }
  } catch (error) {
    if (!(error instanceof BrokenPipeError)) throw error;
  } finally {
    watcher.close();
    clearTimeout(timer);
    stopSignals();
  }
  if (options.verbose) {
    const stats = watcher.stats;
    warn(`procwatch: ${JSON.stringify(stats)}`);
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
