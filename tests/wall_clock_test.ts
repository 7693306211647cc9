/**
 * The wall-clock offset object (lib/events/wall_clock.ts) on a scripted clock, and on
 * the real one against the kernel's own offset; and the human time column
 * against the JSON time of the same events; and the clamp of receive buffer
 * requests. (tests/time_test.ts has the CLI checks, runnable on older code.)
 */
import assert from "node:assert/strict";
import { type ClockSource, WallClock, wallClock } from "../lib/events/wall_clock.ts";
import { clockTime, eventToJson, humanLine, isoTimeNs } from "../lib/format/text.ts";
import { eventsOf, kernelTest, watchAll } from "./support/kernel.ts";
import { ConnectorSocket, receiveBufferRequest } from "../ffi/connector.ts";

const C = 1_796_000_000_000_000_000n; // wall − monotonic of the scripted clock

/**
 * A clock with a known offset. Each read first lets `gap()` ns pass (the
 * FFI overhead, or a preemption), so brackets have widths the test chooses.
 */
class ScriptedClock implements ClockSource {
  mono = 1_000_000_000n;
  offset = C;
  reads = 0;
  constructor(public gap: () => bigint = () => 100n) {}
  readBracket(out: BigInt64Array): void {
    this.reads += 3;
    this.mono += this.gap();
    out[0] = this.mono;
    this.mono += this.gap();
    out[1] = this.mono + this.offset;
    this.mono += this.gap();
    out[2] = this.mono;
  }
  /** Time passing outside the clock object (events arriving, the program working). */
  advance(ns: bigint): void {
    this.mono += ns;
  }
}

/** A gap sequence from a list, then 100 ns. */
function gaps(list: bigint[]): () => bigint {
  let i = 0;
  return () => list[i++] ?? 100n;
}

Deno.test("the offset is the lower bound of the tightest bracket", () => {
  // Brackets (before→wall, wall→after): 5000/4000, 90/70, 3000/20, 400/400, 60/900.
  // Widths 9000, 160, 3020, 800, 960: the second is the tightest, its lower
  // bound is C − 70 (the wall read was at most 70 ns before `after`).
  const source = new ScriptedClock(
    gaps([0n, 5000n, 4000n, 0n, 90n, 70n, 0n, 3000n, 20n, 0n, 400n, 400n, 0n, 60n, 900n]),
  );
  const clock = new WallClock(source, { firstSamples: 5 });
  clock.sync();
  assert.equal(clock.offsetNs, C - 70n);
});

Deno.test("the offset never exceeds the true one, so a time is never later than its read", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  // 80–600 ns per read, and one read in 20 preempted for up to 200 µs.
  const source = new ScriptedClock(() =>
    BigInt(Math.floor(random() < 0.05 ? random() * 200_000 : 80 + random() * 520))
  );
  const clock = new WallClock(source, { intervalNs: 1_000_000n });
  for (let i = 0; i < 5000; i++) {
    source.advance(BigInt(Math.floor(random() * 50_000)));
    const eventNs = source.mono; // happened now, read below
    source.advance(BigInt(Math.floor(random() * 20_000)));
    const readNs = clock.sync(); // the receive happened before this
    assert.ok(eventNs <= readNs);
    const wall = clock.wallNs(eventNs);
    assert.ok(wall <= eventNs + C, `event ${i} stamped ${eventNs + C - wall} ns late`);
    assert.ok(wall <= readNs + C);
  }
  // And tight: the best bracket's lower bound, at most its width below.
  assert.ok(C - clock.offsetNs <= 600n, `offset ${C - clock.offsetNs} ns low`);
});

Deno.test("a step of the wall clock is followed at the next sync, not at the next schedule", () => {
  const source = new ScriptedClock();
  const clock = new WallClock(source, { intervalNs: 3_600_000_000_000n });
  clock.sync();
  const early = clock.sync(); // every timestamp up to here is converted with the old offset
  assert.ok(C - clock.offsetNs <= 100n);
  const before = clock.offsetNs;

  source.offset = C - 5_000_000_000n; // settimeofday 5 s back
  source.advance(1_000n);
  const later = source.mono;
  clock.sync();
  assert.equal(clock.steps, 1);
  assert.ok(source.offset - clock.offsetNs <= 100n && clock.offsetNs <= source.offset);
  // Times already given out do not change; events after the last sync get the new offset.
  assert.equal(clock.offsetAt(early), before);
  assert.equal(clock.offsetAt(later), clock.offsetNs);

  source.offset = C + 3_000_000_000n; // NTP steps 3 s forward
  source.advance(1_000n);
  clock.sync();
  assert.equal(clock.steps, 2);
  assert.ok(source.offset - clock.offsetNs <= 100n && clock.offsetNs <= source.offset);

  source.offset += 300n; // a tiny step forward is followed too
  clock.sync();
  assert.ok(source.offset - clock.offsetNs <= 100n && clock.offsetNs <= source.offset);
  source.offset -= 300n; // and back: the kept offset would now be above the true one
  clock.sync();
  assert.ok(clock.offsetNs <= source.offset);
});

Deno.test("re-measures on its schedule: one bracket per sync, several every interval", () => {
  const source = new ScriptedClock(() => 100n);
  const clock = new WallClock(source, { samples: 5, firstSamples: 8, intervalNs: 1_000_000_000n });
  clock.sync();
  assert.equal(source.reads, 8 * 3);
  source.reads = 0;
  clock.sync();
  assert.equal(source.reads, 3, "a sync within the interval is one bracket");
  source.advance(1_000_000_000n);
  source.reads = 0;
  clock.sync();
  assert.equal(source.reads, 3 + 5 * 3, "a due sync measures five brackets");
  assert.equal(clock.steps, 0);
});

Deno.test("the clock column is the ISO time's instant in local time, digits truncated alike", () => {
  let wall = 1_796_165_835_999_999_999n;
  for (let i = 0; i < 2000; i++) {
    wall += BigInt(i * 7_919_113);
    const zone = -new Date(Number(wall / 1_000_000n)).getTimezoneOffset();
    const local = isoTimeNs(wall, BigInt(zone) * 60_000_000_000n);
    assert.equal(clockTime(wall), local.slice(11, 26), `at ${wall}`);
  }
});

/** `offs_real` (CLOCK_REALTIME − CLOCK_MONOTONIC) as hrtimer base "clock 1" shows it. */
async function kernelWallOffsetNs(): Promise<bigint> {
  const text = await Deno.readTextFile("/proc/timer_list");
  const match = / clock 1:\n(?:.*\n)*?\s+\.offset:\s+(\d+) nsecs/.exec(text);
  assert.ok(match, "no clock 1 offset in /proc/timer_list");
  return BigInt(match[1]);
}

kernelTest(
  "on the real clocks the offset is within microseconds below the kernel's offs_real",
  async () => {
    const kernel = await kernelWallOffsetNs();
    for (let i = 0; i < 20; i++) {
      const clock = new WallClock();
      clock.sync(); // cold: the first measurement
      assert.ok(clock.offsetNs <= kernel, `${clock.offsetNs - kernel} ns above the kernel's`);
      assert.ok(kernel - clock.offsetNs < 5_000n, `${kernel - clock.offsetNs} ns below`);
    }
    assert.equal(await kernelWallOffsetNs(), kernel, "the wall clock was stepped during the test");
  },
);

kernelTest("human and JSON lines of the same event show the same microsecond", async () => {
  const watcher = watchAll({ events: ["fork", "exec", "exit"] });
  try {
    await watcher.ready;
    for (let round = 0; round < 5; round++) {
      const { events } = await eventsOf(watcher, "/bin/sh", ["-c", "/bin/true; exit 3"]);
      assert.ok(events.length >= 5);
      for (const event of events) {
        // What cli/watch.ts does for each event.
        const offset = wallClock.offsetAt(event.timestampNs);
        const json = JSON.parse(eventToJson(event, offset)).time as string;
        const wall = event.timestampNs + offset;
        assert.equal(json, isoTimeNs(wall, 0n));
        assert.equal(event.time.getTime(), Number(wall / 1_000_000n), "event.time is that instant");
        const human = humanLine(event, { color: false }, offset).slice(0, 15);
        assert.equal(human, clockTime(wall));
        assert.equal(humanLine(event).slice(0, 15), human, "the default offset is the same");
        const zone = -event.time.getTimezoneOffset();
        assert.equal(human, isoTimeNs(wall, BigInt(zone) * 60_000_000_000n).slice(11, 26));
      }
    }
  } finally {
    watcher.close();
  }
});

Deno.test("receive buffer requests are clamped to the int the kernel heeds, never wrapped", () => {
  // setsockopt takes a C int: 2 GiB as int32 is negative, 4 GiB and 100 GiB are 0.
  assert.equal(receiveBufferRequest(2 ** 31), 2 ** 30 - 1);
  assert.equal(receiveBufferRequest(100 * 2 ** 30), 2 ** 30 - 1);
  assert.equal(receiveBufferRequest(2 ** 32), 2 ** 30 - 1);
  assert.equal(receiveBufferRequest(16 << 20), 16 << 20);
  assert.equal(receiveBufferRequest(0), 0);
  assert.equal(receiveBufferRequest(-5), 0);
  assert.equal(receiveBufferRequest(Number.NaN), 0);
});

kernelTest("a socket asked for 2 GiB or more gets the kernel's largest buffer", async () => {
  for (const bytes of [2 ** 31, 3 * 2 ** 30, 2 ** 32, 100 * 2 ** 30, Number.MAX_SAFE_INTEGER]) {
    const socket = ConnectorSocket.open({ receiveBufferBytes: bytes });
    try {
      // getsockopt(SO_RCVBUF): __sock_set_rcvbuf() doubles min(val, INT_MAX / 2).
      assert.equal(socket.receiveBufferBytes, 2 ** 31 - 2, `asked for ${bytes}`);
    } finally {
      await socket.close();
    }
  }
});
