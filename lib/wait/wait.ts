/**
 * Waiting for any process to end — child or not — and learning how it ended.
 *
 * The proc connector's exit event carries the wait status of every process,
 * so procwatch can say what `wait` would say for a process it did not start.
 * The order of steps makes it race-free: subscribe first, then look at the
 * process. A process that ends after the subscription produces an event; one
 * that is already a zombie is read from `/proc/PID/stat` (field 52); one that
 * ended between the first check and the subscription is noticed by a
 * re-check. When events are lost, pids are re-checked instead of waited for
 * forever. The kernel sends an exit event for every thread; a process ends
 * with its last thread (not its main thread: `pthread_exit()`, or a non-main
 * thread's execve), so the wait follows each pid's threads.
 *
 * Without the proc connector (no privilege, a network namespace, an old
 * kernel) it falls back to `pidfd_open(2)` + `poll(2)`: it still notices the
 * end at once; the status comes from a zombie it may read (root, owner), or
 * from the kernel once the parent has reaped the process (Linux ≥ 6.15,
 * `PIDFD_INFO_EXIT`; waited for up to 2 s), else it is unknown.
 *
 * @module
 */

import { boottimeNs, clockTicksPerSecond, monotonicNs } from "../../ffi/clock.ts";
import { wallClock } from "../events/wall_clock.ts";
import { ErrnoError } from "../../ffi/libc.ts";
import { pidfdKeepsExitStatus, PidfdSet } from "../../ffi/pidfd.ts";
import { listDirectory } from "../../ffi/proc_fs.ts";
import { effectiveUid, isProcess, processExists } from "../../ffi/process.ts";
import {
  NetworkNamespaceError,
  PermissionError,
  ProcEventsUnavailableError,
  ProcwatchError,
  UsageError,
  WaitTimeoutError,
} from "../../ground/errors.ts";
import type { ExitEvent, ProcEvent } from "../events/events.ts";
import { checkProcessId } from "../process/pids.ts";
import { type ProcStat, readProcStat, readProcStatus } from "../process/proc_stat.ts";
import { decodeWaitStatus, shellStatus } from "../events/signals.ts";
import { type ProcWatcher, watch } from "../watch/watcher.ts";
import type { SocketFilterInfo } from "../connector/bpf.ts";

/**
 * {@linkcode ExitInfo.shellStatus} when the status is unknown: 125, the code
 * `procwatch wait` then exits with (as `timeout(1)` and `env(1)` use 125 for
 * their own failure).
 *
 * @example
 * ```ts
 * import { UNKNOWN_SHELL_STATUS, waitForExit } from "@procwatch/procwatch/wait";
 * const info = await waitForExit(1234);
 * if (info.shellStatus === UNKNOWN_SHELL_STATUS) console.log("ended, status unknown");
 * ```
 */
export const UNKNOWN_SHELL_STATUS = 125;

/**
 * How a wait learns that a process ended: the proc connector's exit event,
 * or a pidfd becoming readable.
 *
 * @example
 * ```ts
 * import { waitForExit, type WaitMethod } from "@procwatch/procwatch/wait";
 * const method: WaitMethod = "pidfd";
 * await waitForExit(1234, { method });
 * ```
 */
export type WaitMethod = "connector" | "pidfd";

/**
 * How {@linkcode ExitInfo} was obtained.
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch/wait";
 * const info = await waitForExit(1234);
 * if (info.source === "zombie") console.log("it had already ended; its end time is unknown");
 * ```
 */
export type ExitSource =
  /** The kernel's exit event: exact status and time. */
  | "event"
  /** The process was a zombie: status read from `/proc/PID/stat`, time unknown. */
  | "zombie"
  /**
   * A pidfd became readable: the time is when procwatch noticed; the status
   * is the kernel's `PIDFD_INFO_EXIT` once the parent reaped the process
   * (Linux ≥ 6.15), else unknown.
   */
  | "pidfd"
  /**
   * The process ended without its exit event reaching procwatch (it was
   * already a zombie whose status this user may not read, or events were
   * lost) and its status could not be read: unknown.
   */
  | "vanished";

/**
 * How a process ended, as {@linkcode waitForExit} reports it.
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch/wait";
 * const info = await waitForExit(1234);
 * if (!info.statusKnown) console.log(`${info.pid} ended; how is unknown`);
 * else if (info.signal) console.log(`${info.pid} killed by ${info.signal}`);
 * else console.log(`${info.pid} exited with ${info.exitCode} after ${info.runtimeMs} ms`);
 * ```
 */
export interface ExitInfo {
  /** The process id. */
  pid: number;
  /** Whether the fields below describe the real status; `false` when it could not be learnt. */
  statusKnown: boolean;
  /** The raw wait status (`task_struct.exit_code`), or `null` when unknown. */
  status: number | null;
  /** The exit code when it exited normally, else `null`. */
  exitCode: number | null;
  /** The name of the signal that killed it (`"SIGTERM"`), else `null`. */
  signal: string | null;
  /** The number of that signal, else `null`. */
  signalNumber: number | null;
  /** Whether a core dump was written. */
  coreDumped: boolean;
  /**
   * What a shell's `wait` would give: the exit code, or 128 + the signal
   * number; {@linkcode UNKNOWN_SHELL_STATUS} (125) when the status is unknown.
   */
  shellStatus: number;
  /** `CLOCK_MONOTONIC` nanoseconds when it ended; `null` when unknown (already a zombie). */
  timestampNs: bigint | null;
  /** Wall-clock time when it ended; `null` when unknown. */
  time: Date | null;
  /**
   * How long it ran, in milliseconds: from its start time in `/proc/PID/stat`
   * (clock ticks, 10 ms resolution) to its end; `null` when either is unknown.
   */
  runtimeMs: number | null;
  /** How this information was obtained. */
  source: ExitSource;
  /** The mechanism the wait used. */
  method: WaitMethod;
}

/**
 * Told once the wait is armed: from then on no exit can be missed.
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch/wait";
 * await waitForExit(1234, {
 *   onArmed: (armed) => console.error(`waiting with ${armed.method}`),
 * });
 * ```
 */
export interface WaitArmed {
  /** The mechanism in use. */
  method: WaitMethod;
  /** Why the proc connector was not used, when it was not (`null` otherwise). */
  fallbackReason: string | null;
  /** The pids being waited for. */
  pids: readonly number[];
  /**
   * With the proc connector: what its BPF socket filter selects in the
   * kernel (the pids, unless too many for one program); `null` with pidfd.
   */
  socketFilter: SocketFilterInfo | null;
}

/**
 * Options of {@linkcode waitForExit}, {@linkcode waitForAll} and {@linkcode waitForAny}.
 *
 * @example
 * ```ts
 * import { waitForAll, type WaitOptions } from "@procwatch/procwatch/wait";
 * const options: WaitOptions = {
 *   timeout: 30_000,
 *   signal: AbortSignal.timeout(60_000),
 *   onExit: (info) => console.log(info.pid, info.shellStatus),
 * };
 * await waitForAll([1234, 5678], options);
 * ```
 */
export interface WaitOptions {
  /**
   * Aborting rejects the wait with the signal's reason and releases everything.
   *
   * @default {undefined} (not abortable)
   */
  signal?: AbortSignal;
  /**
   * Milliseconds to wait at most; then the wait rejects with {@linkcode WaitTimeoutError}.
   *
   * @default {undefined} (no limit)
   */
  timeout?: number;
  /**
   * `"auto"`: the proc connector, or pidfd when the connector is not
   * available; `"connector"`: fail instead of falling back; `"pidfd"`: never
   * use the connector.
   *
   * @default {"auto"}
   */
  method?: "auto" | WaitMethod;
  /**
   * While waiting on the proc connector, SIGINT/SIGTERM/SIGHUP unregister the
   * listener and exit with 128 + signal (see `WatchOptions.handleSignals`).
   * Set `false` to handle them yourself (abort `signal` then).
   *
   * @default {true}
   */
  handleSignals?: boolean;
  /**
   * Socket receive buffer for the proc connector, in bytes (`watch()`'s default).
   *
   * @default {16 * 1024 * 1024}
   */
  receiveBufferBytes?: number;
  /**
   * Called for each process as it ends, in the order they end.
   *
   * @default {undefined}
   */
  onExit?: (info: ExitInfo) => void;
  /**
   * Called once the wait is armed.
   *
   * @default {undefined}
   */
  onArmed?: (armed: WaitArmed) => void;
}

/**
 * How long a pid that vanished without an event is given for its event to
 * arrive before it is reported with an unknown status. The event, if the
 * kernel sent it, is already in the socket: this only covers the scheduling
 * of procwatch's receiving thread.
 */
const RECHECK_GRACE_MS = 250;

/** How often pids are checked for an end whose event never came (see `#watchLiveness`). */
const LIVENESS_CHECK_MS = 2000;

/**
 * Most /proc/PID/stat reads one liveness round makes: the round looks at
 * every pid with kill(pid, 0) (a reaped process is gone; ~1 µs each) and
 * reads the stat of this many, in turn, for what kill() cannot tell (a zombie
 * left unreaped, a pid reused). 8,000 stat reads at once held the exits
 * waiting behind them ~0.3 s, and every 2 s cost a core ~15%.
 */
const LIVENESS_STAT_READS = 256;

/** How long #timing reuses its reading of the clocks (1 ms). */
const CLOCKS_FRESH_NS = 1_000_000n;

/**
 * With pidfd, how long to wait after a process exited for its parent to reap
 * it, so that the kernel tells its status (`PIDFD_INFO_EXIT`). Parents reap
 * at once as a rule; one that does not leaves the status unknown.
 */
const REAP_GRACE_MS = 2000;

/**
 * Waits until process `pid` ends and tells how it ended — exit code, signal,
 * core dump, when, after how long. Works for any process, not only children.
 * Rejects with {@linkcode NoSuchProcessError} when there is no such process,
 * {@linkcode WaitTimeoutError} after `timeout`, or the abort reason.
 *
 * A pid whose end was already reported (by this or an earlier call) is not
 * remembered: while that process is still a zombie it is reported again at
 * once (`source: "zombie"`); once its parent has reaped it, the pid names no
 * process and the call rejects with {@linkcode NoSuchProcessError} at once
 * (`error.pid`). Keep the {@linkcode ExitInfo} instead of waiting again.
 *
 * @param pid The process to wait for (a process id, not a thread id).
 * @param options Timeout, abort signal, method.
 * @returns How the process ended.
 * @throws {UsageError} (code `"USAGE"`) for a pid that is not a positive
 * integer, is procwatch itself, or a negative `timeout`.
 * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) for a pid that names
 * no process.
 * @throws {WaitTimeoutError} (code `"TIMEOUT"`) when `timeout` runs out.
 * @throws {FfiPermissionError} (code `"DENO_PERMISSION"`) without `--allow-ffi`.
 * @throws {PermissionError} / {ProcEventsUnavailableError} / {NetworkNamespaceError}
 * (codes `"PERMISSION"`, `"UNAVAILABLE"`, `"NETWORK_NAMESPACE"`) with
 * `method: "connector"` when the proc connector cannot be used.
 *
 * @example
 * ```ts
 * import { waitForExit } from "@procwatch/procwatch/wait";
 * const info = await waitForExit(1234, { timeout: 60_000 });
 * if (info.statusKnown) console.log(`${info.pid} ended with ${info.shellStatus}`);
 * ```
 */
export async function waitForExit(pid: number, options: WaitOptions = {}): Promise<ExitInfo> {
  const [info] = await waitFor([pid], "all", options);
  return info;
}

/**
 * Waits until every process in `pids` has ended. Resolves with their
 * {@linkcode ExitInfo}s in the order they ended (the last one is what a
 * shell's `wait` would report).
 *
 * @param pids The processes to wait for (at least one).
 * @param options Timeout, abort signal, method, `onExit` for each end.
 * @returns Their exits, in the order they ended.
 * @throws {UsageError} (code `"USAGE"`) for a pid that is not a positive
 * integer, is procwatch itself, or a negative `timeout`.
 * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) for a pid that names
 * no process.
 * @throws {WaitTimeoutError} (code `"TIMEOUT"`) when `timeout` runs out.
 * @throws {FfiPermissionError} (code `"DENO_PERMISSION"`) without `--allow-ffi`.
 * @throws {PermissionError} / {ProcEventsUnavailableError} / {NetworkNamespaceError}
 * (codes `"PERMISSION"`, `"UNAVAILABLE"`, `"NETWORK_NAMESPACE"`) with
 * `method: "connector"` when the proc connector cannot be used.
 *
 * @example
 * ```ts
 * import { waitForAll } from "@procwatch/procwatch/wait";
 * const infos = await waitForAll([1234, 5678], {
 *   onExit: (info) => console.log(info.pid, info.exitCode),
 * });
 * console.log(infos.at(-1)?.shellStatus);
 * ```
 */
export function waitForAll(
  pids: readonly number[],
  options: WaitOptions = {},
): Promise<ExitInfo[]> {
  return waitFor(pids, "all", options);
}

/**
 * Waits until the first of `pids` ends, and resolves with how it ended.
 * Every pid must name a process (or zombie) when it is called: one that has
 * ended and been reaped — say, one an earlier {@linkcode waitForExit}
 * reported — makes it reject with {@linkcode NoSuchProcessError} for that pid
 * at once, not wait for the others (see {@linkcode waitForExit}).
 *
 * @param pids The processes to wait for (at least one).
 * @param options Timeout, abort signal, method.
 * @returns How the first of them to end ended.
 * @throws {UsageError} (code `"USAGE"`) for a pid that is not a positive
 * integer, is procwatch itself, or a negative `timeout`.
 * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) for a pid that names
 * no process.
 * @throws {WaitTimeoutError} (code `"TIMEOUT"`) when `timeout` runs out.
 * @throws {FfiPermissionError} (code `"DENO_PERMISSION"`) without `--allow-ffi`.
 * @throws {PermissionError} / {ProcEventsUnavailableError} / {NetworkNamespaceError}
 * (codes `"PERMISSION"`, `"UNAVAILABLE"`, `"NETWORK_NAMESPACE"`) with
 * `method: "connector"` when the proc connector cannot be used.
 *
 * @example
 * ```ts
 * import { waitForAny } from "@procwatch/procwatch/wait";
 * const first = await waitForAny([1234, 5678], { timeout: 10_000 });
 * console.log(`${first.pid} ended first`);
 * ```
 */
export async function waitForAny(
  pids: readonly number[],
  options: WaitOptions = {},
): Promise<ExitInfo> {
  const [info] = await waitFor(pids, "any", options);
  return info;
}

/**
 * Whether `error` from `watch()` means the proc connector is not available
 * here (rather than a bug), so that waiting may fall back to pidfd.
 *
 * @example
 * ```ts
 * import { connectorUnavailable } from "./wait.ts";
 * console.log(connectorUnavailable(new Error("bug"))); // false
 * ```
 */
export function connectorUnavailable(error: unknown): boolean {
  return error instanceof PermissionError || error instanceof ProcEventsUnavailableError ||
    error instanceof NetworkNamespaceError;
}

/** Pids that always fit the classic BPF program (`lib/connector/bpf.ts`), scattered or not. */
const SURELY_KERNEL_FILTERED_PIDS = 1024;

async function waitFor(
  pids: readonly number[],
  mode: "all" | "any",
  options: WaitOptions,
): Promise<ExitInfo[]> {
  const targets = validate(pids);
  if (options.timeout !== undefined && !(options.timeout >= 0)) {
    throw new UsageError(`invalid timeout: ${options.timeout}`);
  }
  options.signal?.throwIfAborted();
  precheck(targets);

  const method = options.method ?? "auto";
  let watcher: ProcWatcher | undefined;
  let fallbackReason: string | null = null;
  if (method !== "pidfd") {
    try {
      watcher = watch({
        // Thread forks, execs and every thread's exit: a process ends with its
        // last thread, not with its main thread (see Session#fromEvent).
        events: ["fork", "exec", "exit"],
        threads: true,
        pids: targets,
        handleSignals: options.handleSignals ?? true,
        receiveBufferBytes: options.receiveBufferBytes,
        // Only the pids' own events come (filtered in the kernel): nothing
        // to batch, and each is read the moment it arrives. Past what surely
        // fits a socket filter (1,000 scattered pids take 2,212 of the 4,096
        // instructions) every event of the machine may come: batched then.
        maxBatchDelayMs: targets.length <= SURELY_KERNEL_FILTERED_PIDS ? 0 : undefined,
      });
    } catch (error) {
      if (method !== "auto" || !connectorUnavailable(error)) throw error;
      fallbackReason = error instanceof Error ? error.message : String(error);
    }
  } else {
    fallbackReason = 'method "pidfd" was chosen';
  }
  const session = new Session(targets, mode, options, watcher ? "connector" : "pidfd");
  if (watcher) session.runConnector(watcher);
  else session.runPidfd(fallbackReason);
  return await session.result;
}

function validate(pids: readonly number[]): number[] {
  if (pids.length === 0) throw new UsageError("no pid to wait for");
  for (const pid of pids) {
    if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`invalid pid: ${pid}`);
    if (pid === Deno.pid) {
      throw new UsageError(`${pid} is procwatch itself: it cannot wait for itself`);
    }
  }
  return [...new Set(pids)];
}

/**
 * Before subscribing: a pid with no process is an error at once, and a
 * thread id is not a process (the same check as `watch -p`). tgkill(pid, pid, 0)
 * tells both in one cheap syscall (do_tkill() finds the task, then requires
 * its tgid to equal the pid, before any permission check: EPERM is a process
 * too); 8,000 pids take a few ms, where reading each /proc/PID/status took
 * ~0.4 s. Only a pid it refuses gets the full check and its words.
 */
function precheck(pids: readonly number[]): void {
  for (const pid of pids) if (!isProcess(pid)) checkProcessId(pid, "wait for");
}
/**
 * The status a zombie left in `/proc/PID/stat`, when it can be believed: the
 * kernel writes 0 there for a reader that may not ptrace-read the process
 * (fs/proc/array.c), so a 0 is believed only from root or the owner.
 */
function zombieStatus(pid: number, stat: ProcStat): number | null {
  if (stat.exitStatus === null) return null;
  if (stat.exitStatus !== 0) return stat.exitStatus;
  const uid = effectiveUid();
  if (uid === 0) return 0;
  const status = readProcStatus(pid);
  if (status !== null && status.uids.length > 0 && status.uids.every((id) => id === uid)) return 0;
  return null;
}

/**
 * Whether `/proc/PID/stat` shows a process that has wholly ended: a zombie
 * (or dying) main thread with no other thread left. A zombie main thread
 * with more threads only called `pthread_exit()`; the process lives on.
 */
function ended(stat: ProcStat): boolean {
  return (stat.state === "Z" || stat.state === "X") && stat.numThreads <= 1;
}

class Session {
  readonly result: Promise<ExitInfo[]>;
  readonly #pending: Set<number>;
  readonly #mode: "all" | "any";
  readonly #options: WaitOptions;
  readonly #method: WaitMethod;
  readonly #ended: ExitInfo[] = [];
  readonly #startTicks = new Map<number, bigint>();
  /** Live thread ids of each pid (connector only); absent when /proc would not list them. */
  readonly #threads = new Map<number, Set<number>>();
  /** The last exit event of any thread of each pid: the process's status once it is gone. */
  readonly #lastExit = new Map<number, ExitEvent>();
  #resolve!: (infos: ExitInfo[]) => void;
  #reject!: (error: unknown) => void;
  #done = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #recheckTimer: ReturnType<typeof setTimeout> | undefined;
  /** Pids the next re-check looks at, unless it looks at all (after a loss). */
  readonly #suspects = new Set<number>();
  #recheckAll = false;
  #livenessTimer: ReturnType<typeof setInterval> | undefined;
  #release: () => void = () => {};
  readonly #onAbort = () => this.#finish(this.#options.signal?.reason);
  /** When #timing last read the clocks (monotonic ns), and the boot-time shift it read. */
  #clocksReadNs = -(1n << 62n);
  #bootShiftNs = 0n;

  constructor(pids: number[], mode: "all" | "any", options: WaitOptions, method: WaitMethod) {
    this.#pending = new Set(pids);
    this.#mode = mode;
    this.#options = options;
    this.#method = method;
    this.result = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (options.timeout !== undefined) {
      this.#timer = setTimeout(
        () => this.#finish(new WaitTimeoutError([...this.#pending], options.timeout ?? 0)),
        options.timeout,
      );
    }
  }

  #socketFilter: SocketFilterInfo | null = null;

  runConnector(watcher: ProcWatcher): void {
    this.#release = () => watcher.close();
    this.#socketFilter = watcher.socketFilter;
    // Subscribed: whatever happens to the pids from now on is seen. Each pid's
    // start time and threads are read before it is said to be armed: a
    // process killed right after "armed" and reaped before that read would
    // only be known to have ended a recheck later (250 ms), without run time.
    this.#inspect([...this.#pending], true);
    this.#armed(null);
    if (!this.#done) this.#watchLiveness();
    this.#drive(async () => {
      for await (const event of watcher) {
        if (this.#done) break;
        this.#follow(event);
      }
    });
  }

  runPidfd(fallbackReason: string | null): void {
    let set: PidfdSet;
    try {
      set = PidfdSet.open([...this.#pending]);
    } catch (error) {
      const why = error instanceof ErrnoError ? error.message : String(error);
      this.#finish(
        new ProcwatchError(
          `cannot wait: the proc connector is unavailable (${fallbackReason}) and so is pidfd (${why})`,
          "UNAVAILABLE",
          { cause: error },
        ),
      );
      return;
    }
    this.#release = () => void set.close();
    for (const pid of set.missing) this.#report(this.#unknown(pid, "vanished"));
    this.#inspect(set.pids.filter((pid) => this.#pending.has(pid)), false);
    if (this.#done) return;
    this.#armed(fallbackReason);
    const reapGraceMs = pidfdKeepsExitStatus() ? REAP_GRACE_MS : 0;
    /** Exited, not yet reaped: when the exit was noticed and until when to wait for the reap. */
    const awaitingReap = new Map<number, { endNs: bigint; deadline: number }>();
    const settle = (pid: number, endNs: bigint, final: boolean): boolean => {
      // Root or the owner may read a zombie's status at once; anyone may read
      // it through the pidfd once the parent has reaped the process.
      const stat = readProcStat(pid);
      const zombie = stat?.state === "Z" ? zombieStatus(pid, stat) : null;
      if (zombie !== null) {
        this.#report(this.#known(pid, zombie, "zombie", endNs));
        return true;
      }
      const status = set.exitStatus(pid);
      if (status !== null) this.#report(this.#known(pid, status, "pidfd", endNs));
      else if (final) this.#report(this.#unknown(pid, "pidfd", endNs));
      else return false;
      return true;
    };
    this.#drive(async () => {
      while (!this.#done) {
        const deadlines = [...awaitingReap.values()].map((entry) => entry.deadline);
        const timeout = deadlines.length === 0
          ? -1
          : Math.max(0, Math.min(...deadlines) - Date.now());
        await set.wait(timeout);
        if (this.#done) break;
        const { exited, reaped } = set.check();
        const now = monotonicNs();
        for (const pid of exited) {
          if (!this.#pending.has(pid) || awaitingReap.has(pid)) continue;
          if (settle(pid, now, reapGraceMs === 0)) set.forget(pid);
          else {
            awaitingReap.set(pid, { endNs: now, deadline: Date.now() + reapGraceMs });
            set.awaitReap(pid);
          }
        }
        for (const [pid, entry] of awaitingReap) {
          if (!reaped.includes(pid) && Date.now() < entry.deadline) continue;
          awaitingReap.delete(pid);
          set.forget(pid);
          settle(pid, entry.endNs, true);
        }
      }
    });
  }

  #armed(fallbackReason: string | null): void {
    if (this.#done) return;
    this.#options.onArmed?.({
      method: this.#method,
      fallbackReason,
      pids: [...this.#pending],
      socketFilter: this.#socketFilter,
    });
    // Deno loads its timer module (node:timers) on the first setTimeout or
    // setInterval of a process (5–13 ms idle, over 30 ms on a busy machine,
    // measured with performance.now() around the first call, and in CPU
    // profiles of `wait`'s start-up): paid here, once armed and before any
    // event is read, not by the first timer set after a death (the liveness
    // check, a caller's batching).
    clearTimeout(setTimeout(() => {}, 0));
    // Run the reporting path once while idle: V8 compiles functions on first
    // call and Deno binds FFI symbols on first use, which would otherwise be
    // paid between the death and the report.
    const [pid] = this.#pending;
    if (pid !== undefined) {
      this.#known(pid, 0, "event", monotonicNs());
      this.#known(pid, 0x8b, "event", monotonicNs());
    }
  }

  #drive(loop: () => Promise<void>): void {
    loop().then(
      () => this.#finish(new ProcwatchError("the event stream ended unexpectedly", "UNAVAILABLE")),
      (error) => this.#finish(error),
    );
  }

  /**
   * Looks at each pid after subscribing: remembers its start time, reports a
   * zombie at once, and gives a vanished one a moment for its event.
   */
  #inspect(pids: number[], eventsMayCome: boolean): void {
    const vanished: number[] = [];
    for (const pid of pids) {
      const stat = readProcStat(pid);
      if (stat === null) {
        if (processExists(pid)) continue; // /proc hidden from us: rely on the event or pidfd.
        if (eventsMayCome) vanished.push(pid);
        else this.#report(this.#unknown(pid, "vanished"));
        continue;
      }
      this.#startTicks.set(pid, stat.startTicks);
      if (eventsMayCome) this.#seedThreads(pid, stat);
      if (stat.state === "Z" && stat.numThreads <= 1) {
        const status = zombieStatus(pid, stat);
        if (status !== null) this.#report(this.#known(pid, status, "zombie", null));
        // Not ours to read: if it died after we subscribed its event is coming,
        // else it never will (the re-check reports it as unknown).
        else if (eventsMayCome) vanished.push(pid);
      }
    }
    if (vanished.length > 0) this.#scheduleRecheck(vanished);
  }

  /**
   * The threads that run now (later ones come as fork events). A zombie main
   * thread (it called `pthread_exit()`) already sent its exit: not one of them.
   */
  #seedThreads(pid: number, stat: ProcStat): void {
    const zombie = stat.state === "Z" || stat.state === "X";
    if (stat.numThreads === 1) {
      // One thread (most processes): no directory to list. One that starts
      // after this read comes as a fork event (we are subscribed).
      this.#threads.set(pid, new Set(zombie ? [] : [pid]));
      return;
    }
    const tasks = listDirectory(`/proc/${pid}/task`);
    if (tasks === null) {
      this.#threads.delete(pid);
      return;
    }
    const live = new Set(tasks.map(Number).filter((tid) => Number.isInteger(tid) && tid > 0));
    if (zombie) live.delete(pid);
    this.#threads.set(pid, live);
  }

  /**
   * A safety net for losses the kernel does not report: every few seconds,
   * a pid that is gone or a zombie gets a re-check (after which its event,
   * if it is coming, has had time to arrive).
   */
  #watchLiveness(): void {
    let turn = 0;
    this.#livenessTimer = setInterval(() => {
      const pending = [...this.#pending];
      if (turn >= pending.length) turn = 0;
      const readFrom = turn;
      const readTo = Math.min(turn + LIVENESS_STAT_READS, pending.length);
      turn = readTo;
      const gone: number[] = [];
      for (let i = 0; i < pending.length; i++) {
        const pid = pending[i];
        let over: boolean;
        if (i >= readFrom && i < readTo) {
          const stat = readProcStat(pid);
          const started = this.#startTicks.get(pid);
          over = stat === null
            ? !processExists(pid)
            : ended(stat) || (started !== undefined && stat.startTicks !== started);
        } else {
          over = !processExists(pid);
        }
        if (over) gone.push(pid);
      }
      if (gone.length > 0) this.#scheduleRecheck(gone);
    }, LIVENESS_CHECK_MS);
  }

  /**
   * After events were lost, re-checks every pending pid; after some looked
   * gone (or vanished early, or ended where /proc hides threads), re-checks
   * those. Only the suspects: with 8,000 pids a full re-check is 8,000
   * /proc reads (~160 ms here), and the liveness check sees a killed pid as
   * gone while its exit event is still on its way.
   */
  #scheduleRecheck(suspects?: Iterable<number>): void {
    if (this.#done) return;
    if (suspects === undefined) this.#recheckAll = true;
    else for (const pid of suspects) this.#suspects.add(pid);
    if (this.#recheckTimer !== undefined) return;
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = undefined;
      const pids = this.#recheckAll ? [...this.#pending] : [...this.#suspects];
      this.#recheckAll = false;
      this.#suspects.clear();
      for (const pid of pids) {
        if (!this.#pending.has(pid)) continue;
        if (this.#done) return;
        const stat = readProcStat(pid);
        const started = this.#startTicks.get(pid);
        const same = stat !== null && (started === undefined || stat.startTicks === started);
        const last = this.#lastExit.get(pid);
        if (!same) {
          if (stat === null && processExists(pid)) continue;
          this.#report(last ? this.#fromExit(last) : this.#unknown(pid, "vanished"));
        } else if (ended(stat)) {
          // The last thread's exit event, when one came, is exact (and also
          // right after a pthread_exit() of the main thread, whose own
          // exit_code is what /proc shows).
          if (last) {
            this.#report(this.#fromExit(last));
            continue;
          }
          const status = zombieStatus(pid, stat);
          this.#report(
            status === null
              ? this.#unknown(pid, "vanished")
              : this.#known(pid, status, "zombie", null),
          );
        }
      }
    }, RECHECK_GRACE_MS);
  }

  /**
   * Follows the threads of the pending pids. The kernel sends an exit event
   * for every thread (proc_exit_connector() in do_exit()), so the main
   * thread's exit is not the process's end: after `pthread_exit()` other
   * threads go on, and a non-main thread's execve kills the main thread
   * (de_thread(): its exit, code 0) and then takes over its id (an exec event
   * of the pid). The process ends when its last thread exits, with that
   * thread's status: the group's (do_group_exit() sets every thread's
   * exit_code to it), which is what the parent's waitpid() gets.
   */
  #follow(event: ProcEvent): void {
    switch (event.type) {
      case "lost":
        // Thread creations or exits may be among the lost: list the threads again.
        for (const pid of this.#pending) {
          const stat = readProcStat(pid);
          if (stat !== null) this.#seedThreads(pid, stat);
        }
        this.#scheduleRecheck();
        return;
      case "fork":
        if (event.thread && this.#pending.has(event.childPid)) {
          this.#threads.get(event.childPid)?.add(event.childTid);
        }
        return;
      case "exec":
        // After execve a process has exactly one thread, with the process's id.
        if (this.#pending.has(event.pid)) this.#threads.set(event.pid, new Set([event.pid]));
        return;
      case "exit":
        this.#fromEvent(event);
        return;
    }
  }

  #fromEvent(event: ExitEvent): void {
    if (!this.#pending.has(event.pid)) return;
    this.#lastExit.set(event.pid, event);
    const live = this.#threads.get(event.pid);
    if (live !== undefined) {
      live.delete(event.tid);
      if (live.size === 0) this.#report(this.#fromExit(event));
      // Threads left whose exits never come (gone before we subscribed but
      // still listed) are caught by the liveness check, which then reports
      // this event's status.
      return;
    }
    // Threads unknown (/proc hidden): /proc or kill(0) tell when it is gone.
    this.#scheduleRecheck([event.pid]);
  }

  #fromExit(event: ExitEvent): ExitInfo {
    return this.#known(event.pid, event.status, "event", event.timestampNs);
  }

  #known(pid: number, status: number, source: ExitSource, endNs: bigint | null): ExitInfo {
    const decoded = decodeWaitStatus(status);
    return {
      pid,
      statusKnown: true,
      status,
      ...decoded,
      shellStatus: shellStatus(decoded),
      ...this.#timing(pid, endNs),
      source,
      method: this.#method,
    };
  }

  #unknown(pid: number, source: ExitSource, endNs: bigint | null = null): ExitInfo {
    return {
      pid,
      statusKnown: false,
      status: null,
      exitCode: null,
      signal: null,
      signalNumber: null,
      coreDumped: false,
      shellStatus: UNKNOWN_SHELL_STATUS,
      ...this.#timing(pid, endNs),
      source,
      method: this.#method,
    };
  }

  /** When it ended (monotonic ns) in wall time, and its run time from its boot-time start. */
  #timing(
    pid: number,
    endNs: bigint | null,
  ): Pick<ExitInfo, "timestampNs" | "time" | "runtimeMs"> {
    if (endNs === null) return { timestampNs: null, time: null, runtimeMs: null };
    // The clocks are read once per millisecond at most: 8,000 exits reported
    // together read them 8,000 times otherwise (~40 µs per exit here).
    const now = monotonicNs();
    if (now - this.#clocksReadNs > CLOCKS_FRESH_NS) {
      wallClock.sync();
      // Event times are CLOCK_MONOTONIC, start times CLOCK_BOOTTIME: shift by
      // their current difference (the time spent suspended).
      this.#bootShiftNs = boottimeNs() - monotonicNs();
      this.#clocksReadNs = now;
    }
    const time = new Date(Number(wallClock.wallNs(endNs) / 1_000_000n));
    const ticks = this.#startTicks.get(pid);
    if (ticks === undefined) return { timestampNs: endNs, time, runtimeMs: null };
    const endBootNs = endNs + this.#bootShiftNs;
    const startNs = ticks * 1_000_000_000n / BigInt(clockTicksPerSecond());
    const runtimeMs = Math.max(0, Number(endBootNs - startNs) / 1e6);
    return { timestampNs: endNs, time, runtimeMs };
  }

  #report(info: ExitInfo): void {
    if (this.#done || !this.#pending.delete(info.pid)) return;
    this.#ended.push(info);
    try {
      this.#options.onExit?.(info);
    } catch (error) {
      this.#finish(error);
      return;
    }
    if (this.#mode === "any" || this.#pending.size === 0) this.#finish();
  }

  #finish(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#recheckTimer);
    clearInterval(this.#livenessTimer);
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    this.#release();
    if (error === undefined) this.#resolve(this.#ended);
    else this.#reject(error);
  }
}
