/**
 * The kernel's proc connector: its wire format and a subscription to it.
 * The pure decoder of `struct cn_msg` + `struct proc_event` datagrams
 * (decode.ts), per-CPU sequence numbers that count loss exactly (sequence.ts),
 * the socket's drop counter (drops.ts), the classic BPF socket filter that
 * drops unwanted types and pids in the kernel (bpf.ts), and the LISTEN/ACK/
 * IGNORE exchange (subscription.ts). The numbers of cn_proc.h are in
 * ground/cn_proc.ts, below every layer.
 *
 * What the package exports of this room, `"."` re-exports from here.
 *
 * @example
 * ```ts
 * import { type FilterMode, watch } from "@procwatch/procwatch";
 * using watcher = watch({ events: ["exec"] });
 * const mode: FilterMode = watcher.filterMode;
 * console.log(mode); // "kernel" on Linux >= 6.6
 * ```
 *
 * May import: ground/, ffi/, lib/events/.
 *
 * @module
 */

export { type FilterMode } from "./subscription.ts";
export { type SocketFilterInfo } from "./bpf.ts";
