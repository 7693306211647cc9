/**
 * The pump: when to drain the socket. It waits on another thread with
 * `poll([socket, eventfd])` (the only `nonblocking` FFI call) while nothing
 * comes, and on a short timer between drains while events keep coming.
 *
 * May import: nothing but the small interfaces it declares (a leaf).
 *
 * @module
 */

/** Datagrams drained before giving the consumer a turn. */
export const DRAIN_BATCH = 4096;
/**
 * While events keep coming, wait on a timer between drains instead of
 * re-arming the poll. A wake-up through a `nonblocking` FFI call costs
 * ~100–300 µs of CPU on a small VM (thread hand-offs, mostly in the kernel),
 * a timer somewhat less, and each timer drain takes everything that arrived
 * meanwhile, so during a storm the cost per event falls with the batch size.
 * The wait starts at LINGER_MIN_MS and doubles while rounds bring fewer than
 * LINGER_FULL_ROUND events, up to the watcher's `maxBatchDelayMs` (8 by default): a wake-up of the event loop
 * costs ~100 µs of CPU here (measured: a 1 ms timer round trip), ten events'
 * worth of `watch --json`, so a round should carry a few hundred. A round at
 * least that full halves the wait again. `maxBatchDelayMs` bounds the added
 * latency, and only while events are already flowing; the first event after
 * a quiet spell is read as soon as the poll returns.
 */
const LINGER_MIN_MS = 2;
/** A round with fewer datagrams than this lengthens the next wait (one `recvmmsg` batch). */
const LINGER_FULL_ROUND = 256;
/**
 * Microtask turns given to the consumer before the next wait is armed. Arming
 * a timer costs ~20 µs in Deno 2.9 and ~100 µs after an idle spell (measured:
 * `setTimeout` + `clearTimeout` in a loop, and one call 50 ms after the last),
 * which would otherwise come between an event's arrival and its consumer:
 * `waitForExit()` resolving is ~8 turns after delivery (the iterator's
 * `next()`, `for await`, two `await`s of the result), a handler's own `await`s
 * take more. Turns that find nothing to run cost well under a microsecond.
 */
const CONSUMER_TURNS = 32;

/** What the pump drives. */
export interface PumpHost {
  /** The pump stops once this is true. */
  readonly closed: boolean;
  /** Receives up to about `limit` datagrams; returns how many it received. */
  drain(limit: number): number;
  /** Hands what was queued to a waiting consumer. */
  deliver(): void;
}

/** The socket's wait: readable, or woken through its eventfd (`close()` does). */
export interface Pollable {
  /** Waits on another thread; -1: no time limit. */
  wait(timeoutMs: number): Promise<number>;
}

/**
 * Paces the drains of one watcher.
 *
 * @example
 * ```ts
 * import { Pump } from "./pump.ts";
 * let rounds = 0;
 * const host = {
 *   get closed() { return rounds === 3; },
 *   drain() { rounds++; return 1; },
 *   deliver() {},
 * };
 * await new Pump(host, { wait: () => Promise.resolve(0) }).run();
 * console.log(rounds); // 3: two timed waits between three drains
 * ```
 */
export class Pump {
  readonly #host: PumpHost;
  readonly #socket: Pollable;
  readonly #maxLingerMs: number;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #sleepDone: (() => void) | undefined;

  /**
   * Drains through `host`, waiting on `socket` while nothing comes and up to
   * `maxLingerMs` between drains while events flow (0: never; the watcher's
   * `maxBatchDelayMs`).
   */
  constructor(host: PumpHost, socket: Pollable, maxLingerMs = 8) {
    this.#host = host;
    this.#socket = socket;
    this.#maxLingerMs = maxLingerMs;
  }

  /** Drains until the host is closed; rejects with what a drain or wait threw. */
  async run(): Promise<void> {
    const host = this.#host;
    let linger = 0;
    while (!host.closed) {
      const received = host.drain(DRAIN_BATCH);
      host.deliver();
      if (received > 0) {
        for (let turn = 0; turn < CONSUMER_TURNS && !host.closed; turn++) await undefined;
      }
      if (host.closed) break;
      if (received >= DRAIN_BATCH) {
        // More is waiting: let the consumer run, then go on at once.
        await this.#sleep(0);
      } else if (received > 0 && this.#maxLingerMs > 0) {
        // Events are flowing: collect the next ones in one go a little later.
        const least = Math.min(LINGER_MIN_MS, this.#maxLingerMs);
        linger = linger === 0
          ? least
          : received < LINGER_FULL_ROUND
          ? Math.min(linger * 2, this.#maxLingerMs)
          : Math.max(linger / 2, least);
        await this.#sleep(linger);
      } else {
        // An empty round (the flow has stopped), or no lingering asked for:
        // the poll takes over again.
        linger = 0;
        await this.#socket.wait(-1);
      }
    }
  }

  /** Cuts a timed wait short (closing wakes the poll through the eventfd instead). */
  interrupt(): void {
    if (this.#sleepTimer === undefined) return;
    clearTimeout(this.#sleepTimer);
    this.#sleepTimer = undefined;
    const done = this.#sleepDone;
    this.#sleepDone = undefined;
    done?.();
  }

  /** Waits `ms` on a timer that {@linkcode interrupt} cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#sleepDone = resolve;
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = undefined;
        this.#sleepDone = undefined;
        resolve();
      }, ms);
    });
  }
}
