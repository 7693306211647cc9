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
 * @module
 */

import type { KernelEvent, ProcessInfo } from "./events.ts";
import type { Captured } from "./capture_ring.ts";
import { ExecCapture } from "./exec_capture.ts";
import type { CompiledFilters } from "./filters.ts";
import { type ProcessRecord, ProcessTable, type ProcessTableOptions } from "./process_table.ts";
import type { UserNames } from "./users.ts";

/** Options of {@linkcode EventContext}. */
export interface EventContextOptions extends Omit<ProcessTableOptions, "treeRoot" | "details"> {
  /** Attach `process` to events. */
  context: boolean;
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
 * ```ts ignore
 * import { EventContext } from "./enrich.ts";
 * import { compileFilters } from "./filters.ts";
 * import { UserNames } from "./users.ts";
 * const users = new UserNames();
 * const context = new EventContext(compileFilters({ comm: "sh" }, users), users, {
 *   context: true,
 * });
 * context.start(true);
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
  /** Names are needed (name filter, match or context). */
  readonly #names: boolean;
  /** Command lines are needed (match or context). */
  readonly #details: boolean;
  readonly #wantCapture: boolean;
  readonly #pids: ReadonlySet<number> | null;
  #capture: ExecCapture | null = null;

  /** Creates the context; call {@linkcode start} once subscribed. */
  constructor(filters: CompiledFilters, users: UserNames, options: EventContextOptions) {
    this.#filters = filters;
    this.#users = users;
    this.#context = options.context;
    this.#details = options.context || filters.match !== null;
    this.#names = this.#details || filters.comm !== null;
    this.table = new ProcessTable({
      maxEntries: options.maxEntries,
      exitGraceMs: options.exitGraceMs,
      details: this.#details,
      treeRoot: filters.tree ?? undefined,
    });
    this.#wantCapture = this.#details && (options.execCapture ?? true);
    this.#pids = options.pids ?? null;
  }

  /** Settles when the exec-capture worker (if any) listens. */
  get ready(): Promise<void> {
    return this.#capture?.ready ?? Promise.resolve();
  }

  /** Stops the exec-capture worker. */
  close(): void {
    this.#capture?.close();
  }

  /**
   * Call once subscribed: loads the processes that already run and starts the
   * exec-capture worker. `kernelFilter`: whether this kernel filters event types.
   */
  start(kernelFilter: boolean): void {
    this.table.seed();
    if (this.#wantCapture) this.#capture = new ExecCapture(kernelFilter);
  }

  /**
   * Updates the table with an event (call for every kernel event, in order).
   * At an exec of a process the filters may want, reads its new name and
   * command line now, while it surely still exists.
   */
  observe(event: KernelEvent): void {
    this.table.observe(event);
    if (event.type !== "exec" || !this.#names) return;
    if (this.#pids !== null && !this.#pids.has(event.pid)) return;
    const record = this.table.get(event.pid);
    if (record === undefined || !record.stale || !this.#cheapMatch(record)) return;
    this.#freshen(record);
    if (record.gone && !record.detailed && this.#capture !== null) {
      // Gone before we looked: take what the capture worker read at the exec.
      this.#takeCapture(record, this.#capture.lookup(event.pid, event.timestampNs));
    } else if (record.detailed && record.exe === null && this.#capture !== null) {
      // Exited between our cmdline read and the exe link: the worker may have it.
      record.exe = this.#capture.peek(event.pid, event.timestampNs)?.exe ?? null;
    }
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
      if (this.#context) event.process = unknownProcess(pid);
      return true;
    }
    if (!this.#cheapMatch(record)) return false;
    if (this.#names && !exited) this.#freshen(record);
    if (record.cmdline === null && record.execNs !== null && this.#capture !== null) {
      // Gone before anyone read it at the exec: the worker may have caught it since.
      this.#takeCapture(record, this.#capture.peek(record.pid, record.execNs));
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

  #takeCapture(record: ProcessRecord, captured: Captured | null): void {
    if (captured === null) return;
    record.comm = captured.comm;
    record.cmdline = captured.cmdline;
    record.exe = captured.exe;
    record.detailed = true;
    record.stale = false;
  }

  /** The filters that need only the table. */
  #cheapMatch(record: ProcessRecord): boolean {
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
    return {
      pid: record.pid,
      comm: record.comm,
      cmdline: record.cmdline,
      exe: record.exe,
      cwd: record.cwd,
      uid: record.euid,
      user: record.euid === null ? null : this.#users.name(record.euid),
      ppid: parentPid,
      parentComm: parent?.comm ?? null,
      tty: record.tty,
      startNs: record.startNs,
      durationNs: exitNs !== null && startNs !== null ? exitNs - startNs : null,
      procGone: record.gone,
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
  };
}
