/**
 * The exec-capture worker's body. It runs in a Worker made from its own
 * source text (a blob URL): a worker module loaded from disk would need
 * `--allow-read`, and procwatch runs with `--allow-ffi` only. So the body is
 * one self-contained function — no imports, no outer names; everything it
 * needs (libc symbols from ffi/libc.ts, protocol constants, the ring layout)
 * arrives in its {@linkcode CaptureWorkerConfig}.
 *
 * It keeps its own proc connector subscription (exec events only, filtered by
 * the kernel when it can), blocks in `poll()` on its own thread at real-time priority —
 * no event loop between the kernel's wake-up and the /proc read — and for
 * each exec reads name, executable and command line at once into the shared
 * ring.
 *
 * @module
 */

import { libc } from "./libc.ts";

/** The libc symbols the worker uses (a subset of ffi/libc.ts's table). */
export const CAPTURE_WORKER_SYMBOLS = [
  "socket",
  "bind",
  "getsockname",
  "send",
  "recvfrom",
  "setsockopt",
  "poll",
  "open",
  "read",
  "readlink",
  "close",
  "setpriority",
  "sched_setscheduler",
] as const;

/** Everything the worker needs, sent with `postMessage`. */
export interface CaptureWorkerConfig {
  symbols: Record<string, Deno.ForeignFunction>;
  ring: SharedArrayBuffer;
  /**
   * BigInt64Array view: [0] stop flag, [1] timestamp of the last exec handled,
   * [2] the socket's descriptor, [3] its netlink port id (for {@linkcode unsubscribeWorker}).
   */
  control: SharedArrayBuffer;
  /** Ask the kernel for exec events only (Linux ≥ 6.6), else take all and skip. */
  kernelFilter: boolean;
  /** `PROC_EVENT_EXEC`. */
  execBit: number;
  layout: {
    slots: number;
    slotBytes: number;
    commAt: number;
    commMax: number;
    exeAt: number;
    exeMax: number;
    cmdlineAt: number;
    cmdlineMax: number;
  };
}

/**
 * The worker's main loop; returns when the stop flag is set. Must stay
 * self-contained (its source text is what runs).
 *
 * @example
 * ```ts ignore
 * // lib/exec_capture.ts starts it as:
 * // new Worker(URL.createObjectURL(new Blob([`self.onmessage = (m) => {
 * //   (${captureWorker})(m.data); self.close(); };`])), { type: "module" })
 * ```
 */
export function captureWorker(config: CaptureWorkerConfig): void {
  const c = Deno.dlopen("libc.so.6", config.symbols).symbols as Record<
    string,
    (...args: unknown[]) => number | bigint
  >;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const cstr = (text: string) => encoder.encode(text + "\0");
  const scratch = new Uint8Array(64 * 1024);

  const readFile = (path: string, limit: number): Uint8Array | null => {
    const fd = Number(c.open(cstr(path), 0o2000000, 0));
    if (fd < 0) return null;
    let length = 0;
    while (length < limit) {
      const n = Number(c.read(fd, scratch.subarray(length), BigInt(limit - length)));
      if (n <= 0) break;
      length += n;
    }
    c.close(fd);
    return scratch.slice(0, length);
  };
  const readLink = (path: string): string => {
    const n = Number(c.readlink(cstr(path), scratch, BigInt(4096)));
    return n > 0 ? decoder.decode(scratch.subarray(0, n)) : "";
  };

  // Run ahead of the workload: this thread sleeps in poll() and works microseconds per exec,
  // so SCHED_FIFO (lowest real-time priority, root only) costs the machine next to nothing;
  // else nice -20. The kernel's RT throttling bounds it even in an exec storm.
  const tid = Number(readLink("/proc/thread-self").split("/").at(-1));
  const param = new Uint8Array(4);
  param[0] = 1;
  if (tid > 0 && Number(c.sched_setscheduler(tid, 1, param)) !== 0) c.setpriority(0, tid, -20);

  // Netlink connector socket (AF_NETLINK 16, SOCK_DGRAM|SOCK_CLOEXEC, NETLINK_CONNECTOR 11).
  const fd = Number(c.socket(16, 2 | 0o2000000, 11));
  if (fd < 0) throw new Error("exec capture: socket() failed");
  const size = new Uint8Array(4);
  new DataView(size.buffer).setInt32(0, 4 << 20, true);
  c.setsockopt(fd, 1, 33, size, 4); // SO_RCVBUFFORCE
  const address = new Uint8Array(12);
  const addressView = new DataView(address.buffer);
  addressView.setUint16(0, 16, true); // nl_family
  addressView.setUint32(8, 1, true); // nl_groups: CN_IDX_PROC
  if (Number(c.bind(fd, address, 12)) < 0) throw new Error("exec capture: bind() failed");
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, 12, true);
  c.getsockname(fd, address, length);
  const portId = addressView.getUint32(4, true);

  // struct nlmsghdr + struct cn_msg + op (+ event mask: struct proc_input).
  const control = (op: number): void => {
    const payload = config.kernelFilter && op === 1 ? 8 : 4;
    const message = new Uint8Array(36 + payload);
    const view = new DataView(message.buffer);
    view.setUint32(0, message.length, true);
    view.setUint16(4, 3, true); // NLMSG_DONE
    view.setUint32(12, portId, true);
    view.setUint32(16, 1, true); // CN_IDX_PROC
    view.setUint32(20, 1, true); // CN_VAL_PROC
    view.setUint16(32, payload, true);
    view.setUint32(36, op, true);
    if (payload === 8) view.setUint32(40, config.execBit >>> 0, true);
    c.send(fd, message, BigInt(message.length), 0);
  };
  control(1); // PROC_CN_MCAST_LISTEN
  const shared = new BigInt64Array(config.control);
  Atomics.store(shared, 3, BigInt(portId));
  Atomics.store(shared, 2, BigInt(fd));
  (globalThis as unknown as { postMessage(message: unknown): void }).postMessage({ ready: true });

  const ring = new Uint8Array(config.ring);
  const ints = new Int32Array(config.ring);
  const stop = new BigInt64Array(config.control);
  const layout = config.layout;
  const capture = (pid: number, timestampNs: bigint): void => {
    const cmdline = readFile(`/proc/${pid}/cmdline`, layout.cmdlineMax);
    if (cmdline === null || cmdline.length === 0) return;
    const stat = decoder.decode(readFile(`/proc/${pid}/stat`, 1024) ?? new Uint8Array());
    const comm = encoder.encode(stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")))
      .subarray(0, layout.commMax);
    const exe = encoder.encode(readLink(`/proc/${pid}/exe`)).subarray(0, layout.exeMax);
    const base = (pid % layout.slots) * layout.slotBytes;
    const at = base / 4;
    Atomics.add(ints, at, 1); // odd: being written
    ring.set(comm, base + layout.commAt);
    ring.set(exe, base + layout.exeAt);
    ring.set(cmdline, base + layout.cmdlineAt);
    Atomics.store(ints, at + 1, pid);
    Atomics.store(ints, at + 2, Number(timestampNs & 0xffffffffn) | 0);
    Atomics.store(ints, at + 3, Number((timestampNs >> 32n) & 0xffffffffn) | 0);
    Atomics.store(ints, at + 4, comm.length);
    Atomics.store(ints, at + 5, exe.length);
    Atomics.store(ints, at + 6, cmdline.length);
    Atomics.add(ints, at, 1); // even: complete
  };

  const pollFd = new Uint8Array(8);
  new DataView(pollFd.buffer).setInt32(0, fd, true);
  new DataView(pollFd.buffer).setInt16(4, 1, true); // POLLIN
  const buffer = new Uint8Array(64 * 1024);
  const view = new DataView(buffer.buffer);
  const from = new Uint8Array(12);
  const fromView = new DataView(from.buffer);
  const fromLength = new Uint8Array(4);
  try {
    while (Atomics.load(stop, 0) === 0n) {
      if (Number(c.poll(pollFd, 1n, 100)) <= 0) continue;
      for (;;) {
        new DataView(fromLength.buffer).setUint32(0, 12, true);
        const n = Number(c.recvfrom(fd, buffer, BigInt(buffer.length), 0x40, from, fromLength));
        if (n < 0) break; // EAGAIN (empty), or ENOBUFS: lost ones are lost, go on
        if (fromView.getUint32(4, true) !== 0) continue; // only the kernel speaks for it
        for (let offset = 0; offset + 16 <= n;) {
          const messageLength = view.getUint32(offset, true);
          if (messageLength < 16 || offset + messageLength > n) break;
          // proc_event after nlmsghdr (16) + cn_msg (20): what, cpu, timestamp_ns, pid, tgid.
          const event = offset + 36;
          if (
            messageLength >= 60 && view.getUint32(offset + 16, true) === 1 &&
            view.getUint32(event, true) === config.execBit
          ) {
            const timestampNs = view.getBigUint64(event + 8, true);
            const threadId = view.getInt32(event + 16, true);
            const pid = view.getInt32(event + 20, true);
            if (pid === threadId) capture(pid, timestampNs);
            Atomics.store(stop, 1, BigInt.asIntN(64, timestampNs));
          }
          offset += (messageLength + 3) & ~3;
        }
      }
    }
  } finally {
    control(2); // PROC_CN_MCAST_IGNORE
    c.close(fd);
  }
}

/**
 * Unsubscribes the worker's socket from the calling thread (descriptors are
 * per process): a process that exits right after closing its watcher must not
 * leave the kernel counting a listener. Call before setting the stop flag —
 * the worker closes its socket only after it sees the flag.
 *
 * @example
 * ```ts ignore
 * unsubscribeWorker(control); // then Atomics.store(control, 0, 1n)
 * ```
 */
export function unsubscribeWorker(control: BigInt64Array): void {
  const fd = Number(Atomics.load(control, 2));
  if (fd <= 0 || Atomics.load(control, 0) !== 0n) return;
  const message = new Uint8Array(40);
  const view = new DataView(message.buffer);
  view.setUint32(0, 40, true);
  view.setUint16(4, 3, true); // NLMSG_DONE
  view.setUint32(12, Number(Atomics.load(control, 3)), true);
  view.setUint32(16, 1, true); // CN_IDX_PROC
  view.setUint32(20, 1, true); // CN_VAL_PROC
  view.setUint16(32, 4, true);
  view.setUint32(36, 2, true); // PROC_CN_MCAST_IGNORE
  libc().send(fd, message, 40n, 0);
}
