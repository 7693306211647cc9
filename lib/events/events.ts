/**
 * The typed events procwatch reports.
 *
 * Naming follows what users see in `ps`, not the kernel's: `pid` is the
 * process id (the kernel's tgid) and `tid` is the thread id (the kernel's pid).
 * The type names, their kernel bits and how they are shown come from one
 * table, ./event_types.ts; each event type has its interface here.
 *
 * @module
 */

import type { ContainerInfo, Namespaces } from "./place.ts";

export { EVENT_TABLE, EVENT_TYPES, type EventType, type EventTypeRow } from "./event_types.ts";

/**
 * Fields every event has.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch()) {
 *   console.log(event.time.toISOString(), event.cpu, event.timestampNs);
 * }
 * ```
 */
export interface EventBase {
  /** The CPU the kernel reported the event on; `null` for events procwatch makes. */
  cpu: number | null;
  /** The kernel's monotonic clock when the event happened, in nanoseconds. */
  timestampNs: bigint;
  /** Wall-clock time of the event (millisecond precision; JSON output has nanoseconds). */
  time: Date;
  /**
   * What procwatch knows about the event's process (the child of a fork);
   * present when the watcher was opened with `context: true`.
   */
  process?: ProcessInfo;
}

/**
 * A process's context at the time of an event, from /proc and procwatch's
 * process table. Fields are `null` when unknown.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["exit"], context: true })) {
 *   if (event.type === "exit") console.log(event.process?.cmdline, event.process?.durationNs);
 * }
 * ```
 */
export interface ProcessInfo {
  /** The process (the child, for a fork). */
  pid: number;
  /** The process name (at most 15 bytes). */
  comm: string | null;
  /**
   * The arguments (argv) of the program image current at the event, empty ones
   * kept; `[]` for kernel threads; `null` when they could not be read (see
   * `cmdlineUnknown`) — never another image's.
   */
  cmdline: string[] | null;
  /**
   * Why `cmdline` is `null`: `"replaced"` — the process exec'd another program
   * before this one's argv was read (an exec chain such as `env env sleep 1`);
   * `"gone"` — it had exited first. `null` when `cmdline` is known.
   */
  cmdlineUnknown: "replaced" | "gone" | null;
  /** The executable's path. */
  exe: string | null;
  /** The working directory. */
  cwd: string | null;
  /** The effective user id. */
  uid: number | null;
  /** The effective user's name from /etc/passwd. */
  user: string | null;
  /** The parent process. */
  ppid: number | null;
  /** The parent's name. */
  parentComm: string | null;
  /** The controlling terminal (`pts/3`), `null` without one. */
  tty: string | null;
  /** When the process started, on the kernel's monotonic clock (like `timestampNs`). */
  startNs: bigint | null;
  /** How long the process lived; set on its exit event. */
  durationNs: bigint | null;
  /**
   * True when /proc/PID was already gone (or emptied by exit) when procwatch
   * looked: the fields are what the process table knew before.
   */
  procGone: boolean;
  /**
   * The cgroup path: the v2 one (the `0::` line of /proc/PID/cgroup); on a
   * hybrid host, where that is `/`, the v1 `name=systemd` one. Read at the
   * exec (by the exec-capture worker), at the fork, at each later event of
   * the live process and at each fork of a child of it, so a move to another
   * cgroup shows from its next exec or event on; an exit shows where the
   * process was last seen (after an exit /proc/PID may already be another
   * process's). `null` when never known.
   */
  cgroup?: string | null;
  /**
   * True when `cgroup` is not the process's own read: the parent's, taken at
   * the fork — the process was gone before procwatch could read its own (a
   * child starts in its parent's cgroup: cgroup_fork()/cgroup_post_fork(),
   * unless created with CLONE_INTO_CGROUP) — or, when neither procwatch nor
   * the exec-capture worker read it after its last exec, the one from before
   * that exec (a move just before the exec is then not seen).
   */
  cgroupInherited?: boolean;
  /**
   * The systemd unit from `cgroup`: the deepest `.service` (a system one, or
   * one of a user's manager, `user@1000.service/app.slice/foo.service` →
   * `foo.service`), else the deepest `.scope`; slices are not units. `null`
   * when the path names none.
   */
  unit?: string | null;
  /**
   * The container, from `cgroup`'s layout: docker, containerd (CRI), CRI-O,
   * podman, or `cri` for a bare id under kubepods; `pod` is the Kubernetes pod
   * uid when the path has one. `null` on the host.
   */
  container?: ContainerInfo | null;
  /**
   * The namespaces (pid, mnt, net, user, uts, ipc, cgroup) as inode numbers
   * of /proc/PID/ns/*, each with `host`: whether it is pid 1's. `null` when
   * never read.
   */
  namespaces?: Namespaces | null;
  /** True when `namespaces` are the parent's, taken at the fork (see `cgroupInherited`). */
  namespacesInherited?: boolean;
}

/**
 * A process or thread was created.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["fork"] })) {
 *   if (event.type === "fork") console.log(`${event.parentPid} -> ${event.childPid}`);
 * }
 * ```
 */
export interface ForkEvent extends EventBase {
  /** A process or thread was created. */
  type: "fork";
  /**
   * Process that forked. For a new thread the kernel reports the parent of
   * the whole process here (`task->real_parent`), not the creating thread.
   */
  parentPid: number;
  /** Thread that forked (see `parentPid` for threads). */
  parentTid: number;
  /** The new process (or, for a thread, the process it belongs to). */
  childPid: number;
  /** The new thread's id (equal to `childPid` for a new process). */
  childTid: number;
  /** True when a thread was created rather than a process. */
  thread: boolean;
}

/**
 * A process called `execve`.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["exec"] })) {
 *   if (event.type === "exec") console.log(`${event.pid} ran a new program`);
 * }
 * ```
 */
export interface ExecEvent extends EventBase {
  /** The process called `execve`. */
  type: "exec";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
}

/**
 * A process changed its real or effective user id.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["uid"] })) {
 *   if (event.type === "uid") console.log(event.pid, event.ruid, event.euid);
 * }
 * ```
 */
export interface UidEvent extends EventBase {
  /** The process changed its user ids. */
  type: "uid";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The real user id. */
  ruid: number;
  /** The effective user id. */
  euid: number;
}

/**
 * A process changed its real or effective group id.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["gid"] })) {
 *   if (event.type === "gid") console.log(event.pid, event.rgid, event.egid);
 * }
 * ```
 */
export interface GidEvent extends EventBase {
  /** The process changed its group ids. */
  type: "gid";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The real group id. */
  rgid: number;
  /** The effective group id. */
  egid: number;
}

/**
 * A process became a session leader (`setsid`).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["sid"] })) {
 *   if (event.type === "sid") console.log(`${event.pid} started a session`);
 * }
 * ```
 */
export interface SidEvent extends EventBase {
  /** The process called `setsid`. */
  type: "sid";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
}

/**
 * A tracer attached to (or, with tracer 0, detached from) a process.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["ptrace"] })) {
 *   if (event.type === "ptrace") console.log(event.tracerPid === 0 ? "detached" : `traced by ${event.tracerPid}`);
 * }
 * ```
 */
export interface PtraceEvent extends EventBase {
  /** A tracer attached or detached. */
  type: "ptrace";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The tracing process; 0 on detach. */
  tracerPid: number;
  /** The tracing thread; 0 on detach. */
  tracerTid: number;
}

/**
 * A process or thread changed its name (`prctl(PR_SET_NAME)`, `/proc/PID/comm`, exec).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["comm"] })) {
 *   if (event.type === "comm") console.log(`${event.pid} is now called ${event.comm}`);
 * }
 * ```
 */
export interface CommEvent extends EventBase {
  /** The process or thread was renamed. */
  type: "comm";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The new name (at most 15 bytes). */
  comm: string;
}

/**
 * A process started dumping core.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["coredump"] })) {
 *   if (event.type === "coredump") console.log(`${event.pid} dumps core (parent ${event.parentPid})`);
 * }
 * ```
 */
export interface CoredumpEvent extends EventBase {
  /** The process started dumping core. */
  type: "coredump";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The parent process; `null` on kernels before 4.18, which do not send it. */
  parentPid: number | null;
  /** The parent thread; `null` on kernels before 4.18. */
  parentTid: number | null;
}

/**
 * A process or thread ended.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch({ events: ["exit"] })) {
 *   if (event.type === "exit") console.log(event.pid, event.exitCode ?? event.signal, event.coreDumped);
 * }
 * ```
 */
export interface ExitEvent extends EventBase {
  /** The process or thread ended. */
  type: "exit";
  /** The process id (the kernel's tgid). */
  pid: number;
  /** The thread id (the kernel's pid); equals `pid` for the main thread. */
  tid: number;
  /** The exit code when it exited normally, else `null`. */
  exitCode: number | null;
  /** The name of the signal that killed it (`"SIGKILL"`), else `null`. */
  signal: string | null;
  /** Whether a core dump was written. */
  coreDumped: boolean;
  /** The raw wait status (`task_struct.exit_code`). */
  status: number;
  /** The signal sent to the parent on exit (`SIGCHLD` = 17; -1 for threads). */
  exitSignal: number;
  /** The parent process; `null` on kernels before 4.18, which do not send it. */
  parentPid: number | null;
  /** The parent thread; `null` on kernels before 4.18. */
  parentTid: number | null;
}

/**
 * Events were lost: the kernel dropped them, or the in-process queue overflowed.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * for await (const event of watch()) {
 *   if (event.type === "lost") console.error(`${event.count} events lost (${event.reason})`);
 * }
 * ```
 */
export interface LostEvent extends EventBase {
  /** Events were lost. */
  type: "lost";
  /** How many events were lost. */
  count: number;
  /**
   * Who lost them: the kernel (socket overrun), procwatch's own queue, or —
   * only from the CLI — its output queue, because stdout was not being read,
   * or an exporter (`--nats`) whose on-disk spool was full while the server
   * was down or slow.
   */
  reason: "kernel" | "queue" | "output" | "export";
  /** Whether `count` is exact (sequence gaps) or a lower bound (drop counters). */
  exact: boolean;
}

/**
 * An event the kernel sent.
 *
 * @example
 * ```ts
 * import type { KernelEvent } from "@procwatch/procwatch";
 * function pidOf(event: KernelEvent): number {
 *   return event.type === "fork" ? event.childPid : event.pid;
 * }
 * ```
 */
export type KernelEvent =
  | ForkEvent
  | ExecEvent
  | UidEvent
  | GidEvent
  | SidEvent
  | PtraceEvent
  | CommEvent
  | CoredumpEvent
  | ExitEvent;

/**
 * Anything a watcher yields.
 *
 * @example
 * ```ts
 * import type { ProcEvent } from "@procwatch/procwatch";
 * function describe(event: ProcEvent): string {
 *   return event.type === "lost" ? `${event.count} lost` : event.type;
 * }
 * ```
 */
export type ProcEvent = KernelEvent | LostEvent;

/**
 * The process an event is about: the child of a fork, else the process that
 * did it; `null` for `lost`.
 *
 * @example
 * ```ts
 * import { subjectPid } from "@procwatch/procwatch";
 * const pid = subjectPid({
 *   type: "exec", pid: 42, tid: 42, cpu: 0, timestampNs: 0n, time: new Date(),
 * });
 * console.log(pid); // 42
 * ```
 */
export function subjectPid(event: ProcEvent): number | null {
  switch (event.type) {
    case "fork":
      return event.childPid;
    case "lost":
      return null;
    default:
      return event.pid;
  }
}

/**
 * Whether an event is about a thread other than a process's main thread.
 *
 * @example
 * ```ts
 * import { isThreadEvent } from "@procwatch/procwatch";
 * console.log(isThreadEvent({
 *   type: "exec", pid: 42, tid: 43, cpu: 0, timestampNs: 0n, time: new Date(),
 * })); // true
 * ```
 */
export function isThreadEvent(event: ProcEvent): boolean {
  switch (event.type) {
    case "fork":
      return event.thread;
    case "lost":
      return false;
    default:
      return event.pid !== event.tid;
  }
}
