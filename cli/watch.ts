/**
 * `procwatch watch`: print process events as they happen.
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import {
  type HostPort,
  type MetricsEndpoint,
  type NatsExport,
  parseListenAddress,
  parseNatsServers,
} from "../lib/export/mod.ts";
import {
  BrokenPipeError,
  EventStats,
  eventToJson,
  formatBytes,
  HUMAN_HEADER,
  humanLine,
  lossReason,
  lostEventNow,
  OUTPUT_CAPACITY,
  plural,
  stderr,
  stdout,
  type Style,
  TREE_GROUP_BY,
  TreeFormatter,
  type TreeGroupBy,
  wallClock,
  warn,
} from "../lib/format/mod.ts";
import {
  listPids,
  processGone,
  type ProcessTable,
  readProcStat,
  TABLE_EVENT_TYPES,
} from "../lib/process/mod.ts";
import {
  EVENT_TYPES,
  type EventType,
  type LostEvent,
  MAX_RECEIVE_BUFFER_REQUEST,
  type ProcEvent,
  type ProcWatcher,
  UsageError,
  watch,
  type WatcherStats,
} from "../mod.ts";
import { ExitCode } from "./exit_codes.ts";
import {
  addPids,
  addWords,
  once,
  parseBytes,
  parseCount,
  parsePid,
  parseSeconds,
  verbatim,
} from "./parse.ts";
import { addEvents } from "./parse_events.ts";
import { checkWatchInput, raiseRealtimeOrWarn } from "./watch_input.ts";
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
  tree?: number;
  comm?: string[];
  match?: string;
  uid?: string[];
  ppid?: number;
  failed?: true;
  stats?: true;
  context?: true;
  realtime?: true;
  keepGoing?: true;
  quiet?: true;
  metrics?: HostPort;
  nats?: string;
  subject?: string;
  spool?: string;
  spoolSize?: number;
  cgroup?: string;
  unit?: string;
  container?: string;
  groupBy?: string;
}

/** The receive buffer asked for without `--buffer` (the watcher's default, lib/watch/options.ts). */
const DEFAULT_RECEIVE_BUFFER = 16 << 20;

/** Builds the `watch` subcommand. */
export function watchCommand(): Command {
  return new Command("watch")
    .description("print process events as they happen (one line each)")
    .option(
      "-e, --events <list>",
      `event types to show, comma-separated: ${
        EVENT_TYPES.join(",")
      } or all (repeatable; default: all, or exit,coredump with --failed)`,
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
      "socket receive buffer to ask for, e.g. 64M (default: 16M); more than the kernel grants " +
        "(2G for root, net.core.rmem_max otherwise) is capped, -v says so",
      once("--buffer", parseBytes),
    )
    .option("-v, --verbose", "say on stderr how events are received")
    .option(
      "--keep-going",
      "with -p/--tree: keep watching after every watched process has ended (default: end then, exit 0)",
    )
    .option(
      "-q, --quiet",
      "print no events (with --metrics or --nats; -S still prints its summary)",
    )
    .option(
      "--metrics <addr:port>",
      "serve Prometheus metrics at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9464 or :9464 " +
        "(needs --allow-net=ADDR:PORT)",
      once("--metrics", (value: string) => parseListenAddress(value)),
    )
    .option(
      "--nats <url>",
      "publish every event (its --json record) to NATS JetStream, e.g. nats://127.0.0.1:4222 " +
        "(needs --allow-net, --allow-sys=hostname, --allow-read/--allow-write of the spool)",
      once("--nats", verbatim),
    )
    .option(
      "--subject <prefix>",
      "with --nats: subjects are PREFIX.<hostname>.<type>, stream PROCWATCH takes PREFIX.> " +
        "(default: procwatch)",
      once("--subject", verbatim),
    )
    .option(
      "--spool <dir>",
      "with --nats: where events wait while the server is down or slow (default: " +
        "/var/lib/procwatch/spool for root, else $XDG_STATE_HOME/procwatch/spool or /tmp/procwatch-UID/spool)",
      once("--spool", verbatim),
    )
    .option(
      "--spool-size <bytes>",
      "with --nats: most the spool holds, e.g. 1G; beyond it events are lost (reason export) " +
        "(default: 256M)",
      once("--spool-size", parseBytes),
    )
    .option(
      "--cgroup <path>",
      "only processes in this cgroup or below it (the v2 path, e.g. /system.slice)",
      once("--cgroup", verbatim),
    )
    .option(
      "--unit <name>",
      "only processes of this systemd unit (cron = cron.service)",
      once("--unit", verbatim),
    )
    .option(
      "--container <id>",
      "only processes in a container whose id starts with this; any: in any container; host: in none",
      once("--container", verbatim),
    )
    .option(
      "--group-by <what>",
      "with --format tree: group the tree by container or unit",
      once("--group-by", verbatim),
    )
    .action(async (options) => {
      Deno.exitCode = await runWatch({ ...options, pid: options.pid ?? [] });
    }) as unknown as Command;
}

/** Whether to colour output: only on a terminal, and never with `NO_COLOR` set. */
export function useColor(): boolean {
  return !Deno.noColor && Deno.stdout.isTerminal();
}

/** How often `watch -p`/`--tree` looks whether its processes are all gone. */
const GONE_CHECK_MS = 100;
/**
 * After /proc shows them gone, how long to keep receiving before closing:
 * do_exit() sends the exit event just after exit_notify() makes the task a
 * zombie, so /proc can show the end a little before the event arrives.
 */
const GONE_GRACE_MS = 100;
/** How long to wait, once all are gone, for exit events not yet shown. */
const EXIT_EVENT_WAIT_MS = 2000;

/** Runs `watch` and returns the exit code. */
export async function runWatch(options: WatchCommandOptions): Promise<number> {
  const format = checkWatchInput(options);
  checkExportInput(options);
  const exportLib = options.metrics === undefined && options.nats === undefined
    ? undefined
    : await import("../lib/export/mod.ts");
  // Missing permissions fail before anything listens (exit 3).
  if (options.metrics !== undefined) exportLib?.checkMetricsPermissions(options.metrics);
  const spoolDir = options.nats === undefined
    ? undefined
    : options.spool ?? exportLib?.defaultSpoolDir();
  if (options.nats !== undefined && spoolDir !== undefined) {
    exportLib?.checkNatsPermissions(parseNatsServers(options.nats), spoolDir, true);
  }
  const groupBy = checkGroupBy(options.groupBy, format);
  // --failed alone means "show me failures": exits and core dumps.
  const events = options.events ?? (options.failed ? ["exit", "coredump"] : undefined);
  if (options.realtime) raiseRealtimeOrWarn();
  // Identify the watched processes now: a pid reused later is another process.
  const targets = options.keepGoing
    ? []
    : [...options.pid, ...(options.tree === undefined ? [] : [options.tree])].map((pid) => ({
      pid,
      startTicks: readProcStat(pid)?.startTicks ?? null,
    }));

  // Listen for signals before subscribing: watch() subscribes and scans /proc
  // without yielding, and a SIGTERM in that window must still unregister.
  let exitCode: number = ExitCode.OK;
  const subscribed: { watcher?: ProcWatcher } = {};
  const stopSignals = onTerminationSignal((signal) => {
    exitCode = 128 + signal;
    subscribed.watcher?.close(); // unregisters from the kernel at once, stalled output or not
  });
  const watcher = subscribed.watcher = watch({
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
    cgroup: options.cgroup,
    unit: options.unit,
    container: options.container,
    // Metrics label exits by process name and time lifetimes: both need the context.
    context: format !== "json" || (options.context ?? false) || options.metrics !== undefined,
    // Only -x's records show namespaces: eight /proc reads per new process otherwise spared.
    namespaces: options.context ?? false,
  });
  // The exporters start once the watcher listens, so that they see its figures.
  let metrics: MetricsEndpoint | undefined;
  let nats: NatsExport | undefined;
  try {
    if (options.metrics !== undefined) {
      metrics = await exportLib?.startMetrics({ listen: options.metrics, watcher });
    }
    if (options.nats !== undefined) {
      nats = await exportLib?.startNatsExport({
        servers: options.nats,
        subjectPrefix: options.subject,
        spoolDir,
        spoolMaxBytes: options.spoolSize,
        warn,
      });
    }
  } catch (error) {
    watcher.close();
    await metrics?.close();
    throw error;
  }
  // Records carry `process` only with -x, as --json prints them; metrics may
  // have turned the context on for its own use.
  const bare = (event: ProcEvent): ProcEvent =>
    options.context || event.process === undefined ? event : { ...event, process: undefined };
  const started = performance.now();
  if (exitCode !== ExitCode.OK) watcher.close(); // a signal came while it subscribed
  const timer = options.duration === undefined
    ? undefined
    : setTimeout(() => watcher.close(), options.duration * 1000);
  await watcher.ready;
  if (options.verbose) {
    for (const line of listeningLines(watcher, events, options, format === "json")) warn(line);
  }

  const style: Style = { color: useColor() };
  const stats = options.stats ? new EventStats() : undefined;
  const table = watcher.processTable;
  const tree = format === "tree"
    ? new TreeFormatter({
      root: options.tree ?? options.ppid,
      parentOf: (pid) => table?.get(pid)?.ppid,
      style,
      groupBy,
    })
    : undefined;
  const render = (event: ProcEvent): string | null => {
    if (tree !== undefined) return tree.line(event);
    // The offset the watcher gave this event's `time`: JSON and human lines show that instant.
    const offset = wallClock.offsetAt(event.timestampNs);
    return format === "human" ? humanLine(event, style, offset) : eventToJson(bare(event), offset);
  };
  const quiet = options.quiet ?? false;
  // Events a full spool dropped: one `lost` event, like the other losses.
  const exportLoss = (now = false): void => {
    const event = nats?.takeLoss(now) ?? null;
    if (event === null) return;
    reportLoss(event);
    stats?.add(event);
    metrics?.observe(event);
    const line = quiet ? null : render(event);
    if (line !== null) out.line(line);
  };
  // Lines a stalled reader had no room for come back as one `lost` event
  // (reason "output") once it reads again: in the output, on stderr, in -S.
  const out = stdout({
    lossLine: (count) => {
      const event = lostEventNow(count, "output");
      stats?.add(event);
      reportLoss(event);
      return render(event) ?? "";
    },
    onStall: () =>
      warn(
        `procwatch: warning: stdout is not being read: dropping output lines beyond ${
          formatBytes(OUTPUT_CAPACITY)
        } (counted as lost, reason "output")`,
      ),
  });
  // The exits the output has shown, so that ending waits for them (below).
  const shown = { exited: new Set<number>(), forked: new Set<number>() };
  const exitsShown = events === undefined || events.includes("exit");
  const ending = targets.length === 0
    ? undefined
    : endWhenGone(targets, options.tree, watcher, () => {
      if (!exitsShown) return true;
      if (targets.some(({ pid }) => !shown.exited.has(pid))) return false;
      for (const pid of shown.forked) if (!shown.exited.has(pid)) return false;
      return true;
    });
  let remaining = options.count ?? Infinity;
  try {
    if (format === "human" && !quiet) {
      out.line(HUMAN_HEADER);
      out.flush();
    }
    for await (const batch of watcher.batches()) {
      for (const event of batch) {
        if (event.type === "lost") reportLoss(event);
        else if (ending === undefined) {
          // Nothing waits for the watched processes' ends: no per-event bookkeeping.
        } else if (event.type === "exit" && event.pid === event.tid) shown.exited.add(event.pid);
        else if (event.type === "fork" && !event.thread) shown.forked.add(event.childPid);
        stats?.add(event);
        metrics?.observe(event);
        nats?.publish(bare(event));
        if (!quiet) {
          const line = render(event);
          if (line !== null) out.line(line);
        }
        if (event.type !== "lost" && --remaining === 0) break;
      }
      exportLoss();
      out.flush();
      if (remaining === 0) break;
    }
    // Sends what is queued (a few seconds at most), spools the rest for the
    // next start; what the spool has no room for is lost, and said so.
    await nats?.close();
    exportLoss(true);
    out.flush();
    if (stats !== undefined) {
      out.reportLoss(); // first, so that the summary counts it
      const seconds = (performance.now() - started) / 1000;
      if (format === "json") out.line(JSON.stringify(stats.toJSON(seconds)));
      else for (const line of stats.table(seconds)) out.line(line);
      out.flush();
    }
  } catch (error) {
    if (!(error instanceof BrokenPipeError)) throw error;
  } finally {
    watcher.close();
    clearTimeout(timer);
    ending?.stop();
    await nats?.close(); // after an error: the same, without a word on losses
    await metrics?.close();
  }
  // Waits for a slow reader, but a signal cuts it short (cli/output.ts).
  const before = out.dropped;
  const written = await out.drain();
  const abandoned = out.dropped - before;
  if (!written && !out.broken && abandoned > 0) {
    warn(
      `procwatch: warning: ${
        plural(abandoned, "line")
      } of output not written: stdout was not being read`,
    );
  }
  if (options.verbose) {
    for (const line of counterLines(watcher.stats, out.dropped, format === "json")) {
      warn(line);
    }
    if (table !== null) warn(tableLine(table, format === "json"));
  }
  await stderr().drain();
  stopSignals();
  return exitCode;
}

/** Options that only make sense with `--nats`. */
function checkExportInput(options: WatchCommandOptions): void {
  if (options.nats !== undefined) return;
  const without = options.subject !== undefined
    ? "--subject"
    : options.spool !== undefined
    ? "--spool"
    : options.spoolSize !== undefined
    ? "--spool-size"
    : undefined;
  if (without !== undefined) throw new UsageError(`${without} needs --nats`);
}

/** `--group-by`: one of {@linkcode TREE_GROUP_BY}, and only for the tree. */
function checkGroupBy(value: string | undefined, format: string): TreeGroupBy | undefined {
  if (value === undefined) return undefined;
  if (!(TREE_GROUP_BY as readonly string[]).includes(value)) {
    throw new UsageError(`unknown --group-by '${value}' (known: ${TREE_GROUP_BY.join(", ")})`);
  }
  if (format !== "tree") {
    throw new UsageError(`--group-by groups the tree: use it with --format tree`);
  }
  return value as TreeGroupBy;
}

/**
 * Closes `watcher` once every watched process (`-p`, and with `--tree` the
 * root and every descendant the process table knows alive) has ended, like
 * `strace -p`. Polls /proc: exit events may be filtered out (`-e exec`) or lost.
 */
function endWhenGone(
  targets: { pid: number; startTicks: bigint | null }[],
  treeRoot: number | undefined,
  watcher: ProcWatcher,
  exitsShown: () => boolean,
): { stop(): void } {
  let closeTimer: ReturnType<typeof setTimeout> | undefined;
  let goneSince: number | undefined;
  const treeAlive = (): boolean => {
    const table = watcher.processTable;
    if (treeRoot === undefined || table === null) return false;
    for (const pid of listPids()) {
      const record = table.get(pid);
      if (record?.inTree && record.exitNs === null && !processGone(pid, null)) return true;
    }
    return false;
  };
  const alive = (): boolean =>
    targets.some(({ pid, startTicks }) => !processGone(pid, startTicks)) || treeAlive();
  const check = setInterval(() => {
    if (closeTimer !== undefined || watcher.closed || alive()) return;
    // Look again after the grace: a child forked just before its parent's end
    // is in the table only once the watcher has drained that fork event.
    closeTimer = setTimeout(() => {
      closeTimer = undefined;
      if (alive()) {
        goneSince = undefined;
        return;
      }
      goneSince ??= Date.now();
      // The exit events come after /proc shows the end (do_exit() sends them
      // after exit_notify()), and a busy watcher may not have read them yet:
      // wait until they are out, or EXIT_EVENT_WAIT_MS for one lost or filtered.
      if (exitsShown() || Date.now() - goneSince >= EXIT_EVENT_WAIT_MS) watcher.close();
    }, GONE_GRACE_MS);
  }, GONE_CHECK_MS);
  return {
    stop() {
      clearInterval(check);
      clearTimeout(closeTimer);
    },
  };
}

/** The `-v` lines said once listening: filter and receive buffer, as sentences or one JSON object. */
function listeningLines(
  watcher: ProcWatcher,
  events: readonly EventType[] | undefined,
  options: WatchCommandOptions,
  json: boolean,
): string[] {
  const types = events === undefined || EVENT_TYPES.every((type) => events.includes(type))
    ? null
    : [...new Set(events)];
  const asked = options.buffer ?? DEFAULT_RECEIVE_BUFFER;
  const granted = watcher.receiveBufferBytes;
  // __sock_set_rcvbuf() (net/core/sock.c): min(val, INT_MAX / 2), doubled.
  const capped = asked > MAX_RECEIVE_BUFFER_REQUEST;
  if (json) {
    return [JSON.stringify({
      type: "listening",
      port: watcher.portId,
      filter: types === null ? "none" : watcher.filterMode,
      events: types ?? EVENT_TYPES,
      failedOnly: options.failed ?? false,
      receiveBufferBytes: granted,
      requestedReceiveBufferBytes: asked,
      capped: capped,
      socketFilter: watcher.socketFilter,
    })];
  }
  const failed = options.failed ? " (exits: only failed ones)" : "";
  let filter: string;
  if (types === null && !options.failed) {
    filter = "all event types (no kernel filter needed)";
  } else if (watcher.filterMode === "kernel") {
    // The process table (context, process filters) follows these types
    // whatever is shown: TABLE_EVENT_TYPES, lib/events/event_types.ts.
    const table = watcher.processTable === null
      ? []
      : TABLE_EVENT_TYPES.filter((type) => !(types ?? EVENT_TYPES).includes(type));
    filter = `event types filtered in the kernel: ${(types ?? EVENT_TYPES).join(", ")}${failed}${
      table.length === 0
        ? ""
        : `; it also sends ${table.join(", ")} for procwatch's process table (not shown)`
    }`;
  } else {
    filter = `event types filtered in procwatch: ${(types ?? EVENT_TYPES).join(", ")}${failed} (${
      options.kernelFilter
        ? "the kernel cannot filter them: Linux before 6.6"
        : "--no-kernel-filter"
    })`;
  }
  // SO_RCVBUF: the kernel stores twice the size asked for, the extra half
  // for its own bookkeeping (sock_setsockopt(), net/core/sock.c; socket(7)).
  const buffer = capped
    ? `receive buffer: ${formatBytes(granted)} (capped: asked for ${
      formatBytes(asked)
    }, the most the kernel grants is ${formatBytes(granted)})`
    : granted === asked * 2
    ? `receive buffer: ${formatBytes(granted)} (the kernel doubles the ${
      formatBytes(asked)
    } asked for, half of it for its bookkeeping)`
    : `receive buffer: ${formatBytes(granted)} (asked for ${
      formatBytes(asked)
    }; the kernel caps it at twice net.core.rmem_max unless procwatch runs as root)`;
  const socketFilter = watcher.socketFilter;
  const pids = socketFilter.pids
    ? [
      `procwatch: pids filtered in the kernel (BPF socket filter, ${socketFilter.instructions} instructions)`,
    ]
    : socketFilter.pidsInProcwatch !== null
    ? [`procwatch: pids filtered in procwatch, not in the kernel: ${socketFilter.pidsInProcwatch}`]
    : [];
  return [
    `procwatch: listening to the kernel's process events (netlink port ${watcher.portId})`,
    `procwatch: ${filter}${socketFilter.types ? " (BPF socket filter)" : ""}`,
    ...pids,
    `procwatch: ${buffer}`,
  ];
}

/** `--verbose`, at the end: how full the process table (bounded by `processTableSize`) is. */
function tableLine(table: ProcessTable, json: boolean): string {
  if (json) {
    return JSON.stringify({
      type: "process table",
      entries: table.size,
      maxEntries: table.maxEntries,
    });
  }
  return `procwatch: process table: ${
    plural(table.size, "entry", "entries")
  } (at most ${table.maxEntries})`;
}

/** The `-v` lines at the end: what was received, passed on, filtered, lost and ignored. */
function counterLines(
  counters: Readonly<WatcherStats>,
  lostInOutput: number,
  json: boolean,
): string[] {
  if (json) return [JSON.stringify({ type: "counters", ...counters, lostInOutput })];
  const lines = [
    `procwatch: received ${plural(counters.received, "message")} from the kernel; passed on ${
      plural(counters.delivered, "event")
    }; filtered out ${plural(counters.filtered, "event")} in procwatch`,
  ];
  const lost: string[] = [];
  if (counters.lostByKernel > 0) {
    lost.push(
      `${plural(counters.lostByKernel, "event")} dropped by the kernel (socket buffer full ${
        plural(counters.overruns, "time")
      }; try --buffer)`,
    );
  }
  if (counters.lostInQueue > 0) {
    lost.push(`${plural(counters.lostInQueue, "event")} dropped by procwatch's queue`);
  }
  if (lostInOutput > 0) {
    lost.push(`${plural(lostInOutput, "line")} of output dropped (stdout was not being read)`);
  }
  lines.push(`procwatch: ${lost.length === 0 ? "nothing lost" : `lost: ${lost.join("; ")}`}`);
  const ignored: string[] = [];
  if (counters.foreign > 0) {
    ignored.push(`${plural(counters.foreign, "message")} not sent by the kernel`);
  }
  if (counters.malformed > 0) ignored.push(`${plural(counters.malformed, "malformed message")}`);
  if (counters.unknown > 0) ignored.push(`${plural(counters.unknown, "event")} of unknown type`);
  if (ignored.length > 0) lines.push(`procwatch: ignored: ${ignored.join("; ")}`);
  return lines;
}

function reportLoss(event: LostEvent): void {
  warn(
    `procwatch: warning: ${event.count} ${event.count === 1 ? "event" : "events"} lost (${
      lossReason(event.reason)
    }${event.cpu === null ? "" : `, cpu ${event.cpu}`})`,
  );
}
