/**
 * Process context for events: keeps the process table current, applies the
 * process filters, and attaches {@linkcode ProcessInfo} to accepted events.
 *
 * Cost is paid only where asked for. The filters that need nothing but the
 * table (sub-tree, parent, user) run first; a process's name is read from
 * /proc only when a name filter or context needs it; its command line only
 * when `match` or context needs it. Those reads happen at the exec event, in
 * the watcher's drain — before a short-lived process can vanish.
 *
 * Each event's context is the program image current at that event. The
 * table holds one record per pid, so what is read from /proc must belong to
 * the exec being handled: when a drain handles several execs of one pid
 * (`env env sleep 1`), /proc already shows the last program. The name and
 * argv of an exec therefore come from the exec-capture worker's entry for
 * that very exec (keyed by its timestamp), or from our own read when no
 * later exec of the pid is known to have begun before the read ended; else
 * they are unknown (`cmdline: null`, `cmdlineUnknown: "replaced"`), never
 * another image's.
 *
 * Where a process runs — cgroup (hence unit and container) and namespaces —
 * is read at its exec by the same worker, at its fork and at each later event
 * of a live process; a child gone before any read keeps its parent's, taken
 * at the fork, marked inherited. The cgroup, unit and container filters run
 * after the table's and before the command-line reads.
 *
 * @module
 */

import { monotonicNs } from "../../ffi/clock.ts";
import type { DecodedMessage } from "../connector/decode.ts";
import type { KernelEvent, ProcessInfo } from "../events/events.ts";
import type { Captured } from "./capture_ring.ts";
import { type CgroupAttribution, parseCgroupPath } from "./cgroup_path.ts";
import { ExecCapture } from "./exec_capture.ts";
import { type CompiledFilters, hasPlaceFilters, matchesPlace } from "./filters.ts";
import {
  describeNamespaces,
  hostNamespaceInodes,
  type NamespaceInodes,
  type Namespaces,
} from "./namespaces.ts";
import { type ProcessRecord, ProcessTable, type ProcessTableOptions } from "./table.ts";
import type { UserNames } from "./users.ts";

/** Options of {@linkcode EventContext}. */
export interface EventContextOptions extends Omit<ProcessTableOptions, "treeRoot" | "details"> {
  /** Attach `process` to events. */
  context: boolean;
  /** With `context`: read namespaces at forks and execs (default `true`). */
  namespaces?: boolean;
  /** The watcher's own pid filter: no /proc reads for other processes. */
  pids?: ReadonlySet<number> | null;
  /**
   * Run the exec-capture worker (a second subscription on its own thread) so
   * that processes which exit before the watcher looks still get their
   * command line. Used only when command lines are needed. Default `true`.
   */
  execCapture?: boolean;
}

/**
 * The table, filters and enrichment a watcher runs for each event.
 *
 * @example
 * ```ts
 * import { EventContext } from "./enrich.ts";
 * import { compileFilters } from "./filters.ts";
 * import { UserNames } from "@procwatch/procwatch/proc";
 * const users = new UserNames();
 * const context = new EventContext(compileFilters({ comm: "sh" }, users), users, {
 *   context: true,
 * });
 * context.arm(true); // before subscribing
 * context.start(); // after
 * // for each kernel event, in order:
 * // context.observe(event); if (context.admit(event)) deliver(event);
 * ```
 */
export class EventContext {
  /** The process table. */
  readonly table: ProcessTable;
  readonly #filters: CompiledFilters;
  readonly #users: UserNames;
  readonly #context: boolean;
  /** Namespaces are read (context, unless turned off). */
  readonly #namespaces: boolean;
  /** Names are needed (name filter, match or context). */
  readonly #names: boolean;
  /** Command lines are needed (match or context). */
  readonly #details: boolean;
  readonly #wantCapture: boolean;
  /** Cgroup and namespaces are needed (context, or a cgroup/unit/container filter). */
  readonly #attribution: boolean;
  readonly #placeFilters: boolean;
  /** Parsed cgroup paths (few distinct ones: one per unit or container). */
  readonly #places = new Map<string, CgroupAttribution>();
  /** The API form of each namespace set (records share the arrays of their parents). */
  readonly #namespaceInfo = new WeakMap<NamespaceInodes, Namespaces>();
  readonly #pids: ReadonlySet<number> | null;
  #capture: ExecCapture | null = null;
  /** When the scan before subscribing began (only with a running capture worker). */
  #seededAtNs: bigint | null = null;
  /** When the scan after subscribing ended (`null` before: events drained while subscribing). */
  #startedAtNs: bigint | null = null;
  /** Per pid, the newest exec timestamp in the batch being handled. */
  readonly #batchExecs = new Map<number, bigint>();
  /** Parents whose cgroup was read at a fork of the batch being handled. */
  readonly #parentsRead = new Set<ProcessRecord>();

  /** Creates the context; call {@linkcode start} once subscribed. */
  constructor(filters: CompiledFilters, users: UserNames, options: EventContextOptions) {
    this.#filters = filters;
    this.#users = users;
    this.#context = options.context;
    this.#namespaces = options.context && (options.namespaces ?? true);
    this.#details = options.context || filters.match !== null;
    this.#names = this.#details || filters.comm !== null;
    this.#placeFilters = hasPlaceFilters(filters);
    this.#attribution = options.context || this.#placeFilters;
    // Read once, before any process of ours could have left them (see namespaces.ts).
    if (this.#attribution) hostNamespaceInodes();
    this.table = new ProcessTable({
      maxEntries: options.maxEntries,
      exitGraceMs: options.exitGraceMs,
      details: this.#details,
      treeRoot: filters.tree ?? undefined,
      attribution: this.#attribution,
    });
    // The worker reads the cgroup at each exec too: a place filter needs it for a process
    // that moved itself, exec'd and exited before the watcher looked.
    this.#wantCapture = (this.#details || hasPlaceFilters(filters)) &&
      (options.execCapture ?? true);
    this.#pids = options.pids ?? null;
  }

  /** Settles when the exec-capture worker (if any) listens. */
  get ready(): Promise<void> {
    return this.#capture?.ready ?? Promise.resolve();
  }

  /**
   * Whether the exec-capture worker found that this kernel has no event-type
   * filter (then probing for it again is only a delay).
   */
  get kernelFilterAbsent(): boolean {
    return this.#capture !== null && this.#capture.running && !this.#capture.kernelFiltered;
  }

  /** Stops the exec-capture worker. */
  close(): void {
    this.#capture?.close();
  }

  /**
   * Call before subscribing: starts the exec-capture worker (when command
   * lines are needed) and returns once it listens, so that it has caught
   * every exec the watcher will receive — the first events after start
   * included. `kernelFilter`: may the kernel filter event types.
   */
  arm(kernelFilter: boolean): void {
    if (this.#wantCapture && this.#capture === null) {
      this.#capture = new ExecCapture(kernelFilter, this.#attribution, this.#namespaces);
    }
    if (this.#capture?.running) {
      // Scan /proc before subscribing too: a process that exits between the subscription
      // and the scan after it is then still known (a scan takes 20 ms, far more on a
      // loaded machine). What it misses — programs exec'd before the subscription —
      // the armed worker has caught; start() applies them.
      this.#seededAtNs = monotonicNs();
      this.table.seed();
    }
  }

  /**
   * Call once subscribed: loads the processes that already run (those not yet
   * known), and brings the ones scanned before subscribing up to date.
   */
  start(): void {
    const capture = this.#capture;
    if (this.#seededAtNs !== null && capture !== null) {
      for (const [pid, execNs] of capture.newestExecsAfter(this.#seededAtNs)) {
        const record = this.table.get(pid);
        // Newer than what the scan read, unless an event since has settled it already.
        if (record === undefined || (record.execNs !== null && record.execNs >= execNs)) continue;
        const found = capture.lookup(pid, execNs);
        record.execNs = execNs;
        if (found !== null) this.#takeCapture(record, found);
        else this.#unknownImage(record, "replaced", null);
      }
    }
    this.table.seed();
    this.#startedAtNs = monotonicNs();
  }

  /**
   * Call with each batch of messages before handling them: an exec whose pid
   * execs again later in the batch has been replaced already, and /proc
   * shows the later program.
   */
  preview(messages: readonly DecodedMessage[]): void {
    this.#parentsRead.clear();
    const execs = this.#batchExecs;
    execs.clear();
    if (!this.#names) return;
    for (const message of messages) {
      if (message.kind === "event" && message.event.type === "exec") {
        execs.set(message.event.pid, message.event.timestampNs);
      }
    }
  }

  /**
   * Updates the table with an event (call for every kernel event, in order).
   * At an exec of a process the filters may want, settles its new name and
   * command line now, while it surely still exists.
   */
  observe(event: KernelEvent): void {
    if (this.#attribution && event.type === "fork" && !event.thread) {
      // The child starts in its parent's cgroup: make sure that is the parent's of now (it
      // may have moved since it was read), for a child gone before it is read itself.
      // Once per batch and parent: every fork of the batch happened before the
      // batch was received, so a second read would be no nearer its fork (a
      // fork storm's parent would be read once per child).
      const parent = this.table.get(event.parentPid);
      if (parent !== undefined && !parent.gone && !this.#parentsRead.has(parent)) {
        this.#parentsRead.add(parent);
        this.table.readAttribution(parent, false);
      }
    }
    this.table.observe(event);
    if (event.type === "fork") {
      // The child runs its parent's image: what is unknown about it is unknown for the child too.
      const child = this.table.get(event.childPid);
      if (!event.thread && child !== undefined && child.startNs === event.timestampNs) {
        child.cmdlineUnknown = this.table.get(event.parentPid)?.cmdlineUnknown ?? null;
      }
      return;
    }
    if (event.type !== "exec" || !(this.#names || this.#attribution)) return;
    if (this.#pids !== null && !this.#pids.has(event.pid)) return;
    const record = this.table.get(event.pid);
    if (record === undefined || !this.#tableMatch(record)) return;
    // A move to another cgroup shows here at the latest (one small read); when the process
    // is gone already, the worker's read at the exec says where it was.
    if (this.#attribution) {
      const read = !record.gone && this.table.readAttribution(record, false);
      record.cgroupUnsettled = !read &&
        !this.#placeFromCapture(record, this.#capture?.lookup(record.pid, event.timestampNs));
    }
    if (!this.#placeMatch(record)) return;
    if (this.#names) this.#settleExec(record, event.timestampNs);
  }

  /** Whether an event passes the filters; attaches `process` when asked to. */
  admit(event: KernelEvent): boolean {
    const pid = event.type === "fork" ? event.childPid : event.pid;
    const exited = event.type === "exit";
    let record = this.table.get(pid);
    // An exited process has nothing left in /proc to read.
    if (record === undefined && !exited) record = this.table.load(pid);
    if (record === undefined) {
      if (
        this.#filters.tree !== null || this.#filters.ppid !== null || this.#filters.uid !== null
      ) {
        return false;
      }
      if (this.#filters.comm !== null || this.#filters.match !== null) return false;
      if (this.#placeFilters) return false;
      if (this.#context) {
        event.process = (exited ? this.#bornWhileStarting(pid, event.timestampNs) : null) ??
          unknownProcess(pid);
      }
      return true;
    }
    if (!this.#tableMatch(record)) return false;
    if (record.cgroupUnsettled && record.execNs !== null && this.#capture !== null) {
      // Gone before its exec's cgroup was read, the worker behind then: it may have it now.
      record.cgroupUnsettled = !this.#placeFromCapture(
        record,
        this.#capture.peek(record.pid, record.execNs),
      );
    }
    // The exec's own read is done in observe(); a fork's child gets its own namespaces
    // (clone(CLONE_NEW*) gives it new ones: `unshare -p -f`).
    // Not at an exit: by the time the watcher handles it the process may have been reaped
    // and its pid reused (pid_max is 32768 on many hosts), so /proc/PID would be another
    // process's. An exit shows where the process was last seen.
    if (this.#attribution && !exited && !record.gone && event.type !== "exec") {
      // Namespaces only for the context (no filter needs them).
      this.table.readAttribution(
        record,
        this.#namespaces && (event.type === "fork" || record.namespaces == null),
      );
    }
    if (!this.#placeMatch(record)) return false;
    if (this.#names && !exited) this.#freshen(record);
    if (
      record.cmdline === null && record.cmdlineUnknown === "gone" && record.execNs !== null &&
      this.#capture !== null
    ) {
      // Gone before anyone read it at the exec: the worker may have caught it since.
      const late = this.#capture.peek(record.pid, record.execNs);
      if (late?.status === "captured") this.#takeCapture(record, late);
    }
    const filters = this.#filters;
    if (filters.comm !== null && (record.comm === null || !filters.comm.has(record.comm))) {
      return false;
    }
    if (filters.match !== null) {
      filters.match.lastIndex = 0;
      if (!filters.match.test(matchText(record))) return false;
    }
    if (this.#context) event.process = this.#info(record, event);
    return true;
  }

  /**
   * The context of a process unknown at its exit: born after the scan before
   * subscribing began (no fork event, gone before the scan after), yet the
   * armed worker may have caught its exec — its newest, so its last program.
   */
  #bornWhileStarting(pid: number, exitNs: bigint): ProcessInfo | null {
    const capture = this.#capture;
    // Only then: a process alive when start() ended was loaded by its scan.
    if (capture === null || this.#seededAtNs === null) return null;
    if (this.#startedAtNs !== null && exitNs > this.#startedAtNs) return null;
    const execNs = capture.newestExecOf(pid, this.#seededAtNs, exitNs);
    const found = execNs === null ? null : capture.lookup(pid, execNs);
    if (found?.status !== "captured") return null;
    const place = this.#place(found.cgroup ?? null);
    return {
      ...unknownProcess(pid),
      comm: found.comm,
      cmdline: found.cmdline,
      cmdlineUnknown: null,
      exe: found.exe,
      cgroup: found.cgroup ?? null,
      unit: place?.unit ?? null,
      container: place?.container ?? null,
      namespaces: found.namespaces === undefined || !this.#namespaces
        ? null
        : this.#namespacesOf(found.namespaces),
    };
  }

  /**
   * Settles name, argv and executable of the image exec'd at `execNs`: from the
   * worker's entry for that exec, else from our own read of /proc when no
   * later exec of the pid began before it ended, else unknown.
   */
  #settleExec(record: ProcessRecord, execNs: bigint): void {
    const capture = this.#capture;
    const laterInBatch = (this.#batchExecs.get(record.pid) ?? execNs) > execNs;
    // Parent, terminal and whether it still runs are the process's, not the image's.
    const alive = this.table.refresh(record, false);
    const found = capture?.lookup(record.pid, execNs) ?? null;
    if (found !== null) {
      this.#takeCapture(record, found);
    } else if (laterInBatch) {
      this.#unknownImage(record, "replaced", null);
    } else {
      if (alive && this.#details) this.table.readDetails(record);
      if (alive && this.#attribution) this.table.readAttribution(record, this.#namespaces);
      const readEndNs = monotonicNs();
      if (capture !== null && capture.execedBetween(record.pid, execNs, readEndNs)) {
        this.#unknownImage(record, "replaced", null);
      } else if (!this.#details) {
        this.#unknownImage(record, null, record.comm); // names only: argv not wanted
      } else if (record.cmdline === null) {
        this.#unknownImage(record, "gone", record.comm); // a zombie still has its name
      } else {
        record.cmdlineUnknown = null;
      }
    }
    record.stale = false;
    record.detailed = true;
  }

  /** Takes the cgroup the worker read at an exec; whether there was one. */
  #placeFromCapture(record: ProcessRecord, found: Captured | null | undefined): boolean {
    if (found == null || found.status === "replaced" || found.cgroup === undefined) return false;
    record.cgroup = found.cgroup;
    record.cgroupInherited = false;
    return true;
  }

  #takeCapture(record: ProcessRecord, captured: Captured): void {
    if (captured.status !== "replaced") {
      // The worker's read, taken at the exec itself: the place of the image the event is about.
      if (captured.cgroup !== undefined) {
        record.cgroup = captured.cgroup;
        record.cgroupInherited = false;
        record.cgroupUnsettled = false;
      }
      if (captured.namespaces !== undefined) {
        record.namespaces = captured.namespaces;
        record.namespacesInherited = false;
      } else if (this.#namespaces && !record.gone) {
        this.table.readAttribution(record, true);
      }
    }
    if (captured.status === "captured") {
      record.comm = captured.comm;
      record.cmdline = captured.cmdline;
      record.exe = captured.exe;
      record.cmdlineUnknown = null;
    } else {
      this.#unknownImage(
        record,
        captured.status,
        captured.status === "gone" ? captured.comm : null,
      );
    }
    record.detailed = true;
    record.stale = false;
  }

  /** This image's argv cannot be known; nothing of another image is kept. */
  #unknownImage(
    record: ProcessRecord,
    reason: "replaced" | "gone" | null,
    comm: string | null,
  ): void {
    record.comm = comm;
    record.cmdline = null;
    record.exe = null;
    record.cmdlineUnknown = reason;
  }

  /** The cgroup, unit and container filters, on the cgroup the table holds. */
  #placeMatch(record: ProcessRecord): boolean {
    if (!this.#placeFilters) return true;
    const cgroup = record.cgroup ?? null;
    return matchesPlace(this.#filters, cgroup, this.#place(cgroup));
  }

  /** What a cgroup path names (parsed once per path). */
  #place(cgroup: string | null): CgroupAttribution | null {
    if (cgroup === null) return null;
    let place = this.#places.get(cgroup);
    if (place === undefined) {
      if (this.#places.size >= 4096) this.#places.clear();
      place = parseCgroupPath(cgroup);
      this.#places.set(cgroup, place);
    }
    return place;
  }

  #namespacesOf(inodes: NamespaceInodes): Namespaces {
    let info = this.#namespaceInfo.get(inodes);
    if (info === undefined) {
      info = describeNamespaces(inodes, hostNamespaceInodes());
      this.#namespaceInfo.set(inodes, info);
    }
    return info;
  }

  /** The filters that need only the table. */
  #tableMatch(record: ProcessRecord): boolean {
    const filters = this.#filters;
    if (filters.tree !== null && !record.inTree) return false;
    if (filters.ppid !== null && this.table.parentOf(record) !== filters.ppid) return false;
    if (filters.uid !== null && (record.euid === null || !filters.uid.has(record.euid))) {
      return false;
    }
    return true;
  }

  /** Brings names (and, when needed, the command line) of a live process up to date. */
  #freshen(record: ProcessRecord): void {
    if (record.gone) return;
    if (record.stale && record.execNs !== null && this.#details) {
      // An exec not settled when it happened (the filters did not want it then).
      this.#settleExec(record, record.execNs);
      return;
    }
    if (record.stale) {
      if (!this.table.refresh(record, false)) return;
      const comm = this.#filters.comm;
      // A name filter that fails spares the command-line read.
      if (comm !== null && (record.comm === null || !comm.has(record.comm))) return;
    }
    if (this.#details && !record.detailed) this.table.readDetails(record);
  }

  #info(record: ProcessRecord, event: KernelEvent): ProcessInfo {
    const parentPid = event.type === "fork" ? event.parentPid : this.table.parentOf(record);
    let parent = parentPid === null ? undefined : this.table.get(parentPid);
    if (parent === undefined && parentPid !== null && parentPid > 0) {
      parent = this.table.load(parentPid);
    }
    const exitNs = event.type === "exit" ? event.timestampNs : null;
    // A thread's exit: its own lifetime, from its clone (the table keeps each thread's start).
    const startNs = event.type === "exit" ? this.table.threadStartNs(record, event.tid) : null;
    const comm = record.comm;
    const cmdline = record.cmdline;
    const cmdlineUnknown = cmdline === null ? (record.cmdlineUnknown ?? "gone") : null;
    const uid = record.euid;
    const user = uid === null ? null : this.#users.name(uid);
    const durationNs = exitNs !== null && startNs !== null ? exitNs - startNs : null;
    const cgroup = record.cgroup ?? null;
    const place = this.#place(cgroup);
    // Not asked for: not shown, rather than a value read long ago or a parent's.
    const namespaces = this.#namespaces ? record.namespaces ?? null : null;
    // One literal: fields added to it afterwards would cost each event's context a
    // second object and a property array (the context implies attribution).
    return {
      pid: record.pid,
      comm,
      cmdline,
      cmdlineUnknown,
      exe: record.exe,
      cwd: record.cwd,
      uid,
      user,
      ppid: parentPid,
      parentComm: parent?.comm ?? null,
      tty: record.tty,
      startNs: record.startNs,
      durationNs,
      procGone: record.gone,
      cgroup,
      // Not read for this image: the parent's, or from before an exec that moved first.
      cgroupInherited: cgroup !== null &&
        (record.cgroupInherited === true || record.cgroupUnsettled === true),
      unit: place?.unit ?? null,
      container: place?.container ?? null,
      namespaces: namespaces === null ? null : this.#namespacesOf(namespaces),
      namespacesInherited: namespaces !== null && record.namespacesInherited === true,
    };
  }
}

function matchText(record: ProcessRecord): string {
  if (record.cmdline !== null && record.cmdline.length > 0) return record.cmdline.join(" ");
  return record.comm ?? "";
}

function unknownProcess(pid: number): ProcessInfo {
  return {
    pid,
    comm: null,
    cmdline: null,
    cmdlineUnknown: "gone",
    exe: null,
    cwd: null,
    uid: null,
    user: null,
    ppid: null,
    parentComm: null,
    tty: null,
    startNs: null,
    durationNs: null,
    procGone: true,
    cgroup: null,
    cgroupInherited: false,
    unit: null,
    container: null,
    namespaces: null,
    namespacesInherited: false,
  };
}
