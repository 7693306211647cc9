/**
 * The `-S/--stats` summary: events per type and per process, printed when
 * the watch ends (forkstat `-S` style), and per container or unit when the
 * events carry them.
 *
 * @module
 */

import { shortContainerId } from "../process/cgroup_path.ts";
import type { LostEvent, ProcessInfo, ProcEvent } from "../events/events.ts";
import { STATS_COLUMNS, type StatsColumn } from "../events/event_types.ts";

export type { StatsColumn };

/**
 * Counts of one process (or of all): one per event type, failed exits, and the total.
 *
 * @example
 * ```ts
 * import { EventStats } from "@procwatch/procwatch/format";
 * const stats = new EventStats();
 * console.log(stats.lost);
 * ```
 */
export type StatsRow = Record<StatsColumn, number> & { total: number };

/** Most distinct processes kept; the rest are counted as `(others)`. */
const MAX_PROCESSES = 4096;

/**
 * The summary row a process counts in: `container <short id>`, else
 * `unit <name>`, else `host (no unit)`.
 *
 * @example
 * ```ts
 * import { placeKey } from "./stats.ts";
 * console.log(placeKey({ unit: "cron.service", container: null })); // "unit cron.service"
 * ```
 */
export function placeKey(info: Pick<ProcessInfo, "unit" | "container">): string {
  if (info.container) return `container ${shortContainerId(info.container.id)}`;
  return info.unit ? `unit ${info.unit}` : "host (no unit)";
}

/** The row of `key`, made when new; past {@linkcode MAX_PROCESSES} keys, `(others)`. */
function rowOf(rows: Map<string, StatsRow>, key: string): StatsRow {
  let row = rows.get(key);
  if (row === undefined) {
    const kept = rows.size >= MAX_PROCESSES ? "(others)" : key;
    row = rows.get(kept) ?? emptyRow();
    rows.set(kept, row);
  }
  return row;
}

function emptyRow(): StatsRow {
  // Keys in column order, then the total: the order of the JSON summary's rows.
  const row = {} as StatsRow;
  for (const [key] of STATS_COLUMNS) row[key] = 0;
  row.total = 0;
  return row;
}

/**
 * Counts events per type and per process name.
 *
 * @example
 * ```ts
 * import { EventStats } from "@procwatch/procwatch/format";
 * const stats = new EventStats();
 * stats.add({ type: "exec", pid: 1, tid: 1, cpu: 0, timestampNs: 0n, time: new Date(0) });
 * console.log(stats.totals.exec); // 1
 * ```
 */
export class EventStats {
  /** Counts over all processes. */
  readonly totals: StatsRow = emptyRow();
  /** Counts per process name (the command's name; `pid N` when unknown). */
  readonly byProcess: Map<string, StatsRow> = new Map();
  /**
   * Counts per container or unit ({@linkcode placeKey}): filled only by events
   * whose context has a cgroup.
   */
  readonly byPlace: Map<string, StatsRow> = new Map();
  /** Events lost (kernel, queue or output). */
  lost = 0;
  /** Events lost, per reason (see `LostEvent.reason`). */
  readonly lostBy: Record<LostEvent["reason"], number> = {
    kernel: 0,
    queue: 0,
    output: 0,
    export: 0,
  };

  /** Counts one event. */
  add(event: ProcEvent): void {
    if (event.type === "lost") {
      this.lost += event.count;
      this.lostBy[event.reason] += event.count;
      return;
    }
    const pid = event.type === "fork" ? event.childPid : event.pid;
    const name = event.process?.comm ?? `pid ${pid}`;
    const targets = [rowOf(this.byProcess, name), this.totals];
    const place = event.process?.cgroup == null ? null : placeKey(event.process);
    if (place !== null) targets.push(rowOf(this.byPlace, place));
    for (const target of targets) {
      target[event.type]++;
      if (event.type === "exit" && event.status !== 0) target.failed++;
      target.total++;
    }
  }

  /**
   * The summary table: per container or unit (when the events carry them), then
   * per process, busiest first, then the totals row.
   *
   * @example
   * ```ts
   * import { EventStats } from "@procwatch/procwatch/format";
   * console.log(new EventStats().table(1.5).join("\n"));
   * ```
   */
  table(seconds: number): string[] {
    const header = `${STATS_COLUMNS.map(([, title]) => title.padStart(6)).join(" ")} ${
      "Total".padStart(7)
    }  Process`;
    const row = (counts: StatsRow, name: string) =>
      `${STATS_COLUMNS.map(([key]) => String(counts[key]).padStart(6)).join(" ")} ${
        String(counts.total).padStart(7)
      }  ${name}`;
    const rows = [...this.byProcess].sort((a, b) =>
      b[1].total - a[1].total || (a[0] < b[0] ? -1 : 1)
    );
    const places = [...this.byPlace].sort((a, b) =>
      b[1].total - a[1].total || (a[0] < b[0] ? -1 : 1)
    );
    return [
      `procwatch: ${this.totals.total} ${this.totals.total === 1 ? "event" : "events"} in ${
        seconds.toFixed(1)
      } s${this.lost > 0 ? `, ${this.lost} lost (${this.#lostWords()})` : ""}`,
      // Per container or unit first: the per-process table ends with the totals, last.
      ...(places.length === 0 ? [] : [
        header.replace(/Process$/, "Container or unit"),
        ...places.map(([name, counts]) => row(counts, name)),
        "",
      ]),
      header,
      ...rows.map(([name, counts]) => row(counts, name)),
      row(this.totals, "Total"),
    ];
  }

  #lostWords(): string {
    const words = {
      kernel: "by the kernel",
      queue: "in procwatch's queue",
      output: "in output",
      export: "by the exporter (spool full)",
    };
    return (Object.keys(words) as LostEvent["reason"][])
      .filter((reason) => this.lostBy[reason] > 0)
      .map((reason) => `${this.lostBy[reason]} ${words[reason]}`)
      .join(", ");
  }

  /**
   * The summary as one JSON-ready object.
   *
   * @example
   * ```ts
   * import { EventStats } from "@procwatch/procwatch/format";
   * console.log(JSON.stringify(new EventStats().toJSON(1)));
   * ```
   */
  toJSON(seconds: number): Record<string, unknown> {
    return {
      type: "summary",
      seconds,
      lost: this.lost,
      lostBy: this.lostBy,
      totals: this.totals,
      processes: Object.fromEntries(this.byProcess),
      ...(this.byPlace.size === 0 ? {} : { places: Object.fromEntries(this.byPlace) }),
    };
  }
}
