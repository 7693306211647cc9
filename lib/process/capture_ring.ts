/**
 * Shared memory between the exec-capture worker and the watcher: a ring of
 * the last {@linkcode RING_LAYOUT}.slots exec captures, each keyed by the
 * exec it belongs to — (pid, the exec event's timestamp) — so that every
 * image of an exec chain (`env env sleep 1`: three execs of one pid within
 * milliseconds) keeps its own entry. Entries are written in the order the
 * worker receives the exec events, which is the order the watcher receives
 * them too (both sockets are filled by the same netlink_broadcast() call).
 * Each entry is guarded by a sequence lock so a reader never sees half a
 * write.
 *
 * @module
 */

import { parseCmdline } from "./proc_parse.ts";
import { NAMESPACE_KINDS, type NamespaceInodes } from "./namespaces.ts";

const SLOTS = 512;
/** 8 KiB as before, plus the cgroup path and the namespaces (the command line keeps its room). */
const SLOT_BYTES = 8192 + 512 + 32;
/** Bytes before the first slot: Int32 [0] = entries written so far. */
const RING_HEADER = 64;
/**
 * Int32 header of a slot: seqlock, pid, timestamp low/high, status, comm/exe/cmdline
 * lengths, read-end low/high, cgroup length, then the namespaces' inode numbers
 * (unsigned, {@linkcode NAMESPACE_KINDS} order, 0 when unknown).
 */
const HEADER = 96;
const CGROUP_LENGTH_WORD = 10;
const NAMESPACES_WORD = 11;
const COMM_AT = HEADER;
const COMM_MAX = 64;
const EXE_AT = COMM_AT + COMM_MAX;
const EXE_MAX = 1024;
/** The cgroup path: the `0::` line's (see lib/process/cgroup_path.ts cgroupFromProcFile). */
const CGROUP_AT = EXE_AT + EXE_MAX;
const CGROUP_MAX = 512;
const CMDLINE_AT = CGROUP_AT + CGROUP_MAX;
const CMDLINE_MAX = SLOT_BYTES - CMDLINE_AT;

/**
 * What the worker found at an exec (the `status` word of an entry).
 *
 * - `CAPTURED`: argv, name and executable were read from the new image.
 * - `REPLACED`: the process had exec'd again before (or while) its argv was
 *   read: whatever /proc showed belongs to a later image, so nothing is kept.
 * - `GONE`: the process had already exited; only its name may be known.
 */
export const CaptureStatus = { CAPTURED: 1, REPLACED: 2, GONE: 3 } as const;

/** The slot layout (the worker's copy of the writers below reads it from its source text). */
export const RING_LAYOUT = {
  slots: SLOTS,
  slotBytes: SLOT_BYTES,
  ringHeader: RING_HEADER,
  commAt: COMM_AT,
  commMax: COMM_MAX,
  exeAt: EXE_AT,
  exeMax: EXE_MAX,
  cmdlineAt: CMDLINE_AT,
  cmdlineMax: CMDLINE_MAX,
  cgroupAt: CGROUP_AT,
  cgroupMax: CGROUP_MAX,
  cgroupLengthWord: CGROUP_LENGTH_WORD,
  namespacesWord: NAMESPACES_WORD,
  namespaceKinds: NAMESPACE_KINDS.length,
  captured: CaptureStatus.CAPTURED,
  replaced: CaptureStatus.REPLACED,
  gone: CaptureStatus.GONE,
} as const;

// The two writers below run in the exec-capture worker too, from their source text
// (lib/process/exec_capture_worker.ts): they may refer only to their parameters and
// RING_LAYOUT.

/**
 * Appends the capture of the exec of `pid` at `timestampNs` to the ring
 * whose shared memory `ints` and `bytes` view; returns the entry's index
 * (for {@linkcode setCaptureStatus}). What `status` keeps: CAPTURED all,
 * GONE the name and place (cgroup, namespaces), REPLACED only the key.
 * Fields longer than their room are cut, except a cgroup path, which is then
 * not kept at all (a cut path names another cgroup). `namespaces`: inode
 * numbers in NAMESPACE_KINDS order, or `null` when not read.
 *
 * Allocates nothing: the exec-capture worker calls it at each exec.
 *
 * @example
 * ```ts
 * import { CaptureRing, CaptureStatus, writeCapture } from "./capture_ring.ts";
 * const buffer = CaptureRing.allocate();
 * const name = new TextEncoder().encode("true");
 * const none = new Uint8Array(0);
 * writeCapture(
 *   new Int32Array(buffer), new Uint8Array(buffer), 42, 7n, CaptureStatus.GONE,
 *   name, none, none, 0n, none, null,
 * );
 * console.log(new CaptureRing(buffer).read(42, 7n)); // { status: "gone", comm: "true" }
 * ```
 */
export function writeCapture(
  ints: Int32Array,
  bytes: Uint8Array,
  pid: number,
  timestampNs: bigint,
  status: number,
  comm: Uint8Array,
  exe: Uint8Array,
  cmdline: Uint8Array,
  readEndNs: bigint,
  cgroup: Uint8Array,
  namespaces: ArrayLike<number> | null,
): number {
  const layout = RING_LAYOUT;
  const index = Atomics.load(ints, 0);
  const base = layout.ringHeader + (index % layout.slots) * layout.slotBytes;
  const at = base / 4;
  const captured = status === layout.captured;
  const place = status !== layout.replaced;
  const commLength = place ? Math.min(comm.length, layout.commMax) : 0;
  const exeLength = captured ? Math.min(exe.length, layout.exeMax) : 0;
  const cmdlineLength = captured ? Math.min(cmdline.length, layout.cmdlineMax) : 0;
  const cgroupLength = place && cgroup.length <= layout.cgroupMax ? cgroup.length : 0;
  Atomics.add(ints, at, 1); // odd: being written
  // Whole arrays where they fit: a subarray is an allocation.
  bytes.set(commLength === comm.length ? comm : comm.subarray(0, commLength), base + layout.commAt);
  bytes.set(exeLength === exe.length ? exe : exe.subarray(0, exeLength), base + layout.exeAt);
  bytes.set(
    cmdlineLength === cmdline.length ? cmdline : cmdline.subarray(0, cmdlineLength),
    base + layout.cmdlineAt,
  );
  bytes.set(
    cgroupLength === cgroup.length ? cgroup : cgroup.subarray(0, 0),
    base + layout.cgroupAt,
  );
  Atomics.store(ints, at + layout.cgroupLengthWord, cgroupLength);
  for (let i = 0; i < layout.namespaceKinds; i++) {
    const inode = place && namespaces !== null ? namespaces[i] | 0 : 0;
    Atomics.store(ints, at + layout.namespacesWord + i, inode);
  }
  Atomics.store(ints, at + 1, pid);
  Atomics.store(ints, at + 2, Number(timestampNs & 0xffffffffn) | 0);
  Atomics.store(ints, at + 3, Number((timestampNs >> 32n) & 0xffffffffn) | 0);
  Atomics.store(ints, at + 4, status);
  Atomics.store(ints, at + 5, commLength);
  Atomics.store(ints, at + 6, exeLength);
  Atomics.store(ints, at + 7, cmdlineLength);
  Atomics.store(ints, at + 8, Number(readEndNs & 0xffffffffn) | 0);
  Atomics.store(ints, at + 9, Number((readEndNs >> 32n) & 0xffffffffn) | 0);
  Atomics.add(ints, at, 1); // even: complete
  Atomics.store(ints, 0, index + 1);
  return index;
}

/**
 * Changes the status of the entry written as `index` (by
 * {@linkcode writeCapture}) — the worker voids a capture a later exec
 * overtook with REPLACED. It does not check whether the slot has been
 * reused since.
 *
 * @example
 * ```ts
 * import { CaptureRing, CaptureStatus, setCaptureStatus } from "./capture_ring.ts";
 * const buffer = CaptureRing.allocate();
 * const ring = new CaptureRing(buffer);
 * ring.write(42, 7n, "true", "/usr/bin/true", new TextEncoder().encode("true\0"));
 * setCaptureStatus(new Int32Array(buffer), 0, CaptureStatus.REPLACED);
 * console.log(ring.read(42, 7n)); // { status: "replaced" }
 * ```
 */
export function setCaptureStatus(ints: Int32Array, index: number, status: number): void {
  const layout = RING_LAYOUT;
  // The slot may have been written again since (a lap of the ring later): then it holds
  // another exec's record, which must keep its own status.
  const written = (Atomics.load(ints, 0) - index) | 0;
  if (written <= 0 || written > layout.slots) return;
  const at = (layout.ringHeader + (index % layout.slots) * layout.slotBytes) / 4;
  Atomics.add(ints, at, 1); // odd: being written
  Atomics.store(ints, at + 4, status);
  Atomics.add(ints, at, 1); // even: complete
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Where the process was at its exec: the cgroup path (absent: not read, or
 * longer than the ring keeps) and namespaces (absent when gone first).
 */
export interface CapturedPlace {
  cgroup?: string;
  namespaces?: NamespaceInodes;
}

/** What the worker recorded for one exec. */
export type Captured =
  | {
    status: "captured";
    comm: string;
    exe: string | null;
    cmdline: string[];
    /** Monotonic time when the worker's reads ended: a later exec before it voids them. */
    readEndNs: bigint;
  } & CapturedPlace
  | { status: "replaced" }
  | { status: "gone"; comm: string | null } & CapturedPlace;

/**
 * A ring of exec captures in a `SharedArrayBuffer`.
 *
 * @example
 * ```ts
 * import { CaptureRing } from "./capture_ring.ts";
 * const ring = new CaptureRing(CaptureRing.allocate());
 * ring.write(42, 7n, "true", "/usr/bin/true", new TextEncoder().encode("/bin/true\0x\0"));
 * const found = ring.read(42, 7n);
 * if (found?.status === "captured") console.log(found.cmdline); // ["/bin/true", "x"]
 * ```
 */
export class CaptureRing {
  /** Longest command line kept, in bytes. */
  readonly maxCmdlineBytes = CMDLINE_MAX;
  readonly #ints: Int32Array;
  readonly #bytes: Uint8Array;

  /** Shared memory for a ring. */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(RING_HEADER + SLOTS * SLOT_BYTES);
  }

  /** Views a ring made by {@linkcode allocate}. */
  constructor(buffer: SharedArrayBuffer) {
    this.#ints = new Int32Array(buffer);
    this.#bytes = new Uint8Array(buffer);
  }

  /**
   * Appends a capture for the exec of `pid` at `timestampNs` with
   * {@linkcode writeCapture}, the writer the worker runs too. With `status`
   * REPLACED nothing but the key is kept; with GONE, the name and place.
   */
  write(
    pid: number,
    timestampNs: bigint,
    comm: string,
    exe: string,
    cmdline: Uint8Array,
    status: number = CaptureStatus.CAPTURED,
    readEndNs = 0n,
    cgroup = "",
    namespaces: NamespaceInodes | null = null,
  ): void {
    writeCapture(
      this.#ints,
      this.#bytes,
      pid,
      timestampNs,
      status,
      encoder.encode(comm),
      encoder.encode(exe),
      cmdline,
      readEndNs,
      encoder.encode(cgroup),
      namespaces,
    );
  }

  /** The entry of the exec of `pid` at `timestampNs`, or `null` (not written, or overwritten). */
  read(pid: number, timestampNs: bigint): Captured | null {
    const slot = this.#find(pid, (found) => found === timestampNs);
    return slot === -1 ? null : this.#decode(slot, pid, timestampNs);
  }

  /**
   * Whether the ring holds an exec of `pid` later than `afterNs` and no later
   * than `untilNs`: then a /proc read of `pid` that ended at `untilNs` may
   * have seen that later program rather than the one exec'd at `afterNs`.
   */
  hasExecBetween(pid: number, afterNs: bigint, untilNs: bigint): boolean {
    return this.#find(pid, (found) => found > afterNs && found <= untilNs) !== -1;
  }

  /**
   * Per pid, the timestamp of its newest exec in the ring later than `afterNs`
   * (what a scan of /proc begun at `afterNs` may have missed).
   */
  newestExecsAfter(afterNs: bigint): Map<number, bigint> {
    const found = new Map<number, bigint>();
    const written = Atomics.load(this.#ints, 0);
    for (let index = Math.max(0, written - SLOTS); index < written; index++) {
      const at = (RING_HEADER + (index % SLOTS) * SLOT_BYTES) / 4;
      const timestampNs = BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 2))) |
        (BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 3))) << 32n);
      const pid = Atomics.load(this.#ints, at + 1);
      if (timestampNs > afterNs && timestampNs > (found.get(pid) ?? 0n)) {
        found.set(pid, timestampNs);
      }
    }
    return found;
  }

  /** The timestamp of the newest exec of `pid` after `afterNs` and before `beforeNs`, or `null`. */
  newestExecOf(pid: number, afterNs: bigint, beforeNs: bigint): bigint | null {
    let newest: bigint | null = null;
    this.#find(pid, (found) => {
      if (found > afterNs && found < beforeNs && (newest === null || found > newest)) {
        newest = found;
      }
      return false;
    });
    return newest;
  }

  /** The slot of the newest entry of `pid` whose timestamp passes `match`, or -1. */
  #find(pid: number, match: (timestampNs: bigint) => boolean): number {
    const written = Atomics.load(this.#ints, 0);
    const oldest = Math.max(0, written - SLOTS);
    for (let index = written - 1; index >= oldest; index--) {
      const slot = index % SLOTS;
      const at = (RING_HEADER + slot * SLOT_BYTES) / 4;
      if (Atomics.load(this.#ints, at + 1) !== pid) continue;
      const timestampNs = BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 2))) |
        (BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 3))) << 32n);
      if (match(timestampNs)) return slot;
    }
    return -1;
  }

  #decode(slot: number, pid: number, timestampNs: bigint): Captured | null {
    const base = RING_HEADER + slot * SLOT_BYTES;
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
      const status = Atomics.load(this.#ints, at + 4);
      const commLength = Atomics.load(this.#ints, at + 5);
      const exeLength = Atomics.load(this.#ints, at + 6);
      const cmdLength = Atomics.load(this.#ints, at + 7);
      const readEndNs = BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 8))) |
        (BigInt.asUintN(32, BigInt(Atomics.load(this.#ints, at + 9))) << 32n);
      // Copies first: decoding shared memory directly is not allowed.
      const comm = this.#bytes.slice(base + COMM_AT, base + COMM_AT + commLength);
      const exe = this.#bytes.slice(base + EXE_AT, base + EXE_AT + exeLength);
      const cmd = this.#bytes.slice(base + CMDLINE_AT, base + CMDLINE_AT + cmdLength);
      const cgroupLength = Math.min(CGROUP_MAX, Atomics.load(this.#ints, at + CGROUP_LENGTH_WORD));
      const cgroupBytes = this.#bytes.slice(base + CGROUP_AT, base + CGROUP_AT + cgroupLength);
      let namespaces: NamespaceInodes | null = new Uint32Array(NAMESPACE_KINDS.length);
      for (let i = 0; i < NAMESPACE_KINDS.length; i++) {
        namespaces[i] = Atomics.load(this.#ints, at + NAMESPACES_WORD + i) >>> 0;
      }
      if (Atomics.load(this.#ints, at) !== before) continue;
      if (status === CaptureStatus.REPLACED) return { status: "replaced" };
      if (namespaces[0] === 0) namespaces = null;
      const place: CapturedPlace = {};
      if (cgroupLength > 0) place.cgroup = decoder.decode(cgroupBytes);
      if (namespaces !== null) place.namespaces = namespaces;
      if (status === CaptureStatus.GONE) {
        return { status: "gone", comm: comm.length > 0 ? decoder.decode(comm) : null, ...place };
      }
      return {
        status: "captured",
        comm: decoder.decode(comm),
        exe: exe.length > 0 ? decoder.decode(exe) : null,
        cmdline: parseCmdline(cmd),
        readEndNs,
        ...place,
      };
    }
    return null;
  }
}
