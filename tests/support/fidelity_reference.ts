/**
 * The independent reference of tests/fidelity_test.ts: a Worker with its own
 * netlink connector socket and its own decoder of `struct proc_event`
 * (include/uapi/linux/cn_proc.h), sharing no code with procwatch, so that a
 * bug in lib/decode.ts or the watcher cannot hide by agreeing with itself.
 *
 * It reads with blocking `recv()` on the worker's thread (a 20 ms
 * SO_RCVTIMEO lets it notice the stop flag), keeps the messages of the
 * workload's process sub-tree (the root pid arrives through shared memory,
 * then every process forked from it is followed), and measures the wall-clock
 * offset (CLOCK_REALTIME − CLOCK_MONOTONIC) from the tightest of many
 * bracketed reads at start and at stop.
 *
 * @module
 */

/** One kernel message as the reference decoded it (kernel names, ps-style ids). */
export interface RawEvent {
  /** `proc_event.what` as a name. */
  what: string;
  cpu: number;
  /** `proc_event.timestamp_ns`, decimal. */
  timestampNs: string;
  /** Decoded fields of `event_data` (ps naming: pid = tgid, tid = pid). */
  fields: Record<string, number | string | boolean>;
}

/** Control words in the shared buffer: [0] stop flag, [1] workload root pid. */
export const CONTROL_STOP = 0;
/** Index of the root pid in the control words. */
export const CONTROL_ROOT = 1;

/** Messages the worker posts. */
export type ReferenceMessage =
  | { type: "ready"; offsetNs: string; offsetBracketNs: string }
  | {
    type: "done";
    events: RawEvent[];
    /** ENOBUFS seen: the kernel dropped messages for this socket. */
    overruns: number;
    offsetNs: string;
    offsetBracketNs: string;
  }
  | { type: "error"; message: string };

const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const NETLINK_CONNECTOR = 11;
const CN_IDX_PROC = 1;
const CN_VAL_PROC = 1;
const NLMSG_DONE = 3;
const PROC_CN_MCAST_LISTEN = 1;
const PROC_CN_MCAST_IGNORE = 2;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUFFORCE = 33;
const EAGAIN = 11;
const EINTR = 4;
const ENOBUFS = 105;

/** `enum what` of struct proc_event. */
const WHAT: Record<number, string> = {
  0x1: "fork",
  0x2: "exec",
  0x4: "uid",
  0x40: "gid",
  0x80: "sid",
  0x100: "ptrace",
  0x200: "comm",
  0x40000000: "coredump",
  0x80000000: "exit",
};

interface WorkerScope {
  onmessage: ((event: MessageEvent<{ control: SharedArrayBuffer }>) => void) | null;
  postMessage(message: ReferenceMessage): void;
}

function openLibc() {
  return Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
    clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  });
}

type Libc = ReturnType<typeof openLibc>["symbols"];

function errnoOf(c: Libc): number {
  const pointer = c.__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

/** The wall-clock offset from the tightest of `tries` monotonic/realtime/monotonic brackets. */
function measureOffset(c: Libc, tries = 200): { offsetNs: bigint; bracketNs: bigint } {
  const ts = new Uint8Array(16);
  const view = new DataView(ts.buffer);
  const read = (clock: number) => {
    c.clock_gettime(clock, ts);
    return view.getBigInt64(0, true) * 1_000_000_000n + view.getBigInt64(8, true);
  };
  let best = { offsetNs: 0n, bracketNs: 1n << 62n };
  for (let i = 0; i < tries; i++) {
    const before = read(1);
    const wall = read(0);
    const after = read(1);
    if (after - before < best.bracketNs) {
      best = { offsetNs: wall - (before + (after - before) / 2n), bracketNs: after - before };
    }
  }
  return best;
}

function control(c: Libc, fd: number, op: number): void {
  const message = new Uint8Array(16 + 20 + 4);
  const view = new DataView(message.buffer);
  view.setUint32(0, message.length, true); // nlmsghdr.nlmsg_len
  view.setUint16(4, NLMSG_DONE, true); // nlmsg_type
  view.setUint32(16, CN_IDX_PROC, true); // cn_msg.id.idx
  view.setUint32(20, CN_VAL_PROC, true); // cn_msg.id.val
  view.setUint16(32, 4, true); // cn_msg.len
  view.setUint32(36, op, true); // enum proc_cn_mcast_op
  if (Number(c.send(fd, message, BigInt(message.length), 0)) !== message.length) {
    throw new Error(`send(PROC_CN_MCAST op ${op}) failed: errno ${errnoOf(c)}`);
  }
}

/** Decodes one struct proc_event at `at` (cn_proc.h; the union starts 16 bytes in). */
export function decodeProcEvent(view: DataView, at: number): RawEvent | null {
  const what = WHAT[view.getUint32(at, true)];
  if (what === undefined) return null;
  const cpu = view.getUint32(at + 4, true);
  const timestampNs = view.getBigUint64(at + 8, true).toString();
  const d = at + 16;
  const i = (k: number) => view.getInt32(d + 4 * k, true);
  const fields: Record<string, number | string | boolean> = {};
  switch (what) {
    case "fork":
      // parent_pid, parent_tgid, child_pid, child_tgid
      Object.assign(fields, {
        parentTid: i(0),
        parentPid: i(1),
        childTid: i(2),
        childPid: i(3),
        thread: i(2) !== i(3),
      });
      break;
    case "exec":
    case "sid":
      Object.assign(fields, { tid: i(0), pid: i(1) });
      break;
    case "uid":
      Object.assign(fields, { tid: i(0), pid: i(1), ruid: i(2), euid: i(3) });
      break;
    case "gid":
      Object.assign(fields, { tid: i(0), pid: i(1), rgid: i(2), egid: i(3) });
      break;
    case "ptrace":
      Object.assign(fields, { tid: i(0), pid: i(1), tracerTid: i(2), tracerPid: i(3) });
      break;
    case "comm": {
      const bytes = new Uint8Array(view.buffer, view.byteOffset + d + 8, 16);
      const end = bytes.indexOf(0);
      fields.tid = i(0);
      fields.pid = i(1);
      fields.comm = new TextDecoder().decode(bytes.subarray(0, end < 0 ? 16 : end));
      break;
    }
    case "coredump":
      Object.assign(fields, { tid: i(0), pid: i(1), parentTid: i(2), parentPid: i(3) });
      break;
    case "exit":
      // process_pid, process_tgid, exit_code, exit_signal, parent_pid, parent_tgid
      Object.assign(fields, {
        tid: i(0),
        pid: i(1),
        status: view.getUint32(d + 8, true),
        exitSignal: i(3),
        parentTid: i(4),
        parentPid: i(5),
      });
      break;
  }
  return { what, cpu, timestampNs, fields };
}

function run(controlBuffer: SharedArrayBuffer, scope: WorkerScope): void {
  const flags = new Int32Array(controlBuffer);
  const library = openLibc();
  const c = library.symbols;
  const fd = c.socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
  if (fd < 0) throw new Error(`socket: errno ${errnoOf(c)}`);
  try {
    const size = new Uint8Array(4);
    new DataView(size.buffer).setInt32(0, 64 << 20, true);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4);
    const timeout = new Uint8Array(16); // struct timeval { 0 s, 20000 µs }
    new DataView(timeout.buffer).setBigInt64(8, 20_000n, true);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, 16);
    const address = new Uint8Array(12); // sockaddr_nl: family, pad, nl_pid 0 (kernel picks), groups
    const addressView = new DataView(address.buffer);
    addressView.setUint16(0, AF_NETLINK, true);
    addressView.setUint32(8, CN_IDX_PROC, true);
    if (c.bind(fd, address, 12) < 0) throw new Error(`bind: errno ${errnoOf(c)}`);
    control(c, fd, PROC_CN_MCAST_LISTEN);
    const start = measureOffset(c);
    scope.postMessage({
      type: "ready",
      offsetNs: String(start.offsetNs),
      offsetBracketNs: String(start.bracketNs),
    });

    const buffer = new Uint8Array(1 << 16);
    const view = new DataView(buffer.buffer);
    const events: RawEvent[] = [];
    const tree = new Set<number>();
    let rooted = false;
    let overruns = 0;
    while (Atomics.load(flags, CONTROL_STOP) === 0) {
      const n = Number(c.recv(fd, buffer, BigInt(buffer.length), 0));
      if (n < 0) {
        const error = errnoOf(c);
        if (error === ENOBUFS) overruns++;
        else if (error !== EAGAIN && error !== EINTR) throw new Error(`recv: errno ${error}`);
        continue;
      }
      const root = Atomics.load(flags, CONTROL_ROOT);
      if (root === 0) continue;
      if (!rooted) {
        tree.add(root);
        rooted = true;
      }
      // Walk the netlink messages of the datagram (one per datagram in practice).
      for (let at = 0; at + 16 <= n;) {
        const length = view.getUint32(at, true);
        if (length < 16 || at + length > n) break;
        if (length >= 16 + 20 + 16) {
          const event = decodeProcEvent(view, at + 36);
          if (event !== null) {
            const f = event.fields;
            if (event.what === "fork") {
              const child = f.childPid as number;
              if (!f.thread && tree.has(f.parentPid as number)) tree.add(child);
              // A new process forked by someone else under a pid we knew: the pid was reused
              // (pid_max can be 32768 on a busy machine), it is not ours any more.
              else if (!f.thread && child !== root) tree.delete(child);
              if (tree.has(child)) events.push(event);
            } else if (tree.has(f.pid as number)) {
              events.push(event);
            }
          }
        }
        at += (length + 3) & ~3;
      }
    }
    control(c, fd, PROC_CN_MCAST_IGNORE);
    const end = measureOffset(c);
    scope.postMessage({
      type: "done",
      events,
      overruns,
      offsetNs: String(end.offsetNs),
      offsetBracketNs: String(end.bracketNs),
    });
  } finally {
    c.close(fd);
    library.close();
  }
}

// Only when loaded as a Worker (the test imports the types and the decoder too).
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = (message) => {
    try {
      run(message.data.control, scope);
    } catch (error) {
      scope.postMessage({ type: "error", message: String(error) });
    }
  };
}
