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
  /**
   * pid → its entry: a record object, or — once it has exited and no event
   * of the one it is handling needs the object any more — the sequence number
   * of its copy in {@linkcode #ring}.
   */
  readonly #records = new Map<number, ProcessRecord | number>();
  /**
   * Exited entries in exit order, for eviction after the grace, kept as
   * fields in typed arrays rather than as objects: in a fork storm every
   * entry outlives the young generation's collections (2 s of grace), so
   * entry objects were copied, promoted and left as garbage in the old
   * generation, which the heap grew to hold.
   */
  readonly #ring = new ExitedRing();
  /** Records that exited during the event being handled: copied into the ring at the next. */
  readonly #pending: ProcessRecord[] = [];
  /** Records made again from the ring (a late event asked for them) → their ring entry. */
  readonly #promoted = new Map<ProcessRecord, number>();
  /** Live entries by parent pid: their children move when the parent ends. */
  readonly #children = new Map<number, Set<ProcessRecord>>();
  /**
   * The thread of the last exit event, whose start the event's context still
   * needs (three fields, not an object: no allocation per exit).
   */
  #lastExitRecord: ProcessRecord | null = null;
  #lastExitTid = 0;
  #lastExitStartNs: bigint | null | undefined = undefined;
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
    const entry = this.#records.get(pid);
    return typeof entry === "number" ? this.#promote(pid, entry) : entry;
  }

  /** A record object again for an exited entry kept in the ring (until the next event). */
  #promote(pid: number, sequence: number): ProcessRecord {
    const record = this.#ring.materialize(sequence);
    this.#records.set(pid, record);
    this.#promoted.set(record, sequence);
    this.#pending.push(record);
    // An exited entry's parent link is dropped in the ring: back with the object. Its
    // parent may have ended since, which would have marked it (see `orphaned`).
    if (record.ppid !== null) {
      const ppid = record.ppid;
      const parent = this.#records.get(ppid);
      if (typeof parent === "number" || (parent !== undefined && parent.exitNs !== null)) {
        record.orphaned = true;
      }
      record.ppid = null;
      this.#setParent(record, ppid);
    }
    return record;
  }

  /** Copies the records that exited during the last event into the ring. */
  #compactPending(): void {
    const pending = this.#pending;
    for (let i = 0; i < pending.length; i++) {
      const record = pending[i];
      let sequence = this.#promoted.get(record);
      if (sequence !== undefined) this.#promoted.delete(record);
      // Replaced or evicted meanwhile; or un-ended by an exec (de_thread()): it lives.
      if (this.#records.get(record.pid) !== record || record.exitNs === null) continue;
      if (sequence !== undefined && this.#ring.exitNsAt(sequence) === record.exitNs) {
        this.#ring.write(sequence, record);
      } else {
        sequence = this.#ring.push(record);
      }
      this.#unlinkParent(record);
      this.#records.set(record.pid, sequence);
    }
    pending.length = 0;
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
        const record = this.get(pid);
        const result = record !== undefined && record.ppid !== null && record.ppid > 0 &&
          depth < 4096 && inTree(record.ppid, depth + 1);
        memo.set(pid, result);
        return result;
      };
      for (const record of this.#records.values()) {
        if (typeof record === "number") continue; // exited
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
    const parent = record.ppid === null ? undefined : this.get(record.ppid);
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
    if (this.#pending.length > 0) this.#compactPending();
    switch (event.type) {
      case "fork": {
        if (event.thread) {
          // The kernel names the whole process's parent (task->real_parent) here.
          const record = this.get(event.childPid) ?? this.load(event.childPid);
          if (record !== undefined && record.exitNs === null) {
            record.threads.set(event.childTid, event.timestampNs);
            this.#setParent(record, event.parentPid);
          }
          break;
        }
        const parent = this.get(event.parentPid) ?? this.load(event.parentPid);
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
        let record = this.get(event.pid);
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
        const record = this.get(event.pid);
        if (record !== undefined && event.pid === event.tid) record.comm = event.comm;
        break;
      }
      case "uid": {
        const record = this.get(event.pid);
        if (record !== undefined) {
          record.ruid = event.ruid;
          record.euid = event.euid;
        }
        break;
      }
      case "exit": {
        const record = this.#records.get(event.pid);
        // A number: it exited already (its entry is in the ring).
        if (record === undefined || typeof record === "number" || record.exitNs !== null) break;
        // A process's exit names its parent now (the reaper, if it was reparented);
        // a thread's names none (0).
        if (event.pid === event.tid && event.parentPid !== null && event.parentPid > 0) {
          this.#setParent(record, event.parentPid);
          record.orphaned = false;
        }
        this.#lastExitRecord = record;
        this.#lastExitTid = event.tid;
        this.#lastExitStartNs = record.threads.get(event.tid);
        record.threads.delete(event.tid);
        // The whole process ends with its last thread (proc_exit_connector runs in
        // do_exit() for every task).
        if (record.threads.size > 0) break;
        record.exitNs = event.timestampNs;
        this.#pending.push(record);
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
    const known = this.#lastExitRecord === record && this.#lastExitTid === tid
      ? this.#lastExitStartNs
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
    this.#promoted.delete(record);
  }

  /** Removes the ring's oldest entry, and its pid's entry if that is still this one. */
  #dropOldestExited(nowNs: bigint | null): boolean {
    const ring = this.#ring;
    const sequence = ring.head;
    const pid = ring.pidAt(sequence);
    const entry = this.#records.get(pid);
    if (entry === sequence) {
      if (nowNs !== null && nowNs - ring.exitNsAt(sequence) < this.#graceNs) return false;
      this.#records.delete(pid);
    } else if (
      entry !== undefined && typeof entry !== "number" && this.#promoted.get(entry) === sequence
    ) {
      // Made an object again by a late event; an exec after it (de_thread()) un-ended it: it lives.
      if (entry.exitNs !== null) {
        if (nowNs !== null && nowNs - entry.exitNs < this.#graceNs) return false;
        this.#delete(entry);
      }
      this.#promoted.delete(entry);
    }
    ring.shift();
    return true;
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
    if (this.#pending.length > 0) this.#compactPending();
    this.#evictExited(nowNs);
  }

  #evictExited(nowNs: bigint): void {
    while (this.#ring.length > 0) {
      if (!this.#dropOldestExited(nowNs)) return;
    }
    // The newest exits, not yet in the ring (a grace shorter than the gap between events).
    for (const record of this.#pending) {
      if (record.exitNs === null || this.#records.get(record.pid) !== record) continue;
      if (nowNs - record.exitNs < this.#graceNs) return;
      this.#delete(record);
    }
  }

  #insert(record: ProcessRecord): void {
    const old = this.#records.get(record.pid);
    if (old !== undefined && typeof old !== "number") {
      this.#unlinkParent(old);
      this.#promoted.delete(old);
    } else if (this.#records.size >= this.maxEntries) this.#makeRoom();
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
    while (this.#records.size > target && this.#ring.length > 0) this.#dropOldestExited(null);
    for (const record of this.#pending) {
      if (this.#records.size <= target) break;
      if (record.exitNs !== null) this.#delete(record);
    }
    if (this.#records.size <= target) return;
    for (const [pid, record] of this.#records) {
      if (typeof record !== "number" && record.exitNs === null && !processExists(pid)) {
        this.#delete(record);
        this.evictedUnseen++;
      }
    }
    for (const [pid, record] of this.#records) {
      if (this.#records.size <= target) break;
      if (typeof record === "number") this.#records.delete(pid);
      else this.#delete(record);
      this.evictedUnseen++;
    }
  }
}

/** Bits of {@linkcode ExitedRing}'s flags word. */
const IN_TREE = 1;
const STALE = 2;
const DETAILED = 4;
const GONE = 8;
const ORPHANED = 16;
const HAS_START = 32;
const HAS_EXEC = 64;
/** Two bits each from these shifts: 0 absent (`undefined`), 1 false, 2 true. */
const CGROUP_INHERITED_SHIFT = 8;
const NAMESPACES_INHERITED_SHIFT = 10;
const CGROUP_UNSETTLED_SHIFT = 12;
/** The references an entry keeps, in this order: `refs[slot * REFS + field]`. */
const REF_COMM = 0;
const REF_CMDLINE = 1;
const REF_EXE = 2;
const REF_CWD = 3;
const REF_TTY = 4;
const REF_CGROUP = 5;
const REF_NAMESPACES = 6;
const REF_CMDLINE_UNKNOWN = 7;
const REFS = 8;

function threeState(value: boolean | undefined, shift: number): number {
  return (value === undefined ? 0 : value ? 2 : 1) << shift;
}

function fromThreeState(flags: number, shift: number): boolean | undefined {
  const value = (flags >> shift) & 3;
  return value === 0 ? undefined : value === 2;
}

/**
 * A FIFO of exited process records as columns of typed arrays (numbers,
 * times, flags) plus one array of references to the strings and arrays the
 * records shared anyway: adding an entry allocates nothing on the V8 heap
 * (but when the ring doubles). Entries are numbered by a sequence that only
 * grows; slot = sequence & mask.
 */
class ExitedRing {
  head = 0;
  #tail = 0;
  #mask = 0;
  #pid = new Int32Array(0);
  /** `ppid`, `ruid`, `euid`: NaN for null. */
  #ppid = new Float64Array(0);
  #ruid = new Float64Array(0);
  #euid = new Float64Array(0);
  #startNs = new BigInt64Array(0);
  #exitNs = new BigInt64Array(0);
  #execNs = new BigInt64Array(0);
  #flags = new Uint32Array(0);
  #refs: unknown[] = [];

  constructor(capacity = 1024) {
    this.#resize(capacity);
  }

  get length(): number {
    return this.#tail - this.head;
  }

  pidAt(sequence: number): number {
    return this.#pid[sequence & this.#mask];
  }

  exitNsAt(sequence: number): bigint {
    return this.#exitNs[sequence & this.#mask];
  }

  /** Appends an exited record; returns its sequence number. */
  push(record: ProcessRecord): number {
    if (this.#tail - this.head > this.#mask) this.#resize((this.#mask + 1) * 2);
    const sequence = this.#tail++;
    this.write(sequence, record);
    return sequence;
  }

  /** Stores `record` as entry `sequence`. */
  write(sequence: number, record: ProcessRecord): void {
    const slot = sequence & this.#mask;
    this.#pid[slot] = record.pid;
    this.#ppid[slot] = record.ppid ?? NaN;
    this.#ruid[slot] = record.ruid ?? NaN;
    this.#euid[slot] = record.euid ?? NaN;
    this.#startNs[slot] = record.startNs ?? 0n;
    this.#exitNs[slot] = record.exitNs ?? 0n;
    this.#execNs[slot] = record.execNs ?? 0n;
    this.#flags[slot] = (record.inTree ? IN_TREE : 0) | (record.stale ? STALE : 0) |
      (record.detailed ? DETAILED : 0) | (record.gone ? GONE : 0) |
      (record.orphaned ? ORPHANED : 0) | (record.startNs !== null ? HAS_START : 0) |
      (record.execNs !== null ? HAS_EXEC : 0) |
      threeState(record.cgroupInherited, CGROUP_INHERITED_SHIFT) |
      threeState(record.namespacesInherited, NAMESPACES_INHERITED_SHIFT) |
      threeState(record.cgroupUnsettled, CGROUP_UNSETTLED_SHIFT);
    const refs = this.#refs;
    const at = slot * REFS;
    refs[at + REF_COMM] = record.comm;
    refs[at + REF_CMDLINE] = record.cmdline;
    refs[at + REF_EXE] = record.exe;
    refs[at + REF_CWD] = record.cwd;
    refs[at + REF_TTY] = record.tty;
    refs[at + REF_CGROUP] = record.cgroup;
    refs[at + REF_NAMESPACES] = record.namespaces;
    refs[at + REF_CMDLINE_UNKNOWN] = record.cmdlineUnknown;
  }

  /** A new record object with entry `sequence`'s fields (no live threads: it exited). */
  materialize(sequence: number): ProcessRecord {
    const slot = sequence & this.#mask;
    const flags = this.#flags[slot];
    const refs = this.#refs;
    const at = slot * REFS;
    const ppid = this.#ppid[slot];
    const ruid = this.#ruid[slot];
    const euid = this.#euid[slot];
    return {
      pid: this.#pid[slot],
      ppid: Number.isNaN(ppid) ? null : ppid,
      comm: refs[at + REF_COMM] as string | null,
      cmdline: refs[at + REF_CMDLINE] as string[] | null,
      cmdlineUnknown: refs[at + REF_CMDLINE_UNKNOWN] as ProcessRecord["cmdlineUnknown"],
      exe: refs[at + REF_EXE] as string | null,
      cwd: refs[at + REF_CWD] as string | null,
      ruid: Number.isNaN(ruid) ? null : ruid,
      euid: Number.isNaN(euid) ? null : euid,
      tty: refs[at + REF_TTY] as string | null,
      startNs: (flags & HAS_START) !== 0 ? this.#startNs[slot] : null,
      exitNs: this.#exitNs[slot],
      execNs: (flags & HAS_EXEC) !== 0 ? this.#execNs[slot] : null,
      inTree: (flags & IN_TREE) !== 0,
      stale: (flags & STALE) !== 0,
      detailed: (flags & DETAILED) !== 0,
      gone: (flags & GONE) !== 0,
      threads: new Map(),
      orphaned: (flags & ORPHANED) !== 0,
      cgroup: refs[at + REF_CGROUP] as string | null | undefined,
      cgroupInherited: fromThreeState(flags, CGROUP_INHERITED_SHIFT),
      namespaces: refs[at + REF_NAMESPACES] as NamespaceInodes | null | undefined,
      namespacesInherited: fromThreeState(flags, NAMESPACES_INHERITED_SHIFT),
      cgroupUnsettled: fromThreeState(flags, CGROUP_UNSETTLED_SHIFT),
    };
  }

  /** Removes the oldest entry (its references go, so what only it held can be collected). */
  shift(): void {
    const at = (this.head & this.#mask) * REFS;
    this.#refs.fill(null, at, at + REFS);
    this.head++;
  }

  #resize(capacity: number): void {
    const old = {
      mask: this.#mask,
      pid: this.#pid,
      ppid: this.#ppid,
      ruid: this.#ruid,
      euid: this.#euid,
      startNs: this.#startNs,
      exitNs: this.#exitNs,
      execNs: this.#execNs,
      flags: this.#flags,
      refs: this.#refs,
    };
    this.#mask = capacity - 1;
    this.#pid = new Int32Array(capacity);
    this.#ppid = new Float64Array(capacity);
    this.#ruid = new Float64Array(capacity);
    this.#euid = new Float64Array(capacity);
    this.#startNs = new BigInt64Array(capacity);
    this.#exitNs = new BigInt64Array(capacity);
    this.#execNs = new BigInt64Array(capacity);
    this.#flags = new Uint32Array(capacity);
    this.#refs = new Array<unknown>(capacity * REFS).fill(null);
    for (let sequence = this.head; sequence < this.#tail; sequence++) {
      const from = sequence & old.mask;
      const to = sequence & this.#mask;
      this.#pid[to] = old.pid[from];
      this.#ppid[to] = old.ppid[from];
      this.#ruid[to] = old.ruid[from];
      this.#euid[to] = old.euid[from];
      this.#startNs[to] = old.startNs[from];
      this.#exitNs[to] = old.exitNs[from];
      this.#execNs[to] = old.execNs[from];
      this.#flags[to] = old.flags[from];
      for (let i = 0; i < REFS; i++) this.#refs[to * REFS + i] = old.refs[from * REFS + i];
    }
  }
}
