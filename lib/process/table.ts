/**
 * The process table: what procwatch knows about every live process, so that
 * each event can name its process — even after the process is gone.
 *
 * It is seeded from /proc (after subscribing, so nothing born in between is
 * missed), then kept current by the events themselves: fork (parent, start
 * time, inherited name and command line), exec (re-read from /proc at once,
 * by the caller), comm, uid/gid and exit (duration; the entry is evicted after
 * a short grace so that late events still find it).
 *
 * Memory is bounded: when the table is full, exited entries go first, then
 * entries whose process vanished unseen (an exit the kernel filtered out or
 * dropped), then the oldest.
 *
 * @module
 */

import { listPids } from "../../ffi/proc_dir.ts";
import { clockTicksPerSecond } from "../../ffi/clock.ts";
import { listDirectory, readFileBytes, readFileText, readLink } from "../../ffi/proc_fs.ts";
import { processExists } from "../../ffi/process.ts";
import { cgroupFromProcFile } from "./cgroup_path.ts";
import type { KernelEvent } from "../events/events.ts";
import { type NamespaceInodes, readNamespaceInodes } from "./namespaces.ts";
import { parseCmdline, ttyName } from "./proc_parse.ts";
import { parseProcStat, parseProcStatus } from "./proc_stat.ts";

/**
 * What the table holds about one process (its main thread).
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * using watcher = watch({ context: true });
 * await watcher.ready;
 * console.log(watcher.processTable?.size);
 * ```
 */
export interface ProcessRecord {
  /** The process id (tgid). */
  readonly pid: number;
  /** The parent process. */
  ppid: number | null;
  /** The name; `null` when unknown (e.g. exec'd and gone before it was read). */
  comm: string | null;
  /** argv; `null` until read. Replaced, never mutated, so events may share it. */
  cmdline: string[] | null;
  /** Why `cmdline` is `null` (see `ProcessInfo.cmdlineUnknown`); set by the context. */
  cmdlineUnknown?: "replaced" | "gone" | null;
  /** The executable's path. */
  exe: string | null;
  /** The working directory. */
  cwd: string | null;
  /** Real user id. */
  ruid: number | null;
  /** Effective user id (what `uid` filters on). */
  euid: number | null;
  /** Controlling terminal name. */
  tty: string | null;
  /** Start on the monotonic clock: the fork event's timestamp, or /proc's start time. */
  startNs: bigint | null;
  /** The exit event's timestamp, once it exited. */
  exitNs: bigint | null;
  /** The last exec event's timestamp: the key of the exec-capture worker's record. */
  execNs: bigint | null;
  /** Whether the process belongs to the watched sub-tree (`tree` option). */
  inTree: boolean;
  /** An exec happened and the name/command line were not read since. */
  stale: boolean;
  /** Whether cmdline/exe/cwd were read since the last exec. */
  detailed: boolean;
  /** A /proc read found the process gone. */
  gone: boolean;
  /**
   * Its live threads: thread id → when it was created (the thread fork
   * event's timestamp; `null` for threads that already ran when procwatch
   * first saw the process). The process ends when the last one exits, not
   * when its main thread does (`pthread_exit()`, or a non-main thread's
   * execve, which kills the old main thread and takes its id: de_thread()).
   */
  threads: Map<number, bigint | null>;
  /**
   * Its parent ended after it was read: the kernel moved it to a subreaper or
   * init (forget_original_parent() in exit_notify()); `ppid` still names the
   * old parent until {@linkcode ProcessTable.parentOf} re-reads it.
   */
  orphaned: boolean;
  /** Its cgroup path (see `ProcessInfo.cgroup`); `null` until read. */
  cgroup?: string | null;
  /** `cgroup` is the parent's, taken at the fork: the process was never read itself. */
  cgroupInherited?: boolean;
  /** Its namespaces' inode numbers (see lib/process/namespaces.ts); `null` until read. */
  namespaces?: NamespaceInodes | null;
  /** `namespaces` are the parent's, taken at the fork. */
  namespacesInherited?: boolean;
  /**
   * The last exec's cgroup is not read yet (gone before our read, the capture
   * worker behind): `cgroup` is from before that exec. Set by the context,
   * cleared by a read.
   */
  cgroupUnsettled?: boolean;
}

/**
 * Options of {@linkcode ProcessTable}.
 *
 * @example
 * ```ts
 * import { ProcessTable } from "./table.ts";
 * const table = new ProcessTable({ maxEntries: 10000 });
 * console.log(table.maxEntries);
 * ```
 */
export interface ProcessTableOptions {
  /**
   * Most entries kept.
   *
   * @default {65536}
   */
  maxEntries?: number;
  /**
   * How long an exited process stays, for late events, in milliseconds.
   *
   * @default {2000}
   */
  exitGraceMs?: number;
  /**
   * Read cmdline, exe and cwd when loading a process (else only stat/status).
   *
   * @default {true}
   */
  details?: boolean;
  /**
   * Root of the watched sub-tree: it and its descendants get `inTree`.
   *
   * @default {undefined} (no sub-tree)
   */
  treeRoot?: number;
  /**
   * Read cgroup and namespaces when loading a process.
   *
   * @default {false}
   */
  attribution?: boolean;
}

/**
 * A bounded pid → {@linkcode ProcessRecord} map, seeded from /proc and fed
 * with events in order.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import type { ProcessTable } from "@procwatch/procwatch/proc";
 *
 * using watcher = watch({ context: true });
 * const table: ProcessTable | null = watcher.processTable;
 * console.log(table?.get(1)?.comm); // "systemd"
 * ```
 */
export class ProcessTable {
  /** Most entries kept. */
  readonly maxEntries: number;
  readonly #graceNs: bigint;
  readonly #details: boolean;
  readonly #treeRoot: number | null;
  readonly #attribution: boolean;
  readonly #records = new Map<number, ProcessRecord>();
  /** Exited entries in exit order, for eviction after the grace. */
  #exited: ProcessRecord[] = [];
  #exitedHead = 0;
  /** Live entries by parent pid: their children move when the parent ends. */
  readonly #children = new Map<number, Set<ProcessRecord>>();
  /** The thread of the last exit event, whose start the event's context still needs. */
  #lastThreadExit:
    | { record: ProcessRecord; tid: number; startNs: bigint | null | undefined }
    | null = null;
  /** Entries removed to keep the table bounded (not counting exits). */
  evictedUnseen: number = 0;

  /** Creates an empty table; call {@linkcode seed} after subscribing. */
  constructor(options: ProcessTableOptions = {}) {
    this.maxEntries = Math.max(16, options.maxEntries ?? 65536);
    this.#graceNs = BigInt(Math.round((options.exitGraceMs ?? 2000) * 1e6));
    this.#details = options.details ?? true;
    this.#treeRoot = options.treeRoot ?? null;
    this.#attribution = options.attribution ?? false;
  }

  /** Number of entries. */
  get size(): number {
    return this.#records.size;
  }

  /** The entry of `pid`, if known. */
  get(pid: number): ProcessRecord | undefined {
    return this.#records.get(pid);
  }

  /**
   * Loads every process in /proc not yet known, and marks the watched
   * sub-tree. Call once, right after subscribing: events drained before it
   * are already in the table and win over /proc.
   */
  seed(): void {
    // Newest first: the highest pids are the youngest processes, the likeliest to exit
    // before the scan reaches them (and then their exit could not be named).
    for (const pid of listPids().reverse()) {
      if (!this.#records.has(pid)) this.load(pid);
    }
    if (this.#treeRoot !== null) {
      // Mark descendants by walking ppid links up to the root (memoised).
      const memo = new Map<number, boolean>();
      const inTree = (pid: number, depth: number): boolean => {
        if (pid === this.#treeRoot) return true;
        const known = memo.get(pid);
        if (known !== undefined) return known;
        const record = this.#records.get(pid);
        const result = record !== undefined && record.ppid !== null && record.ppid > 0 &&
          depth < 4096 && inTree(record.ppid, depth + 1);
        memo.set(pid, result);
        return result;
      };
      for (const record of this.#records.values()) {
        if (record.exitNs === null && inTree(record.pid, 0)) record.inTree = true;
      }
    }
  }

  /**
   * Reads `pid` from /proc into the table; `undefined` when it does not exist
   * — unless `keepGone`: then it is entered anyway, marked `gone`, with
   * nothing known (an exec's event names a process even when /proc no longer does).
   */
  load(pid: number, keepGone = false): ProcessRecord | undefined {
    const record: ProcessRecord = {
      pid,
      ppid: null,
      comm: null,
      cmdline: null,
      exe: null,
      cwd: null,
      ruid: null,
      euid: null,
      tty: null,
      startNs: null,
      exitNs: null,
      execNs: null,
      inTree: pid === this.#treeRoot,
      stale: true,
      detailed: false,
      gone: false,
      threads: new Map(),
      orphaned: false,
    };
    if (!this.refresh(record, this.#details, true) && !keepGone) return undefined;
    if (this.#attribution && !record.gone) this.readAttribution(record, true);
    // Thread forks from now on are events; those that already run are in /proc.
    for (const name of listDirectory(`/proc/${pid}/task`) ?? [String(pid)]) {
      const tid = Number(name);
      if (Number.isInteger(tid) && tid > 0) {
        record.threads.set(tid, tid === pid ? record.startNs : null);
      }
    }
    const parent = record.ppid === null ? undefined : this.#records.get(record.ppid);
    if (parent?.inTree) record.inTree = true;
    this.#insert(record);
    return record;
  }

  /**
   * Re-reads a process from /proc: stat (name, parent, terminal), with
   * `details` also cmdline, exe and cwd, with `ids` also the user and group
   * ids. Returns false (and marks the entry `gone`) when /proc has no such
   * process any more, or only its zombie.
   */
  refresh(record: ProcessRecord, details: boolean, ids = false): boolean {
    const stat = parseProcStat(readFileText(`/proc/${record.pid}/stat`, 1024) ?? "");
    if (stat === null) {
      // Reaped. After an exec the old name and arguments are not this program's: unknown.
      if (record.stale) {
        record.comm = null;
        record.cmdline = null;
        record.exe = null;
      }
      record.gone = true;
      return false;
    }
    // A zombie still has its name, parent and terminal; its memory (argv) is gone.
    record.comm = stat.comm;
    this.#setParent(record, stat.ppid);
    record.tty = ttyName(stat.ttyNr);
    record.startNs ??= stat.startTicks * 1_000_000_000n / BigInt(clockTicksPerSecond());
    record.stale = false;
    if (stat.state === "Z" || stat.state === "X") {
      if (!record.detailed) {
        record.cmdline = null;
        record.exe = null;
      }
      record.gone = true;
      return false;
    }
    record.gone = false;
    if (ids) {
      const status = parseProcStatus(readFileText(`/proc/${record.pid}/status`, 4096) ?? "");
      if (status !== null && status.uids.length >= 2) {
        record.ruid = status.uids[0];
        record.euid = status.uids[1];
      }
    }
    if (details) this.readDetails(record);
    return !record.gone;
  }

  /**
   * Reads cmdline, exe and cwd of a live process. When its memory is already
   * released (it is exiting), marks it `gone` and keeps what was known.
   */
  readDetails(record: ProcessRecord): boolean {
    const cmdline = readFileBytes(`/proc/${record.pid}/cmdline`, 1 << 17);
    const kernelThread = record.ppid === 2 || record.pid === 2;
    if (cmdline.ok && (cmdline.bytes.length > 0 || kernelThread)) {
      record.cmdline = parseCmdline(cmdline.bytes);
      // The link is gone once the process exits; an inherited value would name the parent's.
      record.exe = kernelThread ? null : readLink(`/proc/${record.pid}/exe`);
      record.cwd = readLink(`/proc/${record.pid}/cwd`) ?? record.cwd;
      record.detailed = true;
      return true;
    }
    // What we knew before an exec is not this program's: say "unknown" rather than repeat it.
    if (!record.detailed) {
      record.cmdline = null;
      record.exe = null;
    }
    record.gone = true;
    return false;
  }

  /**
   * Reads the cgroup of a process (the v2 path; on a hybrid host the
   * `name=systemd` one where the v2 path is `/`, see lib/process/cgroup_path.ts) and,
   * with `namespaces`, its namespaces. What cannot be read (it is gone) keeps
   * what was known — the parent's, when taken at the fork. Returns whether
   * the cgroup was read.
   */
  readAttribution(record: ProcessRecord, namespaces: boolean): boolean {
    const text = readFileText(`/proc/${record.pid}/cgroup`, 8192);
    const cgroup = text === null ? null : cgroupFromProcFile(text);
    if (cgroup !== null) {
      record.cgroup = cgroup;
      record.cgroupInherited = false;
      record.cgroupUnsettled = false;
    }
    if (namespaces) {
      const inodes = readNamespaceInodes(record.pid);
      if (inodes !== null) {
        record.namespaces = inodes;
        record.namespacesInherited = false;
      }
    }
    return cgroup !== null;
  }

  /**
   * Updates the table with one kernel event; call for every event, in order.
   * An exec marks the entry stale: the caller re-reads it (at once, while the
   * process still lives) with {@linkcode refresh}.
   */
  observe(event: KernelEvent): void {
    switch (event.type) {
      case "fork": {
        if (event.thread) {
          // The kernel names the whole process's parent (task->real_parent) here.
          const record = this.#records.get(event.childPid) ?? this.load(event.childPid);
          if (record !== undefined && record.exitNs === null) {
            record.threads.set(event.childTid, event.timestampNs);
            this.#setParent(record, event.parentPid);
          }
          break;
        }
        const parent = this.#records.get(event.parentPid) ?? this.load(event.parentPid);
        const child: ProcessRecord = {
          pid: event.childPid,
          ppid: event.parentPid,
          comm: parent?.comm ?? null,
          cmdline: parent?.cmdline ?? null,
          exe: parent?.exe ?? null,
          cwd: parent?.cwd ?? null,
          ruid: parent?.ruid ?? null,
          euid: parent?.euid ?? null,
          tty: parent?.tty ?? null,
          startNs: event.timestampNs,
          exitNs: null,
          execNs: null,
          inTree: event.childPid === this.#treeRoot || (parent?.inTree ?? false),
          stale: parent === undefined || parent.stale,
          detailed: parent?.detailed ?? false,
          gone: false,
          threads: new Map([[event.childTid, event.timestampNs]]),
          orphaned: false,
        };
        if (parent?.cgroup != null) {
          // copy_process() puts the child in its parent's css_set (cgroup_fork()) and
          // namespaces (copy_namespaces()) unless CLONE_INTO_CGROUP/CLONE_NEW* say
          // otherwise: right until the child is read itself, hence "inherited".
          child.cgroup = parent.cgroup;
          child.cgroupInherited = true;
        }
        if (parent?.namespaces != null) {
          child.namespaces = parent.namespaces;
          child.namespacesInherited = true;
        }
        this.#insert(child);
        break;
      }
      case "exec": {
        let record = this.#records.get(event.pid);
        if (record === undefined) {
          // Read now (the context settles which program it shows); kept even when gone,
          // so that the exec-capture worker's entry for this exec can still name it.
          record = this.load(event.pid, true);
        } else {
          record.stale = true;
          record.detailed = false;
        }
        if (record !== undefined) {
          record.execNs = event.timestampNs;
          // After execve a process has one thread, with the process's id (de_thread()):
          // an exit of that id just before was the old main thread's, not the process's.
          const start = record.threads.get(event.pid) ?? record.startNs;
          record.threads = new Map([[event.pid, start]]);
          if (record.exitNs !== null) record.exitNs = null;
        }
        break;
      }
      case "comm": {
        const record = this.#records.get(event.pid);
        if (record !== undefined && event.pid === event.tid) record.comm = event.comm;
        break;
      }
      case "uid": {
        const record = this.#records.get(event.pid);
        if (record !== undefined) {
          record.ruid = event.ruid;
          record.euid = event.euid;
        }
        break;
      }
      case "exit": {
        const record = this.#records.get(event.pid);
        if (record === undefined || record.exitNs !== null) break;
        // A process's exit names its parent now (the reaper, if it was reparented);
        // a thread's names none (0).
        if (event.pid === event.tid && event.parentPid !== null && event.parentPid > 0) {
          this.#setParent(record, event.parentPid);
          record.orphaned = false;
        }
        this.#lastThreadExit = { record, tid: event.tid, startNs: record.threads.get(event.tid) };
        record.threads.delete(event.tid);
        // The whole process ends with its last thread (proc_exit_connector runs in
        // do_exit() for every task).
        if (record.threads.size > 0) break;
        record.exitNs = event.timestampNs;
        this.#exited.push(record);
        const children = this.#children.get(record.pid);
        if (children !== undefined) {
          for (const child of children) if (child.ppid === record.pid) child.orphaned = true;
        }
        break;
      }
    }
    this.#evictExited(event.timestampNs);
  }

  /**
   * The current parent of a process. One whose parent ended since it was read
   * was moved to a subreaper or init: re-read from /proc (the exit events and
   * thread forks of the process name it exactly, and update it too).
   */
  parentOf(record: ProcessRecord): number | null {
    if (record.orphaned && record.exitNs === null) {
      const stat = parseProcStat(readFileText(`/proc/${record.pid}/stat`, 1024) ?? "");
      // Still the old parent: exit_notify() has not moved it yet; ask again later.
      if (stat !== null && stat.ppid !== record.ppid) {
        this.#setParent(record, stat.ppid);
        record.orphaned = false;
      }
    }
    return record.ppid;
  }

  /**
   * When thread `tid` of a process was created (its fork event), so that its
   * exit tells the thread's own lifetime, not the process's; the process's
   * start for the main thread; `null` for a thread created before procwatch
   * saw the process. Also answers for the thread of the last exit observed.
   */
  threadStartNs(record: ProcessRecord, tid: number): bigint | null {
    const last = this.#lastThreadExit;
    const known = last !== null && last.record === record && last.tid === tid
      ? last.startNs
      : record.threads.get(tid);
    return known ?? (tid === record.pid ? record.startNs : null);
  }

  #setParent(record: ProcessRecord, ppid: number): void {
    // Not (yet) in the table: #insert links it.
    if (this.#records.get(record.pid) !== record) {
      record.ppid = ppid;
      return;
    }
    if (record.ppid === ppid && this.#children.get(ppid)?.has(record)) return;
    this.#unlinkParent(record);
    record.ppid = ppid;
    let siblings = this.#children.get(ppid);
    if (siblings === undefined) this.#children.set(ppid, siblings = new Set());
    siblings.add(record);
  }

  #unlinkParent(record: ProcessRecord): void {
    if (record.ppid === null) return;
    const siblings = this.#children.get(record.ppid);
    if (siblings === undefined) return;
    siblings.delete(record);
    if (siblings.size === 0) this.#children.delete(record.ppid);
  }

  #delete(record: ProcessRecord): void {
    if (this.#records.get(record.pid) === record) this.#records.delete(record.pid);
    this.#unlinkParent(record);
  }

  /**
   * Removes exited entries older than the grace, as of `nowNs` (monotonic).
   *
   * @example
   * ```ts
   * import { monotonicNs } from "../../ffi/clock.ts";
   * import { ProcessTable } from "./table.ts";
   * const table = new ProcessTable();
   * table.evictExited(monotonicNs());
   * ```
   */
  evictExited(nowNs: bigint): void {
    this.#evictExited(nowNs);
  }

  #evictExited(nowNs: bigint): void {
    const exited = this.#exited;
    while (this.#exitedHead < exited.length) {
      const record = exited[this.#exitedHead];
      // An exec after it (de_thread()) un-ended it: it lives.
      if (record.exitNs !== null && nowNs - record.exitNs < this.#graceNs) break;
      this.#exitedHead++;
      if (record.exitNs !== null) this.#delete(record);
    }
    if (this.#exitedHead > 1024 && this.#exitedHead * 2 > exited.length) {
      this.#exited = exited.slice(this.#exitedHead);
      this.#exitedHead = 0;
    }
  }

  #insert(record: ProcessRecord): void {
    const old = this.#records.get(record.pid);
    if (old !== undefined) this.#unlinkParent(old);
    else if (this.#records.size >= this.maxEntries) this.#makeRoom();
    this.#records.set(record.pid, record);
    if (record.ppid !== null) {
      const ppid = record.ppid;
      record.ppid = null;
      this.#setParent(record, ppid);
    }
  }

  /** Frees a tenth of the table: exited entries, then vanished ones, then the oldest. */
  #makeRoom(): void {
    const target = Math.floor(this.maxEntries * 0.9);
    const exited = this.#exited;
    while (this.#records.size > target && this.#exitedHead < exited.length) {
      const record = exited[this.#exitedHead++];
      if (record.exitNs !== null) this.#delete(record);
    }
    if (this.#records.size <= target) return;
    for (const [pid, record] of this.#records) {
      if (record.exitNs === null && !processExists(pid)) {
        this.#delete(record);
        this.evictedUnseen++;
      }
    }
    for (const record of this.#records.values()) {
      if (this.#records.size <= target) break;
      this.#delete(record);
      this.evictedUnseen++;
    }
  }
}
