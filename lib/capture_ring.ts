/**
 * Shared memory between the exec-capture worker and the watcher: one slot
 * per pid (modulo the slot count) holding what /proc showed right after an
 * exec, guarded by a sequence lock so a reader never sees half a write.
 *
 * @module
 */

import { parseCmdline } from "./proc_parse.ts";

const SLOTS = 512;
const SLOT_BYTES = 8192;
/** Int32 header: seqlock, pid, timestamp low/high, comm/exe/cmdline lengths. */
const HEADER = 32;
const COMM_AT = HEADER;
const COMM_MAX = 64;
const EXE_AT = COMM_AT + COMM_MAX;
const EXE_MAX = 1024;
const CMDLINE_AT = EXE_AT + EXE_MAX;
const CMDLINE_MAX = SLOT_BYTES - CMDLINE_AT;

/** The slot layout, for the worker that writes the ring (ffi/exec_capture_worker.ts). */
export const RING_LAYOUT = {
  slots: SLOTS,
  slotBytes: SLOT_BYTES,
  commAt: COMM_AT,
  commMax: COMM_MAX,
  exeAt: EXE_AT,
  exeMax: EXE_MAX,
  cmdlineAt: CMDLINE_AT,
  cmdlineMax: CMDLINE_MAX,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What was captured at an exec. */
export interface Captured {
  comm: string;
  exe: string | null;
  cmdline: string[];
}

/**
 * A fixed-size table of exec captures in a `SharedArrayBuffer`.
 *
 * @example
 * ```ts
 * import { CaptureRing } from "./capture_ring.ts";
 * const ring = new CaptureRing(CaptureRing.allocate());
 * ring.write(42, 7n, "true", "/usr/bin/true", new TextEncoder().encode("/bin/true\0x\0"));
 * console.log(ring.read(42, 7n)?.cmdline); // ["/bin/true", "x"]
 * ```
 */
export class CaptureRing {
  /** Longest command line kept, in bytes. */
  readonly maxCmdlineBytes = CMDLINE_MAX;
  readonly #ints: Int32Array;
  readonly #bytes: Uint8Array;

  /** Shared memory for a ring. */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  }

  /** Views a ring made by {@linkcode allocate}. */
  constructor(buffer: SharedArrayBuffer) {
    this.#ints = new Int32Array(buffer);
    this.#bytes = new Uint8Array(buffer);
  }

  /**
   * Publishes a capture for the exec of `pid` at `timestampNs` (the worker
   * writes the same layout from its own copy of this code).
   */
  write(pid: number, timestampNs: bigint, comm: string, exe: string, cmdline: Uint8Array): void {
    const base = (pid % SLOTS) * SLOT_BYTES;
    const at = base / 4;
    Atomics.add(this.#ints, at, 1); // odd: writing
    const commBytes = encoder.encode(comm).subarray(0, COMM_MAX);
    const exeBytes = encoder.encode(exe).subarray(0, EXE_MAX);
    const cmd = cmdline.subarray(0, CMDLINE_MAX);
    this.#bytes.set(commBytes, base + COMM_AT);
    this.#bytes.set(exeBytes, base + EXE_AT);
    this.#bytes.set(cmd, base + CMDLINE_AT);
    Atomics.store(this.#ints, at + 1, pid);
    Atomics.store(this.#ints, at + 2, Number(timestampNs & 0xffffffffn) | 0);
    Atomics.store(this.#ints, at + 3, Number((timestampNs >> 32n) & 0xffffffffn) | 0);
    Atomics.store(this.#ints, at + 4, commBytes.length);
    Atomics.store(this.#ints, at + 5, exeBytes.length);
    Atomics.store(this.#ints, at + 6, cmd.length);
    Atomics.add(this.#ints, at, 1); // even: done
  }

  /** The capture of the exec of `pid` at `timestampNs`, or `null`. */
  read(pid: number, timestampNs: bigint): Captured | null {
    const base = (pid % SLOTS) * SLOT_BYTES;
    const at = base / 4;
    for (let attempt = 0; attempt < 1000; attempt++) {
      const before = Atomics.load(this.#ints, at);
      if (before & 1) continue;
      if (
        Atomics.load(this.#ints, at + 1) !== pid ||
        Atomics.load(this.#ints, at + 2) !== (Number(timestampNs & 0xffffffffn) | 0) ||
        Atomics.load(this.#ints, at + 3) !== (Number((timestampNs >> 32n) & 0xffffffffn) | 0)
      ) {
        return null;
      }
      const commLength = Atomics.load(this.#ints, at + 4);
      const exeLength = Atomics.load(this.#ints, at + 5);
      const cmdLength = Atomics.load(this.#ints, at + 6);
      // Copies first: decoding shared memory directly is not allowed.
      const comm = this.#bytes.slice(base + COMM_AT, base + COMM_AT + commLength);
      const exe = this.#bytes.slice(base + EXE_AT, base + EXE_AT + exeLength);
      const cmd = this.#bytes.slice(base + CMDLINE_AT, base + CMDLINE_AT + cmdLength);
      if (Atomics.load(this.#ints, at) !== before) continue;
      return {
        comm: decoder.decode(comm),
        exe: exe.length > 0 ? decoder.decode(exe) : null,
        cmdline: parseCmdline(cmd),
      };
    }
    return null;
  }
}
