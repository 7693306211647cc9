/**
 * The event-type table (lib/events/event_types.ts) is the one place event
 * types are defined: it covers every kernel event bit procwatch reports, and
 * the decoder, the subscription mask, `--events` and its completions, the
 * human line and the `-S` summary all follow it.
 */

import assert from "node:assert/strict";
import {
  EVENT_FLAGS,
  EVENT_TABLE,
  EVENT_TYPES,
  type EventType,
  kernelFlagOf,
  kernelMask,
  KIND_COLOURS,
  STATS_COLUMNS,
  TABLE_BITS,
  TABLE_EVENT_TYPES,
} from "../lib/events/event_types.ts";
import { decodeDatagram, type DecodedMessage } from "../lib/connector/decode.ts";
import { EVENT_TYPES as PUBLIC_EVENT_TYPES, type KernelEvent } from "../mod.ts";
import { EventStats, humanLine } from "../lib/format/mod.ts";
import { TABLE_EVENT_TYPES as PROC_TABLE_EVENT_TYPES } from "../lib/process/mod.ts";
import { PROC_EVENT_ALL, PROC_EVENT_HEAD, ProcEventWhat } from "../ground/cn_proc.ts";
import { parseEvents } from "../cli/parse_events.ts";
import { commandModel } from "../cli/completions.ts";
import { buildProgram } from "../cli/program.ts";
import { message } from "./support/fixtures.ts";

/**
 * `enum proc_cn_event` bits that are no event of their own (include/uapi/linux/cn_proc.h):
 * NONE is the ACK, NONZERO_EXIT only a filter bit whose events arrive as EXIT (Linux 6.6).
 */
const NOT_EVENTS = new Set<number>([ProcEventWhat.NONE, ProcEventWhat.NONZERO_EXIT]);

// Compile-time: the event interfaces (KernelEvent) and the table name the same types.
const _typesHaveInterfaces: Record<EventType, KernelEvent["type"]> = Object.fromEntries(
  EVENT_TYPES.map((type) => [type, type]),
) as Record<EventType, EventType>;
const _interfacesHaveRows: Record<KernelEvent["type"], EventType> = _typesHaveInterfaces;

/** Decodes one proc event of `what` whose `cn_msg.len` is `dataLength`. */
function decodeOne(what: number, dataLength: number): DecodedMessage {
  const words = (Math.max(dataLength, 40) - PROC_EVENT_HEAD) / 4;
  const bytes = message({
    what,
    cpu: 1,
    timestampNs: 7_000_000_000n,
    data: Array.from({ length: words }, (_, i) => i + 100),
    dataLength,
  });
  const out: DecodedMessage[] = [];
  decodeDatagram(bytes, bytes.length, 0n, out);
  assert.equal(out.length, 1);
  return out[0];
}

Deno.test("the table has one row for each kernel event bit procwatch reports, in bit order", () => {
  const reported = Object.values(ProcEventWhat).filter((bit) => !NOT_EVENTS.has(bit));
  const flags = EVENT_TABLE.map((row) => row.flag);
  assert.deepEqual([...flags].sort((a, b) => a - b), [...reported].sort((a, b) => a - b));
  assert.deepEqual(flags, [...flags].sort((a, b) => a - b), "rows in enum proc_cn_event order");
  assert.equal(new Set(EVENT_TABLE.map((row) => row.type)).size, EVENT_TABLE.length);
  // With NONZERO_EXIT, every row's bit is PROC_EVENT_ALL: nothing asked for is missing.
  assert.equal(
    (kernelMask(EVENT_TYPES) | ProcEventWhat.NONZERO_EXIT) >>> 0,
    PROC_EVENT_ALL >>> 0,
  );
  for (const row of EVENT_TABLE) {
    assert.equal(kernelFlagOf(row.type), row.flag);
    assert.equal(EVENT_FLAGS[row.type], row.flag);
    assert.ok(row.label.length <= 8, `${row.type}: label fits the Event column`);
    assert.ok(row.stats.title.length <= 6, `${row.type}: title fits its -S column`);
  }
});

Deno.test("EVENT_TYPES, parseEvents('all'), --events' help and completions are the table's types", () => {
  const types = EVENT_TABLE.map((row) => row.type);
  assert.deepEqual([...EVENT_TYPES], types);
  assert.equal(PUBLIC_EVENT_TYPES, EVENT_TYPES);
  assert.deepEqual(parseEvents("all"), types);
  const program = buildProgram();
  const help = program.commands.find((command) => command.name() === "watch")?.options
    .find((option) => option.long === "--events")?.description;
  assert.ok(help?.includes(`: ${types.join(",")} or all `), help);
  const watch = commandModel(program).commands.find((command) => command.name === "watch");
  const events = watch?.options.find((option) => option.long === "--events");
  assert.ok(events !== undefined, "watch has --events");
  assert.deepEqual(events.value, { kind: "words", words: [...types, "all"], list: true });
});

Deno.test("the decoder maps each row's kernel bit to its type and requires the row's size", () => {
  for (const row of EVENT_TABLE) {
    const decoded = decodeOne(row.flag, row.size);
    assert.equal(decoded.kind, "event", row.type);
    assert.equal(decoded.kind === "event" && decoded.event.type, row.type);
    const short = decodeOne(row.flag, row.size - 4);
    assert.deepEqual(short, {
      kind: "malformed",
      reason: `what 0x${row.flag.toString(16)} needs ${row.size} bytes, cn_msg.len is ${
        row.size - 4
      }`,
    });
  }
  // A bit with no row is no event: NONZERO_EXIT is never sent as a `what`.
  assert.equal(decodeOne(ProcEventWhat.NONZERO_EXIT, 40).kind, "unknown");
});

Deno.test("the human line prints each row's label in its colour", () => {
  for (const row of EVENT_TABLE) {
    const decoded = decodeOne(row.flag, 40);
    assert.ok(decoded.kind === "event");
    // An exit with status 0 keeps its own kind ("failed" is a non-zero one).
    const event = decoded.event.type === "exit" ? { ...decoded.event, status: 0 } : decoded.event;
    const plain = humanLine(event, { color: false }, 0n);
    assert.equal(plain.slice(16, 25), `${row.label.padEnd(8)} `, plain);
    const painted = humanLine(event, { color: true }, 0n).slice(16);
    assert.equal(KIND_COLOURS[row.type], row.colour);
    assert.ok(
      painted.startsWith(
        row.colour === "0"
          ? row.label.padEnd(8)
          : `\x1b[${row.colour}m${row.label.padEnd(8)}\x1b[0m`,
      ),
      JSON.stringify(painted),
    );
  }
});

Deno.test("the -S columns are the rows' stats columns plus failed, in the rows' places", () => {
  const keys = STATS_COLUMNS.map(([key]) => key);
  assert.deepEqual(
    [...keys].sort(),
    [...EVENT_TYPES, "failed"].sort(),
    "one column per type, and failed",
  );
  for (const row of EVENT_TABLE) {
    assert.deepEqual(STATS_COLUMNS[row.stats.column], [row.type, row.stats.title]);
  }
  const stats = new EventStats();
  const header = stats.table(1)[1];
  assert.equal(
    header,
    `${STATS_COLUMNS.map(([, title]) => title.padStart(6)).join(" ")} ${
      "Total".padStart(7)
    }  Process`,
  );
  assert.deepEqual(Object.keys(stats.totals), [...keys, "total"]);
});

Deno.test("the process table's types and bits are the rows marked for it, in their places", () => {
  const marked = EVENT_TABLE.filter((row) => row.table !== null);
  assert.deepEqual(
    marked.map((row) => row.table).sort(),
    marked.map((_, i) => i),
    "places 0..n-1, each once",
  );
  for (const row of marked) assert.equal(TABLE_EVENT_TYPES[row.table], row.type);
  assert.equal(TABLE_EVENT_TYPES.length, marked.length);
  assert.equal(TABLE_BITS, kernelMask(marked.map((row) => row.type)));
  assert.equal(PROC_TABLE_EVENT_TYPES, TABLE_EVENT_TYPES);
  assert.deepEqual(
    EVENT_TYPES.filter((type) => (TABLE_BITS & kernelFlagOf(type)) !== 0),
    EVENT_TYPES.filter((type) => TABLE_EVENT_TYPES.includes(type)),
  );
});

Deno.test("the table's values: kernel bits of cn_proc.h and the output procwatch always printed", () => {
  // Written out once here, so that a change to a row is a visible change to
  // the output (help, human lines, -S, -v) and not only to the table.
  const expected: Record<EventType, [number, number, string, string, number, string]> = {
    fork: [0x00000001, 32, "fork", "32", 0, "Fork"],
    exec: [0x00000002, 24, "exec", "36", 1, "Exec"],
    uid: [0x00000004, 32, "uid", "33", 7, "UID"],
    gid: [0x00000040, 32, "gid", "33", 8, "GID"],
    sid: [0x00000080, 24, "sid", "33", 9, "SID"],
    ptrace: [0x00000100, 32, "ptrace", "35", 6, "Ptrc"],
    comm: [0x00000200, 40, "comm", "34", 5, "Comm"],
    coredump: [0x40000000, 24, "coredump", "1;31", 4, "Core"],
    exit: [0x80000000, 32, "exit", "0", 2, "Exit"],
  };
  for (const row of EVENT_TABLE) {
    assert.deepEqual(
      [row.flag, row.size, row.label, row.colour, row.stats.column, row.stats.title],
      expected[row.type],
      row.type,
    );
  }
  assert.deepEqual(TABLE_EVENT_TYPES, ["fork", "exec", "comm", "uid", "exit"]);
  assert.deepEqual(KIND_COLOURS.failed, "31");
  assert.deepEqual(KIND_COLOURS.lost, "7;31");
});
