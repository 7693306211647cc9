/**
 * Counting the events of the benchmark's own processes in a listener's
 * output: forks whose parent is the generator, then the execs and exits of
 * those children (pids recycle fast in a storm, so membership is tracked
 * from fork to exit rather than by a fixed set).
 *
 * @module
 */

/**
 * The exit code of fork+exit storm processes: it marks them in the output of
 * tools that do not say who the parent was (forkstat often prints pid 0).
 *
 * @example
 * ```ts
 * import { STORM_EXIT_CODE } from "./ours.ts";
 * console.log(STORM_EXIT_CODE << 8); // the wait status forkstat prints
 * ```
 */
export const STORM_EXIT_CODE = 113;

/**
 * Counts fork/exec/exit events of the children of `parent`.
 *
 * @example
 * ```ts
 * import { OursCounter } from "./ours.ts";
 * const ours = new OursCounter(100);
 * ours.fork(100, 101, false);
 * ours.exit(101, 100);
 * console.log(ours.total); // 2
 * ```
 */
export class OursCounter {
  /** Forks of `parent` (processes, not threads). */
  forks = 0;
  /** Execs of its children. */
  execs = 0;
  /** Exits of its children. */
  exits = 0;
  readonly #live = new Set<number>();

  /** Counts for children of process `parent`. */
  constructor(readonly parent: number) {}

  /** A fork event. */
  fork(parentPid: number, childPid: number, thread: boolean): void {
    if (parentPid !== this.parent || thread) return;
    this.forks++;
    this.#live.add(childPid);
  }

  /** An exec event. */
  exec(pid: number): void {
    if (this.#live.has(pid)) this.execs++;
  }

  /** An exit event of a process (main thread); `parentPid` when the tool knows it. */
  exit(pid: number, parentPid: number | null): void {
    const known = this.#live.delete(pid);
    if (known || parentPid === this.parent) this.exits++;
  }

  /** All events counted. */
  get total(): number {
    return this.forks + this.execs + this.exits;
  }
}
