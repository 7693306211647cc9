/**
 * Wall-clock time for kernel timestamps.
 *
 * `proc_event.timestamp_ns` is `ktime_get_ns()`: `CLOCK_MONOTONIC`. Its wall
 * time is `timestamp + offset`, where the offset is the kernel's `offs_real`
 * (kernel/time/timekeeping.c: `CLOCK_REALTIME − CLOCK_MONOTONIC`). NTP's
 * frequency corrections (adjtimex) slew both clocks alike, so the offset only
 * changes when the wall clock is stepped: `settimeofday`, `clock_settime`,
 * `adjtimex(ADJ_SETOFFSET)` (ntpd/chronyd step mode) or a leap second.
 *
 * The kernel does not hand the offset out (except in root-only
 * `/proc/timer_list`), so it is measured: read monotonic, realtime,
 * monotonic. The realtime read happened between the two monotonic reads, so
 * `realtime − after ≤ offset ≤ realtime − before`. {@linkcode WallClock} keeps
 * the lower bound of the tightest such bracket: never above the true offset,
 * so an event's wall time is never later than the moment it was read (its
 * timestamp is before the read, and the offset is not overstated). The
 * bracket is a few hundred ns wide once the FFI path is warm, which bounds
 * how early the times can be.
 *
 * @module
 */

import { readBracket } from "../../ffi/clock.ts";

/** Where {@linkcode WallClock} reads its two clocks (the tests inject a fake one). */
export interface ClockSource {
  /**
   * Reads `CLOCK_MONOTONIC` (the clock of `proc_event.timestamp_ns`),
   * `CLOCK_REALTIME`, `CLOCK_MONOTONIC` in this order, into `out` as ns.
   */
  readBracket(out: BigInt64Array): void;
}

/** The process's own clocks, through libc's `clock_gettime` (vDSO, no system call). */
export const SYSTEM_CLOCKS: ClockSource = { readBracket };

/** How a {@linkcode WallClock} measures. */
export interface WallClockOptions {
  /**
   * Brackets per scheduled measurement; the tightest one counts.
   *
   * @default {5}
   */
  samples?: number;
  /**
   * Brackets for the very first measurement, while the FFI path is still cold.
   *
   * @default {32}
   */
  firstSamples?: number;
  /**
   * Re-measure at least this often, in ns of monotonic time (1 s).
   *
   * @default {1_000_000_000n}
   */
  intervalNs?: bigint;
}

/** One bracketed read: the offset is in `[low, high]`; `after` is when it ended (monotonic). */
interface Bracket {
  low: bigint;
  high: bigint;
  after: bigint;
}

/** One offset and the monotonic time from which it applies (exclusive). */
interface Epoch {
  sinceNs: bigint;
  offsetNs: bigint;
}

/**
 * Rounding slack: the vDSO computes both clocks from one counter read but from
 * separately rounded bases, so a bracket can miss the offset by a nanosecond.
 */
const ROUNDING_NS = 2n;
/** A forward move this large is counted as a step, not as a tighter bracket. */
const STEP_NS = 1_000_000n;
/** Epochs kept for timestamps still waiting to be formatted. */
const MAX_EPOCHS = 32;
const BEFORE_ALL = -(1n << 63n);

/**
 * Keeps the wall-clock offset of the monotonic clock: measured from the
 * tightest of several bracketed reads, re-measured on a schedule, following
 * clock steps. Call {@linkcode sync} after receiving events and before
 * converting them; convert with {@linkcode offsetAt} / {@linkcode wallNs}.
 *
 * An offset change applies to timestamps after the previous `sync`: every
 * timestamp converted so far was read before that `sync`, so a timestamp's
 * wall time never changes once given out (the JSON and the human line of an
 * event agree even when the clock steps between decoding and printing).
 *
 * @example
 * ```ts
 * import { type WallClock, wallClock } from "@procwatch/procwatch/format";
 * const clock: WallClock = wallClock; // the process-wide clock every formatter uses
 * const now = clock.sync(); // monotonic ns of the check
 * console.log(new Date(Number(clock.wallNs(now) / 1_000_000n)).toISOString());
 * ```
 */
export class WallClock {
  readonly #source: ClockSource;
  readonly #samples: number;
  readonly #firstSamples: number;
  readonly #intervalNs: bigint;
  readonly #epochs: Epoch[] = [];
  readonly #reads = new BigInt64Array(3);
  #offsetNs = 0n;
  #lastSyncNs = BEFORE_ALL;
  #nextMeasureNs = 0n;
  #steps = 0;

  /** A clock over `source` (the system clocks by default). Measures lazily, on first use. */
  constructor(source: ClockSource = SYSTEM_CLOCKS, options: WallClockOptions = {}) {
    this.#source = source;
    this.#samples = Math.max(1, options.samples ?? 5);
    this.#firstSamples = Math.max(1, options.firstSamples ?? 32);
    this.#intervalNs = options.intervalNs ?? 1_000_000_000n;
  }

  /**
   * Checks the offset: one bracketed read (three vDSO reads, well under a
   * microsecond) that catches a step at once, and the full re-measurement when
   * it is due. Returns the monotonic time of the check, which is at or after
   * every timestamp received before the call.
   */
  sync(): bigint {
    if (this.#epochs.length === 0) {
      const first = this.#measure(this.#firstSamples);
      this.#offsetNs = first.low;
      this.#epochs.push({ sinceNs: BEFORE_ALL, offsetNs: first.low });
      this.#nextMeasureNs = first.after + this.#intervalNs;
      this.#lastSyncNs = first.after;
      return first.after;
    }
    const probe = this.#bracket();
    let now = probe.after;
    if (this.#moved(probe) || now >= this.#nextMeasureNs) {
      const measured = this.#measure(this.#samples);
      now = measured.after;
      this.#nextMeasureNs = now + this.#intervalNs;
      const kept = this.#offsetNs;
      if (kept > measured.high + ROUNDING_NS) {
        // The wall clock was set back: the kept offset is now too large.
        this.#steps++;
        this.#adopt(measured.low);
      } else {
        // The probe is a bracket too: keep the best lower bound of both.
        const low = probe.low > measured.low ? probe.low : measured.low;
        if (low > kept) {
          // A tighter lower bound, or the wall clock was set forward.
          if (low - kept > STEP_NS) this.#steps++;
          this.#adopt(low);
        }
      }
    }
    this.#lastSyncNs = now;
    return now;
  }

  /** The offset (wall − monotonic, ns) for a monotonic timestamp converted after a {@linkcode sync}. */
  offsetAt(timestampNs: bigint): bigint {
    const epochs = this.#epochs;
    let i = epochs.length - 1;
    if (i < 0) {
      this.sync();
      i = 0;
    }
    while (i > 0 && timestampNs <= epochs[i].sinceNs) i--;
    return epochs[i].offsetNs;
  }

  /** Wall-clock ns since the epoch of a monotonic timestamp. */
  wallNs(timestampNs: bigint): bigint {
    return timestampNs + this.offsetAt(timestampNs);
  }

  /** The offset now in use (wall − monotonic, ns). */
  get offsetNs(): bigint {
    if (this.#epochs.length === 0) this.sync();
    return this.#offsetNs;
  }

  /** Wall-clock steps followed so far (settimeofday, NTP step mode). */
  get steps(): number {
    return this.#steps;
  }

  /** Whether a single bracket contradicts the kept offset (a step, or a better bound). */
  #moved(probe: Bracket): boolean {
    const kept = this.#offsetNs;
    return kept > probe.high + ROUNDING_NS || probe.low > kept + ROUNDING_NS;
  }

  #adopt(offsetNs: bigint): void {
    this.#offsetNs = offsetNs;
    // Timestamps up to the previous sync were already converted with the old offset.
    this.#epochs.push({ sinceNs: this.#lastSyncNs, offsetNs });
    if (this.#epochs.length > MAX_EPOCHS) {
      this.#epochs.shift();
      this.#epochs[0].sinceNs = BEFORE_ALL;
    }
  }

  #bracket(): Bracket {
    const reads = this.#reads;
    this.#source.readBracket(reads);
    return { low: reads[1] - reads[2], high: reads[1] - reads[0], after: reads[2] };
  }

  /** The tightest of `count` brackets (preemption widens some of them by far). */
  #measure(count: number): Bracket {
    let best = this.#bracket();
    let after = best.after;
    for (let i = 1; i < count; i++) {
      const next = this.#bracket();
      after = next.after;
      if (next.high - next.low < best.high - best.low) best = next;
    }
    // The measurement ends with the last read.
    return { low: best.low, high: best.high, after };
  }
}

/**
 * The process-wide clock: the watcher decodes with it, the formatters and
 * `wait` convert with it, so every output of one event shows the same time.
 *
 * @example
 * ```ts
 * import { wallClock } from "@procwatch/procwatch/format";
 * console.log(wallClock.wallNs(wallClock.sync()));
 * ```
 */
export const wallClock: WallClock = new WallClock();
