/**
 * The event types procwatch reports, defined once: one row per type, in the
 * spirit of forkstat's `ev_map`. Everything else that knows about event types
 * derives from this table: the decoder (what a `what` is, how many bytes it
 * needs), the watcher's subscription mask, the `--events` values and their
 * completions, the human line's label and colour, and the `-S` columns.
 *
 * Adding an event type touches one row here, its decoder case in
 * lib/connector/decode.ts and its interface in ./events.ts (tests/event_types_test.ts
 * checks the three agree).
 *
 * @module
 */

import { PROC_EVENT_HEAD, ProcEventWhat } from "../../ground/cn_proc.ts";

/**
 * One event type: how the kernel sends it and how procwatch shows it.
 *
 * @example
 * ```ts
 * import { EVENT_TABLE } from "@procwatch/procwatch";
 * const exit = EVENT_TABLE.find((row) => row.type === "exit");
 * console.log(exit?.stats.title); // "Exit"
 * ```
 */
export interface EventTypeRow {
  /**
   * The name: an `--events` value, the `type` of the event object and of its
   * JSON line, and the `procwatch_events_total{type}` label.
   */
  readonly type: string;
  /**
   * Its bit of `enum proc_cn_event` (`PROC_EVENT_*`, include/uapi/linux/cn_proc.h):
   * the `what` of `struct proc_event`, and the bit of the subscription mask
   * (`struct proc_input.event_type`, Linux ≥ 6.6).
   */
  readonly flag: number;
  /**
   * Bytes of `struct proc_event` the decoder reads: the head (`what`, `cpu`,
   * `timestamp_ns`) plus the `event_data` fields it uses; a shorter
   * `cn_msg.len` is malformed.
   */
  readonly size: number;
  /** The Event column of the human line (at most 8 characters). */
  readonly label: string;
  /** The ANSI SGR code of its human line and tree marks (`"0"`: not coloured). */
  readonly colour: string;
  /** Its column of the `-S` summary: place (0 = first) and heading (at most 6 characters). */
  readonly stats: { readonly column: number; readonly title: string };
  /**
   * Whether procwatch's process table follows it (subscribed to whenever
   * there is a table, shown or not): its place in the `-v` note that names
   * them, or `null`.
   */
  readonly table: number | null;
}

/**
 * Every event type, in the order of its kernel bit (the order of
 * `enum proc_cn_event`, include/uapi/linux/cn_proc.h), which is the order of
 * {@linkcode EVENT_TYPES}. `PROC_EVENT_NONE` (the ACK) and
 * `PROC_EVENT_NONZERO_EXIT` (a filter bit only: such exits arrive as
 * `PROC_EVENT_EXIT`, Linux 6.6) are no event types.
 *
 * @example
 * ```ts
 * import { EVENT_TABLE } from "@procwatch/procwatch";
 * for (const row of EVENT_TABLE) console.log(row.type, row.flag.toString(16));
 * ```
 */
export const EVENT_TABLE = [
  // event_data.fork: parent_pid, parent_tgid, child_pid, child_tgid
  {
    type: "fork",
    flag: ProcEventWhat.FORK,
    size: PROC_EVENT_HEAD + 16,
    label: "fork",
    colour: "32",
    stats: { column: 0, title: "Fork" },
    table: 0,
  },
  // event_data.exec: process_pid, process_tgid
  {
    type: "exec",
    flag: ProcEventWhat.EXEC,
    size: PROC_EVENT_HEAD + 8,
    label: "exec",
    colour: "36",
    stats: { column: 1, title: "Exec" },
    table: 1,
  },
  // event_data.id: process_pid, process_tgid, r.ruid, e.euid
  {
    type: "uid",
    flag: ProcEventWhat.UID,
    size: PROC_EVENT_HEAD + 16,
    label: "uid",
    colour: "33",
    stats: { column: 7, title: "UID" },
    table: 3,
  },
  // event_data.id: process_pid, process_tgid, r.rgid, e.egid
  {
    type: "gid",
    flag: ProcEventWhat.GID,
    size: PROC_EVENT_HEAD + 16,
    label: "gid",
    colour: "33",
    stats: { column: 8, title: "GID" },
    table: null,
  },
  // event_data.sid: process_pid, process_tgid
  {
    type: "sid",
    flag: ProcEventWhat.SID,
    size: PROC_EVENT_HEAD + 8,
    label: "sid",
    colour: "33",
    stats: { column: 9, title: "SID" },
    table: null,
  },
  // event_data.ptrace: process_pid, process_tgid, tracer_pid, tracer_tgid
  {
    type: "ptrace",
    flag: ProcEventWhat.PTRACE,
    size: PROC_EVENT_HEAD + 16,
    label: "ptrace",
    colour: "35",
    stats: { column: 6, title: "Ptrc" },
    table: null,
  },
  // event_data.comm: process_pid, process_tgid, comm[16]
  {
    type: "comm",
    flag: ProcEventWhat.COMM,
    size: PROC_EVENT_HEAD + 24,
    label: "comm",
    colour: "34",
    stats: { column: 5, title: "Comm" },
    table: 2,
  },
  // event_data.coredump: process_pid, process_tgid (parent_pid, parent_tgid from Linux 4.18)
  {
    type: "coredump",
    flag: ProcEventWhat.COREDUMP,
    size: PROC_EVENT_HEAD + 8,
    label: "coredump",
    colour: "1;31",
    stats: { column: 4, title: "Core" },
    table: null,
  },
  // event_data.exit: process_pid, process_tgid, exit_code, exit_signal
  // (parent_pid, parent_tgid from Linux 4.18)
  {
    type: "exit",
    flag: ProcEventWhat.EXIT,
    size: PROC_EVENT_HEAD + 16,
    label: "exit",
    colour: "0",
    stats: { column: 2, title: "Exit" },
    table: 4,
  },
] as const satisfies readonly EventTypeRow[];

/**
 * One of the kernel event types: a `type` of {@linkcode EVENT_TABLE}.
 *
 * @example
 * ```ts
 * import { type EventType, watch } from "@procwatch/procwatch";
 * const wanted: EventType[] = ["fork", "exit"];
 * for await (const event of watch({ events: wanted })) console.log(event.type);
 * ```
 */
export type EventType = typeof EVENT_TABLE[number]["type"];

/**
 * The kernel event types, as named in the CLI's `--events` list: the
 * {@linkcode EVENT_TABLE}'s rows, in its order.
 *
 * @example
 * ```ts
 * import { EVENT_TYPES } from "@procwatch/procwatch";
 * console.log(EVENT_TYPES.join(",")); // fork,exec,uid,gid,sid,ptrace,comm,coredump,exit
 * ```
 */
export const EVENT_TYPES: readonly EventType[] = EVENT_TABLE.map((row) => row.type);

/**
 * Each event type's row.
 *
 * @example
 * ```ts
 * import { EVENT_ROWS } from "./event_types.ts";
 * console.log(EVENT_ROWS.comm.size); // 40
 * ```
 */
export const EVENT_ROWS: Readonly<Record<EventType, EventTypeRow>> = Object.fromEntries(
  EVENT_TABLE.map((row) => [row.type, row]),
) as Record<EventType, EventTypeRow>;

/**
 * The row of each kernel `what` (`enum proc_cn_event`); `undefined` for a
 * `what` that is no event type (the ACK's `PROC_EVENT_NONE`, a newer kernel's).
 *
 * @example
 * ```ts
 * import { ROW_OF_WHAT } from "./event_types.ts";
 * console.log(ROW_OF_WHAT.get(0x80000000)?.type); // "exit"
 * ```
 */
export const ROW_OF_WHAT: ReadonlyMap<number, (typeof EVENT_TABLE)[number]> = new Map(
  EVENT_TABLE.map((row) => [row.flag >>> 0, row]),
);

/**
 * The kernel bit (`PROC_EVENT_*`) of each event type: for the subscription mask.
 *
 * @example
 * ```ts
 * import { EVENT_FLAGS } from "./event_types.ts";
 * console.log(EVENT_FLAGS.exec === 0x2); // true
 * ```
 */
export const EVENT_FLAGS: Readonly<Record<EventType, number>> = Object.fromEntries(
  EVENT_TABLE.map((row) => [row.type, row.flag]),
) as Record<EventType, number>;

/**
 * The kernel bit of `type` (`PROC_EVENT_*`, include/uapi/linux/cn_proc.h).
 *
 * @example
 * ```ts
 * import { kernelFlagOf } from "./event_types.ts";
 * console.log(kernelFlagOf("fork")); // 1
 * ```
 */
export function kernelFlagOf(type: EventType): number {
  return EVENT_FLAGS[type];
}

/**
 * The subscription mask of `types`: the OR of their kernel bits (unsigned).
 *
 * @example
 * ```ts
 * import { kernelMask } from "./event_types.ts";
 * console.log(kernelMask(["fork", "exec"])); // 3
 * ```
 */
export function kernelMask(types: Iterable<EventType>): number {
  let mask = 0;
  for (const type of types) mask |= EVENT_FLAGS[type];
  return mask >>> 0;
}

/**
 * The event types procwatch's process table follows, in the order the `-v`
 * note names them: whenever there is a table, the kernel is asked for them
 * too, shown or not.
 *
 * @example
 * ```ts
 * import { TABLE_EVENT_TYPES } from "@procwatch/procwatch/proc";
 * console.log(TABLE_EVENT_TYPES.join(", ")); // "fork, exec, comm, uid, exit"
 * ```
 */
export const TABLE_EVENT_TYPES: readonly EventType[] = EVENT_TABLE
  .filter((row) => row.table !== null)
  .sort((a, b) => (a.table ?? 0) - (b.table ?? 0))
  .map((row) => row.type);

/**
 * The kernel bits of {@linkcode TABLE_EVENT_TYPES}: what the watcher adds to
 * its subscription when it keeps a process table.
 *
 * @example
 * ```ts
 * import { TABLE_BITS } from "./event_types.ts";
 * console.log(TABLE_BITS.toString(16)); // "80000207"
 * ```
 */
export const TABLE_BITS: number = kernelMask(TABLE_EVENT_TYPES);

/**
 * What a human line or summary shows that is no kernel event type of its
 * own: `failed`, an exit with a non-zero status (an exit event, coloured
 * and counted apart), and `lost`, procwatch's own report of lost events.
 *
 * @example
 * ```ts
 * import { DERIVED_KINDS } from "./event_types.ts";
 * console.log(DERIVED_KINDS.failed.stats.title); // "Fail"
 * ```
 */
export const DERIVED_KINDS = {
  failed: { colour: "31", stats: { column: 3, title: "Fail" } },
  lost: { colour: "7;31", stats: null },
} as const;

/**
 * A kind of human line, which picks its colour: an event type, or one of
 * {@linkcode DERIVED_KINDS}.
 *
 * @example
 * ```ts
 * import type { EventKind } from "./event_types.ts";
 * const kind: EventKind = "lost";
 * console.log(kind);
 * ```
 */
export type EventKind = EventType | keyof typeof DERIVED_KINDS;

/**
 * The ANSI SGR code of each kind of line (`"0"`: not coloured).
 *
 * @example
 * ```ts
 * import { KIND_COLOURS } from "./event_types.ts";
 * console.log(KIND_COLOURS.fork); // "32"
 * ```
 */
export const KIND_COLOURS: Readonly<Record<EventKind, string>> = {
  ...Object.fromEntries(EVENT_TABLE.map((row) => [row.type, row.colour])) as Record<
    EventType,
    string
  >,
  failed: DERIVED_KINDS.failed.colour,
  lost: DERIVED_KINDS.lost.colour,
};

/**
 * A counter column of the `-S` summary: an event type, or `failed` (non-zero
 * or signalled exits).
 *
 * @example
 * ```ts
 * import type { StatsColumn } from "@procwatch/procwatch/format";
 * const column: StatsColumn = "failed";
 * console.log(column);
 * ```
 */
export type StatsColumn = EventType | "failed";

/**
 * The `-S` summary's columns, in order: key and heading.
 *
 * @example
 * ```ts
 * import { STATS_COLUMNS } from "./event_types.ts";
 * console.log(STATS_COLUMNS.map(([, title]) => title).join(" "));
 * // "Fork Exec Exit Fail Core Comm Ptrc UID GID SID"
 * ```
 */
export const STATS_COLUMNS: readonly (readonly [StatsColumn, string])[] = [
  ...EVENT_TABLE.map((row) => ({ key: row.type as StatsColumn, ...row.stats })),
  { key: "failed" as const, ...DERIVED_KINDS.failed.stats },
].sort((a, b) => a.column - b.column).map(({ key, title }) => [key, title] as const);
