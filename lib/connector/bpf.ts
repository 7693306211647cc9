/**
 * A classic BPF socket filter for the proc connector socket
 * (`SO_ATTACH_FILTER`, in every kernel procwatch runs on): it drops in the
 * kernel the messages a watcher would drop anyway — event types on kernels
 * without the `proc_input` filter (Linux < 6.6), and events about other
 * processes when only some pids are watched (`wait`, `watch -p`), on every
 * kernel. A message the program drops never wakes the watcher.
 *
 * The program runs on the skb of each netlink message, whose data starts at
 * the message's `struct nlmsghdr` (16 bytes, include/uapi/linux/netlink.h),
 * followed by `struct cn_msg` (20 bytes, include/uapi/linux/connector.h) and
 * `struct proc_event` (include/uapi/linux/cn_proc.h): `what` at 36, `cpu` at
 * 40, `timestamp_ns` at 44, `event_data` at 52. Word loads (`BPF_LD|BPF_W|
 * BPF_ABS`) read big-endian (`get_unaligned_be32()` in `bpf_skb_load_helper`,
 * net/core/filter.c) while the proc connector writes host order, so
 * constants for equality and bit tests are byte-swapped on a little-endian
 * host (a byte swap is a bijection: those tests keep their meaning), and the
 * pid search, which needs order, assembles host-order values from byte loads.
 *
 * @module
 */

import { PROC_EVENT_OFFSET, ProcEventWhat } from "../../ground/cn_proc.ts";

/** `BPF_MAXINSNS` (include/uapi/linux/bpf_common.h): the longest classic program the kernel takes. */
export const BPF_MAXINSNS = 4096;

/** Opcode parts (include/uapi/linux/bpf_common.h, filter.h). */
export const BPF = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  ALU: 0x04,
  JMP: 0x05,
  RET: 0x06,
  MISC: 0x07,
  W: 0x00,
  B: 0x10,
  IMM: 0x00,
  ABS: 0x20,
  MEM: 0x60,
  K: 0x00,
  X: 0x08,
  OR: 0x40,
  LSH: 0x60,
  TAX: 0x00,
  JA: 0x00,
  JEQ: 0x10,
  JGT: 0x20,
  JGE: 0x30,
  JSET: 0x40,
} as const;

/** One `struct sock_filter` (include/uapi/linux/filter.h). */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** What a message may be kept for: the watcher's types and pids. */
export interface SocketFilterSpec {
  /**
   * `enum proc_cn_event` bits of the event types to keep; `null` keeps every
   * type.
   */
  eventMask: number | null;
  /**
   * Keep ACKs (`PROC_EVENT_NONE`): needed while LISTEN waits for its own.
   * Any listener's LISTEN or IGNORE is acknowledged to every listener, so
   * afterwards they only cost wake-ups (and, dropped on an overrun, would
   * count in the drop counter as if they were events).
   */
  acks: boolean;
  /**
   * Keep only events about these processes (thread group ids), as
   * `ProcWatcher`'s pid filter does: a fork when the child's process is one
   * of them, or, for a new process (not a thread), its parent; any other
   * event when its `process_tgid` is. `null` keeps every process.
   */
  pids: readonly number[] | null;
}

/** Where a `struct proc_event` field sits in the netlink message. */
const WHAT = PROC_EVENT_OFFSET;
const DATA = PROC_EVENT_OFFSET + 16;
/** `fork_proc_event`: parent_pid, parent_tgid, child_pid, child_tgid. */
const FORK_PARENT_TGID = DATA + 4;
const FORK_CHILD_PID = DATA + 8;
const FORK_CHILD_TGID = DATA + 12;
/** `exit_proc_event.exit_code`. */
const EXIT_CODE = DATA + 8;
/** Every other event's `process_tgid` (exec, id, sid, ptrace, comm, coredump, exit). */
const PROCESS_TGID = DATA + 4;

/** Keep the whole message (the return value is how many bytes to keep). */
const ACCEPT = 0xffff_ffff;
const DROP = 0;
/** Most pids or ranges in one leaf of the search tree (a conditional jump reaches 255 ahead). */
const LEAF = 64;

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A 32-bit host-order value as a `BPF_W` load reads it (big-endian). */
export function loaded(value: number): number {
  const v = value >>> 0;
  if (!littleEndian) return v;
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function insn(code: number, k: number, jt = 0, jf = 0): SockFilter {
  return { code, jt, jf, k: k >>> 0 };
}

const loadWord = (offset: number) => insn(BPF.LD | BPF.W | BPF.ABS, offset);
const ret = (value: number) => insn(BPF.RET | BPF.K, value);

/**
 * Loads the u32 at `offset` in host order (little-endian) into A, a byte at
 * a time: word loads read big-endian, and the search below needs the pids'
 * order, which a byte swap does not keep. Uses X.
 */
function loadHostWord(offset: number): SockFilter[] {
  const out: SockFilter[] = [insn(BPF.LD | BPF.B | BPF.ABS, offset + 3)];
  for (const byte of [2, 1, 0]) {
    out.push(
      insn(BPF.ALU | BPF.LSH | BPF.K, 8),
      insn(BPF.MISC | BPF.TAX, 0),
      insn(BPF.LD | BPF.B | BPF.ABS, offset + byte),
      insn(BPF.ALU | BPF.OR | BPF.X, 0),
    );
  }
  return out;
}

/** Sorted, distinct pids as runs of consecutive values: [first, last]. */
function runs(pids: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const pid of pids) {
    const last = out.at(-1);
    if (last !== undefined && last[1] + 1 === pid) last[1] = pid;
    else out.push([pid, pid]);
  }
  return out;
}

/**
 * A binary search over `ranges` (sorted, disjoint) of the host-order value
 * in A: it ends in ACCEPT when A is in one of them and falls through past
 * its last instruction otherwise. Only `ja` jumps far (its offset is 32-bit);
 * conditional jumps stay inside a leaf of at most {@linkcode LEAF} ranges.
 */
function search(ranges: readonly [number, number][]): SockFilter[] {
  if (ranges.length <= LEAF) {
    const checks: SockFilter[] = [];
    // Each check's "in range" jump goes to the ACCEPT that ends the leaf.
    const toAccept = (index: number, count: number) => count - 1 - index;
    const sizes = ranges.map(([low, high]) => (low === high ? 1 : 2));
    const total = sizes.reduce((sum, size) => sum + size, 0) + 1; // + the `ja` past ACCEPT
    let at = 0;
    for (const [low, high] of ranges) {
      if (low === high) {
        checks.push(insn(BPF.JMP | BPF.JEQ | BPF.K, low, toAccept(at, total), 0));
        at += 1;
      } else {
        checks.push(
          insn(BPF.JMP | BPF.JGE | BPF.K, low, 0, 1),
          // At least `low`: above `high` goes on, else accept.
          insn(BPF.JMP | BPF.JGT | BPF.K, high, 0, toAccept(at + 1, total)),
        );
        at += 2;
      }
    }
    return [...checks, insn(BPF.JMP | BPF.JA, 1), ret(ACCEPT)];
  }
  const middle = Math.floor(ranges.length / 2);
  const right = search(ranges.slice(middle));
  const left = [...search(ranges.slice(0, middle)), insn(BPF.JMP | BPF.JA, right.length)];
  return [
    // At least the right half's first value: go right.
    insn(BPF.JMP | BPF.JGE | BPF.K, ranges[middle][0], 0, 1),
    insn(BPF.JMP | BPF.JA, left.length),
    ...left,
    ...right,
  ];
}

/**
 * Builds the program for `spec`, or `null` when it needs no program (nothing
 * to drop) or would be longer than {@linkcode BPF_MAXINSNS} (the caller then
 * filters those pids in procwatch). The pids are searched as sorted runs
 * of consecutive values (binary search, then a short linear leaf): one
 * search for a fork's child or any other event's process, one for a fork's
 * parent, about one instruction per run in each, so about 1,800 scattered
 * pids fit, and any number of pids made one after the other. A message
 * costs a few dozen instructions whatever the number of pids.
 *
 * @example
 * ```ts
 * import { buildSocketFilter } from "./bpf.ts";
 * const program = buildSocketFilter({ eventMask: null, pids: [1234], acks: true });
 * console.log(program?.length); // 64
 * ```
 */
export function buildSocketFilter(spec: SocketFilterSpec): SockFilter[] | null {
  const pids = spec.pids === null ? null : [...new Set(spec.pids)].sort((a, b) => a - b);
  if (spec.eventMask === null && pids === null) return null;
  const program: SockFilter[] = [
    loadWord(WHAT),
    // PROC_EVENT_NONE: an ACK (or a LISTEN's error), kept or not as a whole.
    insn(BPF.JMP | BPF.JEQ | BPF.K, 0, 0, 1),
    ret(spec.acks ? ACCEPT : DROP),
  ];
  if (spec.eventMask !== null) {
    // Each `what` is one bit; the exit of a failed process still arrives as EXIT.
    const asked = spec.eventMask >>> 0;
    const failedOnly = (asked & ProcEventWhat.NONZERO_EXIT) !== 0 &&
      (asked & ProcEventWhat.EXIT) === 0;
    const mask = failedOnly ? (asked | ProcEventWhat.EXIT) >>> 0 : asked;
    program.push(insn(BPF.JMP | BPF.JSET | BPF.K, loaded(mask), 1, 0), ret(DROP));
    if (failedOnly) {
      // PROC_EVENT_NONZERO_EXIT as the kernel's own filter reads it
      // (cn_filter(), drivers/connector/cn_proc.c): an exit with exit_code 0
      // is dropped. Zero reads the same in either byte order.
      program.push(
        insn(BPF.JMP | BPF.JEQ | BPF.K, loaded(ProcEventWhat.EXIT), 0, 3),
        loadWord(EXIT_CODE),
        insn(BPF.JMP | BPF.JEQ | BPF.K, 0, 0, 1),
        ret(DROP),
        loadWord(WHAT),
      );
    }
  }
  if (pids !== null) {
    const pidRuns = runs(pids);
    // Each run costs at least one instruction in each of the two searches:
    // past the limit, say so before building (8,000 scattered pids took 45 ms).
    if (2 * pidRuns.length > BPF_MAXINSNS) return null;
    const tree = search(pidRuns);
    // One search serves a fork's child and every other event's process:
    // M[1] says which one came (1: a fork), for what follows a miss.
    const child = [
      insn(BPF.LD | BPF.IMM, 1),
      insn(BPF.ST, 1),
      ...loadHostWord(FORK_CHILD_TGID),
    ];
    const other = [insn(BPF.LD | BPF.IMM, 0), insn(BPF.ST, 1), ...loadHostWord(PROCESS_TGID)];
    program.push(
      // `what` is still in A (JSET and RET do not change it).
      insn(BPF.JMP | BPF.JEQ | BPF.K, loaded(ProcEventWhat.FORK), 0, child.length + 1),
      ...child,
      insn(BPF.JMP | BPF.JA, other.length),
      ...other,
      ...tree,
      // Not one of ours: the end, unless a fork's parent may still be.
      insn(BPF.LD | BPF.W | BPF.MEM, 1),
      insn(BPF.JMP | BPF.JEQ | BPF.K, 1, 1, 0),
      ret(DROP),
      // A new thread (child_pid ≠ child_tgid) belongs to no watched process
      // but its own; a new process belongs to its parent's.
      loadWord(FORK_CHILD_TGID),
      insn(BPF.ST, 0),
      insn(BPF.LDX | BPF.W | BPF.MEM, 0),
      loadWord(FORK_CHILD_PID),
      insn(BPF.JMP | BPF.JEQ | BPF.X, 0, 1, 0),
      ret(DROP),
      ...loadHostWord(FORK_PARENT_TGID),
      ...search(pidRuns),
      ret(DROP),
    );
  } else {
    program.push(ret(ACCEPT));
  }
  return program.length <= BPF_MAXINSNS ? program : null;
}

/**
 * The program as the kernel reads it: an array of 8-byte `struct
 * sock_filter` (u16 code, u8 jt, u8 jf, u32 k, host order).
 */
export function encodeProgram(program: readonly SockFilter[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((instruction, i) => {
    view.setUint16(i * 8, instruction.code, littleEndian);
    view.setUint8(i * 8 + 2, instruction.jt);
    view.setUint8(i * 8 + 3, instruction.jf);
    view.setUint32(i * 8 + 4, instruction.k, littleEndian);
  });
  return bytes;
}

/**
 * What a watcher asked the kernel to filter with its socket filter.
 *
 * @example
 * ```ts
 * import { type SocketFilterInfo, watch } from "@procwatch/procwatch";
 * using watcher = watch({ events: ["exec"], kernelFilter: true });
 * const filter: SocketFilterInfo = watcher.socketFilter;
 * console.log(filter);
 * ```
 */
export interface SocketFilterInfo {
  /** Event types are selected by the program (no `proc_input` filter, or forced). */
  types: boolean;
  /** Pids are selected by the program. */
  pids: boolean;
  /**
   * Why the pids are filtered in procwatch instead, when they are: the list is
   * too long for one program, or the process table needs every process.
   */
  pidsInProcwatch: string | null;
  /** Instructions in the attached program (0 when none is attached). */
  instructions: number;
}

/** A program to attach (or none) and what it does. */
export interface SocketFilterPlan {
  program: SockFilter[] | null;
  info: SocketFilterInfo;
}

/**
 * Chooses the program for a watcher: event types when `eventMask` is given,
 * and `pids` when given and they fit in one program; past the instruction
 * limit the pids are left to procwatch and `pidsInProcwatch` says why.
 * `pidsReason` is why pids are not asked for at all (reported as is);
 * `acks` keeps ACKs (while subscribing).
 *
 * @example
 * ```ts
 * import { planSocketFilter } from "./bpf.ts";
 * const many = Array.from({ length: 2000 }, (_, i) => i + 100);
 * console.log(planSocketFilter(null, many, null, true).info.pids); // false: too long for one program
 * ```
 */
export function planSocketFilter(
  eventMask: number | null,
  pids: readonly number[] | null,
  pidsReason: string | null,
  acks: boolean,
): SocketFilterPlan {
  let reason = pidsReason;
  if (pids !== null) {
    const program = buildSocketFilter({ eventMask, pids, acks });
    if (program !== null) {
      return {
        program,
        info: {
          types: eventMask !== null,
          pids: true,
          pidsInProcwatch: null,
          instructions: program.length,
        },
      };
    }
    reason = `${new Set(pids).size} pids need more than the kernel's ${BPF_MAXINSNS} ` +
      `BPF instructions`;
  }
  const program = buildSocketFilter({ eventMask, pids: null, acks });
  return {
    program,
    info: {
      types: program !== null,
      pids: false,
      pidsInProcwatch: reason,
      instructions: program?.length ?? 0,
    },
  };
}
