/**
 * The `tree` output format: each process indented under its parent, as
 * extrace prints it — `PID+ command` at exec, `PID- command exited ...` at
 * exit, `PID fork` for a new process that has not exec'd yet.
 *
 * @module
 */

import { shortContainerId } from "../process/cgroup_path.ts";
import type { ProcessInfo, ProcEvent } from "../events/events.ts";
import { escapeText, formatDuration, paint, processLabel, shortExit, type Style } from "./text.ts";

/** Looks up a process's parent (from the process table). */
export type ParentOf = (pid: number) => number | null | undefined;

/**
 * What `--group-by` groups the tree by.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * import { TreeFormatter, type TreeGroupBy } from "@procwatch/procwatch/format";
 *
 * const groupBy: TreeGroupBy = "unit";
 * const tree = new TreeFormatter({ groupBy });
 * for await (const event of watch({ context: true })) {
 *   const line = tree.line(event);
 *   if (line !== null) console.log(line);
 * }
 * ```
 */
export type TreeGroupBy = "container" | "unit";

/**
 * The values of `--group-by`.
 *
 * @example
 * ```ts
 * import { TREE_GROUP_BY } from "@procwatch/procwatch/format";
 * console.log(TREE_GROUP_BY.join(", ")); // container, unit
 * ```
 */
export const TREE_GROUP_BY: readonly TreeGroupBy[] = ["container", "unit"];

/**
 * The heading of a process's group: `container 4f0a1c5e3b2d (docker)`,
 * `host`, `unit cron.service`, `no unit`.
 *
 * @example
 * ```ts
 * import { groupHeading } from "./tree.ts";
 * console.log(groupHeading("unit", { unit: "cron.service", container: null })); // "unit cron.service"
 * ```
 */
export function groupHeading(
  by: TreeGroupBy,
  info: Pick<ProcessInfo, "unit" | "container"> | undefined,
): string {
  if (by === "unit") return info?.unit ? `unit ${escapeText(info.unit)}` : "no unit";
  const container = info?.container;
  if (!container) return "host";
  const pod = container.pod === undefined ? "" : `, pod ${container.pod}`;
  return `container ${shortContainerId(container.id)} (${container.runtime}${pod})`;
}

const MAX_DEPTH = 64;
const MAX_TRACKED = 65536;

/**
 * Formats events as an indented process tree. Depths are remembered per pid
 * from the events seen (and the process table for processes seen first in
 * the middle of the tree); an exited process is forgotten.
 *
 * @example
 * ```ts
 * import { TreeFormatter } from "@procwatch/procwatch/format";
 * const tree = new TreeFormatter({ root: 10 });
 * const base = { cpu: 0, timestampNs: 0n, time: new Date(0) };
 * console.log(tree.line({ ...base, type: "fork", parentPid: 10, parentTid: 10, childPid: 11,
 *   childTid: 11, thread: false })); // "  11 fork of 10"
 * ```
 */
export class TreeFormatter {
  readonly #depths = new Map<number, number>();
  readonly #parentOf: ParentOf;
  readonly #style: Style;
  readonly #root: number | null;
  readonly #groupBy: TreeGroupBy | null;
  #group: string | null = null;

  /**
   * `root`: the pid shown unindented (`--tree PID`, `--ppid PID`); `parentOf`
   * finds ancestors (the process table's `ppid`); `groupBy`: a heading line
   * (`== container 4f0a1c5e3b2d (docker)`) whenever the group changes from the
   * line before, and the tree indented under it.
   */
  constructor(
    options: { root?: number; parentOf?: ParentOf; style?: Style; groupBy?: TreeGroupBy } = {},
  ) {
    this.#root = options.root ?? null;
    this.#groupBy = options.groupBy ?? null;
    this.#parentOf = options.parentOf ?? (() => undefined);
    this.#style = options.style ?? { color: false };
    if (this.#root !== null) this.#depths.set(this.#root, 0);
  }

  /**
   * The line for `event`, or `null` for events the tree does not show
   * (threads, ids); with `groupBy`, preceded by its group's heading line when
   * the group changed.
   */
  line(event: ProcEvent): string | null {
    const line = this.#line(event);
    if (line === null || this.#groupBy === null || event.type === "lost") return line;
    const heading = groupHeading(this.#groupBy, event.process);
    if (heading === this.#group) return `  ${line}`;
    this.#group = heading;
    return `== ${heading}\n  ${line}`;
  }

  #line(event: ProcEvent): string | null {
    switch (event.type) {
      case "fork": {
        if (event.thread) return null;
        const depth = this.#depthOf(event.parentPid, null) + 1;
        this.#remember(event.childPid, depth);
        return `${indent(depth)}${event.childPid} ${
          paint("fork", "fork", this.#style)
        } of ${event.parentPid}${
          event.process?.comm ? ` (${escapeText(event.process.comm)})` : ""
        }`;
      }
      case "exec": {
        if (event.pid !== event.tid) return null;
        const depth = this.#depthOf(event.pid, event.process?.ppid ?? null);
        return `${indent(depth)}${event.pid}${paint("+", "exec", this.#style)} ${
          processLabel(event.process) || "?"
        }`;
      }
      case "exit": {
        if (event.pid !== event.tid) return null;
        const depth = this.#depthOf(event.pid, event.process?.ppid ?? null);
        // Forget it (its pid may be reused), except the root: its children
        // seen later must still sit one level below it.
        if (event.pid !== this.#root) this.#depths.delete(event.pid);
        const duration = event.process?.durationNs;
        const status = paint(
          `exited status=${shortExit(event)}`,
          event.status === 0 ? "exit" : "failed",
          this.#style,
        );
        return `${indent(depth)}${event.pid}- ${processLabel(event.process) || "?"} ${status}${
          duration === null || duration === undefined ? "" : ` time=${formatDuration(duration)}`
        }`;
      }
      case "coredump":
        return `${indent(this.#depthOf(event.pid, event.process?.ppid ?? null))}${event.pid}! ${
          paint("core dump", "coredump", this.#style)
        }`;
      case "ptrace":
        return `${indent(this.#depthOf(event.pid, event.process?.ppid ?? null))}${event.pid}~ ${
          paint(
            event.tracerPid === 0 ? "ptrace detach" : `ptrace by ${event.tracerPid}`,
            "ptrace",
            this.#style,
          )
        }`;
      case "comm":
        if (event.pid !== event.tid) return null;
        return `${indent(this.#depthOf(event.pid, event.process?.ppid ?? null))}${event.pid} ${
          paint(`renamed ${JSON.stringify(event.comm)}`, "comm", this.#style)
        }`;
      case "lost":
        return paint(
          `(${event.count} ${event.count === 1 ? "event" : "events"} lost: ${event.reason})`,
          "lost",
          this.#style,
        );
      default:
        return null;
    }
  }

  /**
   * Depth of `pid`: the number of ancestors between it and the root (`--tree`
   * or `--ppid` PID), else between it and the top of its known ancestry
   * (pid 1 when the process table knows the whole chain, as extrace counts).
   * The whole chain is remembered, so siblings always share their parent's
   * depth + 1, whichever of them — or the parent — shows up first.
   */
  #depthOf(pid: number, ppid: number | null): number {
    const known = this.#depths.get(pid);
    if (known !== undefined) return known;
    const chain = [pid];
    let base = -1; // depth of the ancestor above chain's last entry; -1: none known
    let parent: number | null | undefined = ppid ?? this.#parentOf(pid);
    while (chain.length <= MAX_DEPTH && parent !== null && parent !== undefined && parent > 0) {
      const depth = this.#depths.get(parent);
      if (depth !== undefined) {
        base = depth;
        break;
      }
      if (chain.includes(parent)) break; // a stale table may hold a cycle
      chain.push(parent);
      parent = this.#parentOf(parent);
    }
    // chain[i] is i generations below chain's top; the top sits at base + 1.
    const top = base + 1;
    for (let i = chain.length - 1, depth = top; i >= 0; i--, depth++) {
      this.#remember(chain[i], depth);
    }
    return top + chain.length - 1;
  }

  #remember(pid: number, depth: number): void {
    if (this.#depths.size >= MAX_TRACKED) {
      this.#depths.clear();
      if (this.#root !== null) this.#depths.set(this.#root, 0);
    }
    this.#depths.set(pid, depth);
  }
}

function indent(depth: number): string {
  return "  ".repeat(Math.min(depth, MAX_DEPTH));
}
