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
 * net/core/filter.c) while the proc connector writes host order, so every
 * constant is compared byte-swapped on a little-endian host: a byte swap is a
 * bijection, so equality and bit tests keep their meaning.
 *
 * @module
 */

import { PROC_EVENT_OFFSET, ProcEventWhat } from "./protocol.ts";

/** `BPF_MAXINSNS` (include/uapi/linux/bpf_common.h): the longest classic program the kernel takes. */
export const BPF_MAXINSNS = 4096;

/** Opcode parts (include/uapi/linux/bpf_common.h, filter.h). */
export const BPF = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  JMP: 0x05,
  RET: 0x06,
  W: 0x00,
  ABS: 0x20,
  MEM: 0x60,
  K: 0x00,
  X: 0x08,
  JA: 0x00,
  JEQ: 0x10,
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
/** Most comparisons per block: a conditional jump reaches 255 instructions ahead. */
const BLOCK = 250;

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
 * Instructions that end in ACCEPT when the accumulator (a loaded tgid) is
 * one of `swapped`, and fall through otherwise: blocks of comparisons, each
 * followed by its own ACCEPT so that every jump stays within reach.
 */
function member(swapped: readonly number[]): SockFilter[] {
  const out: SockFilter[] = [];
  for (let start = 0; start < swapped.length; start += BLOCK) {
    const block = swapped.slice(start, start + BLOCK);
    block.forEach((value, i) => {
      // Equal: jump to the ACCEPT after the `ja` that ends the block.
      out.push(insn(BPF.JMP | BPF.JEQ | BPF.K, value, block.length - i, 0));
    });
    out.push(insn(BPF.JMP | BPF.JA, 1));
    out.push(ret(ACCEPT));
  }
  return out;
}

/**
 * Builds the program for `spec`, or `null` when it needs no program (nothing
 * to drop) or would be longer than {@linkcode BPF_MAXINSNS} (the caller then
 * filters those pids in procwatch). The pid list costs about three
 * instructions per pid (once for a fork's child, once for its parent, once
 * for everything else), so about 1,300 pids fit.
 *
 * @example
 * ```ts
 * import { buildSocketFilter } from "./bpf.ts";
 * const program = buildSocketFilter({ eventMask: null, pids: [1234], acks: true });
 * console.log(program?.length); // 24
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
    const swapped = pids.map(loaded);
    const notFork: SockFilter[] = [loadWord(PROCESS_TGID), ...member(swapped), ret(DROP)];
    const fork: SockFilter[] = [
      loadWord(FORK_CHILD_TGID),
      ...member(swapped),
      // Not the child's process: a new thread (child_pid ≠ child_tgid) belongs
      // to no watched process; a new process belongs to its parent's.
      insn(BPF.ST, 0),
      insn(BPF.LDX | BPF.W | BPF.MEM, 0),
      loadWord(FORK_CHILD_PID),
      insn(BPF.JMP | BPF.JEQ | BPF.X, 0, 1, 0),
      ret(DROP),
      loadWord(FORK_PARENT_TGID),
      ...member(swapped),
      ret(DROP),
    ];
    program.push(
      // `what` is still in A (JSET and RET do not change it).
      insn(BPF.JMP | BPF.JEQ | BPF.K, loaded(ProcEventWhat.FORK), 1, 0),
      insn(BPF.JMP | BPF.JA, fork.length),
      ...fork,
      ...notFork,
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

/** What a watcher asked the kernel to filter with its socket filter. */
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
