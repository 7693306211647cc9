/**
 * The exec-capture worker's body. It runs in a Worker made from source text
 * (a blob URL): a worker module loaded from disk, and any import inside a
 * blob worker, would need `--allow-read` (checked with Deno 2.9), and
 * procwatch runs with `--allow-ffi` only. So {@linkcode captureWorkerSource}
 * writes the worker's text from the very functions the main thread runs — the
 * control message builder (ground/cn_proc.ts `controlMessage`), the readers
 * of exec events and ACKs (lib/connector/decode.ts) and the ring writers
 * (lib/process/capture_ring.ts) — and their constants, then the body:
 * one wire format and one ring layout, each written once. The libc symbols
 * (ffi/libc.ts) arrive in its {@linkcode CaptureWorkerConfig}.
 *
 * It keeps its own proc connector subscription (exec events only, filtered by
 * the kernel when it can), blocks in `poll()` on its own thread at real-time priority —
 * no event loop between the kernel's wake-up and the /proc read — and for
 * each exec reads name, executable and command line at once into the shared
 * ring.
 *
 * @module
 */

import { libc } from "../../ffi/libc.ts";
import {
  AF_NETLINK,
  CN_IDX_PROC,
  CN_MSG_HDRLEN,
  CN_VAL_PROC,
  controlMessage,
  NETLINK_CONNECTOR,
  NLMSG_DONE,
  NLMSG_HDRLEN,
  PROC_CN_MCAST_IGNORE,
  PROC_CN_MCAST_LISTEN,
  PROC_EVENT_ALL,
  PROC_EVENT_HEAD,
  PROC_EVENT_OFFSET,
  ProcEventWhat,
} from "../../ground/cn_proc.ts";
import { ackErrorAt, execEventAt, procEventAt } from "../connector/decode.ts";
import { RING_LAYOUT, setCaptureStatus, writeCapture } from "./capture_ring.ts";

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
  "clock_gettime",
] as const;

/**
 * Words of the worker's control block (a BigInt64Array over
 * {@linkcode CaptureWorkerConfig.control}).
 */
export const CONTROL = {
  /** Set to 1 to stop the worker. */
  stop: 0,
  /** Timestamp of the last exec event the worker handled. */
  lastExecNs: 1,
  /** The worker's socket descriptor (for {@linkcode unsubscribeWorker}). */
  fd: 2,
  /** The worker's netlink port id. */
  portId: 3,
  /** 0 while starting, 1 once it listens and is warmed up, -1 when it failed. */
  state: 4,
  /**
   * Monotonic time before the worker's last receive that found its socket
   * empty: every exec enqueued before it has been handled (and has voided
   * the captures it overlapped).
   */
  settledNs: 5,
  /** How the kernel filters for it: 1 by event type (Linux >= 6.6), 2 not at all. */
  filterMode: 6,
  /**
   * Odd while the worker waits in poll() with everything it received handled
   * and published; it changes whenever poll() returns.
   */
  idle: 7,
  /** Number of words. */
  size: 8,
} as const;

/** Everything the worker needs, sent with `postMessage`. */
export interface CaptureWorkerConfig {
  symbols: Record<string, Deno.ForeignFunction>;
  ring: SharedArrayBuffer;
  /** BigInt64Array of {@linkcode CONTROL}.size words; see {@linkcode CONTROL}. */
  control: SharedArrayBuffer;
  /** May the kernel filter event types (it is asked only if it acknowledges the filter). */
  kernelFilter: boolean;
  /** Also read the cgroup and namespaces at each exec (lib/process/capture_ring.ts keeps them). */
  attribution?: boolean;
  /**
   * With `attribution`: read the namespaces too (seven /proc/PID/ns links per
   * exec); `false` when nobody shows them, and the ring keeps zeros.
   */
  namespaces?: boolean;
}

/**
 * The constants the worker's text declares before the functions: every name
 * from outside its own body that a function of {@linkcode WORKER_FUNCTIONS}
 * refers to, with the value the main thread's modules give it.
 */
export const WORKER_CONSTANTS = {
  AF_NETLINK,
  CN_IDX_PROC,
  CN_MSG_HDRLEN,
  CN_VAL_PROC,
  NETLINK_CONNECTOR,
  NLMSG_DONE,
  NLMSG_HDRLEN,
  PROC_CN_MCAST_IGNORE,
  PROC_CN_MCAST_LISTEN,
  PROC_EVENT_ALL,
  PROC_EVENT_HEAD,
  PROC_EVENT_OFFSET,
  ProcEventWhat,
  RING_LAYOUT,
  CONTROL,
} as const;

/**
 * The functions the worker's text holds, each the source of the one the main
 * thread runs; {@linkcode captureWorker} calls the others by these names.
 */
export const WORKER_FUNCTIONS = [
  controlMessage,
  procEventAt,
  execEventAt,
  ackErrorAt,
  writeCapture,
  setCaptureStatus,
  captureWorker,
] as const;

/**
 * The worker's source text: {@linkcode WORKER_CONSTANTS} as `const`
 * declarations, the source of each of {@linkcode WORKER_FUNCTIONS}, and a
 * message handler that runs {@linkcode captureWorker} with the
 * {@linkcode CaptureWorkerConfig} it is sent.
 *
 * @example
 * ```ts
 * import { captureWorkerSource } from "./exec_capture_worker.ts";
 * import { controlMessage } from "../../ground/cn_proc.ts";
 * console.log(captureWorkerSource().includes(controlMessage.toString())); // true
 * ```
 */
export function captureWorkerSource(): string {
  const constants = Object.entries(WORKER_CONSTANTS).map(([name, value]) =>
    `const ${name} = ${JSON.stringify(value)};`
  );
  const functions = WORKER_FUNCTIONS.map((fn) => fn.toString());
  return [
    ...constants,
    ...functions,
    `self.onmessage = (message) => {
  try { captureWorker(message.data); }
  catch (error) { self.postMessage({ error: String(error) }); }
  self.close();
};`,
  ].join("\n");
}

/**
 * The worker's main loop; returns when the stop flag is set. Its source text
 * is what runs: it may refer only to its parameter, globals, and the names
 * {@linkcode captureWorkerSource} declares before it.
 *
 * Each round it first receives every exec event queued on its socket, then
 * reads /proc only for the last exec of each pid in the round: an earlier
 * exec of the same pid has already been replaced, and /proc would show the
 * later program (an `env env sleep 1` chain execs three times in a few ms).
 * A capture whose reads ended after a later exec of its pid began (that
 * exec's timestamp <= the read's end) is voided the same way when that exec
 * arrives: the kernel takes the exec event's timestamp in
 * proc_exec_connector(), after the new image's argv is in place
 * (create_elf_tables() in fs/binfmt_elf.c), so a read that ended before that
 * timestamp saw the older image, and one that ended after may not have.
 *
 * @example
 * ```ts
 * // lib/process/exec_capture.ts starts it as:
 * // new Worker(URL.createObjectURL(new Blob([captureWorkerSource()])), { type: "module" })
 * ```
 */
export function captureWorker(config: CaptureWorkerConfig): void {
  const words = CONTROL;
  const shared = new BigInt64Array(config.control);
  const fail = (why: string): never => {
    Atomics.store(shared, words.state, -1n);
    Atomics.notify(shared, words.state);
    throw new Error(`exec capture: ${why}`);
  };
  const c = Deno.dlopen("libc.so.6", config.symbols).symbols as Record<
    string,
    (...args: unknown[]) => number | bigint
  >;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const layout = RING_LAYOUT;
  const timespec = new BigInt64Array(2);
  const now = (): bigint => {
    c.clock_gettime(1, timespec); // CLOCK_MONOTONIC, the clock of the events' timestamps
    return timespec[0] * 1_000_000_000n + timespec[1];
  };

  // "/proc/<pid>/<name>\0" built in place: no strings in the hot path.
  const path = new Uint8Array(64);
  path.set(encoder.encode("/proc/"));
  const suffixes = {
    cmdline: encoder.encode("/cmdline\0"),
    stat: encoder.encode("/stat\0"),
    exe: encoder.encode("/exe\0"),
    cgroup: encoder.encode("/cgroup\0"),
    // In lib/process/namespaces.ts NAMESPACE_KINDS order.
    ns: ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"].map((kind) =>
      encoder.encode(`/ns/${kind}\0`)
    ),
  };
  const digits = new Uint8Array(12);
  const pathOf = (pid: number, suffix: Uint8Array): Uint8Array => {
    let count = 0;
    for (let rest = pid; count === 0 || rest > 0; rest = Math.floor(rest / 10)) {
      digits[count++] = 48 + (rest % 10);
    }
    let at = 6;
    while (count > 0) path[at++] = digits[--count];
    path.set(suffix, at);
    return path;
  };
  const readInto = (file: Uint8Array, into: Uint8Array): number => {
    const fd = Number(c.open(file, 0o2000000, 0)); // O_RDONLY | O_CLOEXEC
    if (fd < 0) return -1;
    // The first read takes the buffer itself, no view (garbage means V8 collections, and
    // a collection is a pause this thread cannot afford). Sizes stay BigInts: a number for
    // a usize parameter measured slower here (the FFI call leaves its fast path).
    let length = Math.max(0, Number(c.read(fd, into, BigInt(into.length))));
    while (length > 0 && length < into.length) {
      const n = Number(c.read(fd, into.subarray(length), BigInt(into.length - length)));
      if (n <= 0) break;
      length += n;
    }
    c.close(fd);
    return length;
  };
  const scratch = new Uint8Array(4096);
  const readLink = (file: Uint8Array, into: Uint8Array): number =>
    Math.max(0, Number(c.readlink(file, into, BigInt(into.length))));

  // Run ahead of the workload: this thread sleeps in poll() and works microseconds per exec,
  // so SCHED_FIFO (lowest real-time priority, root only) costs the machine next to nothing;
  // else nice -20. The kernel's RT throttling bounds it even in an exec storm.
  const selfLength = readLink(encoder.encode("/proc/thread-self\0"), scratch);
  const tid = Number(decoder.decode(scratch.subarray(0, selfLength)).split("/").at(-1));
  const param = new Uint8Array(4);
  param[0] = 1;
  if (tid > 0 && Number(c.sched_setscheduler(tid, 1, param)) !== 0) c.setpriority(0, tid, -20);

  const ring = new Uint8Array(config.ring);
  const ints = new Int32Array(config.ring);
  const stop = shared;
  const cmdlineBuffer = new Uint8Array(layout.cmdlineMax);
  const exeBuffer = new Uint8Array(layout.exeMax);
  const statBuffer = new Uint8Array(1024);
  const noName = new Uint8Array(0);
  const cgroupFile = new Uint8Array(8192);
  const linkBuffer = new Uint8Array(64);
  const inodes = new Uint32Array(layout.namespaceKinds);
  /** What the last reads found (set by readImage). */
  const image = {
    cmdline: 0,
    exe: 0,
    comm: noName,
    readEndNs: 0n,
    cgroup: noName as Uint8Array,
  };
  // The cgroup path of /proc/PID/cgroup as lib/process/cgroup_path.ts cgroupFromProcFile() picks
  // it: the "0::" line, but where that is "/" on a hybrid host, the "name=systemd" line.
  const systemdName = encoder.encode(":name=systemd:");
  const pickCgroup = (length: number): Uint8Array => {
    let unified: Uint8Array = noName;
    let systemd: Uint8Array = noName;
    for (let start = 0; start < length;) {
      let end = start;
      while (end < length && cgroupFile[end] !== 10) end++;
      if (
        cgroupFile[start] === 48 && cgroupFile[start + 1] === 58 && cgroupFile[start + 2] === 58
      ) {
        unified = cgroupFile.subarray(start + 3, end); // "0::"
      } else {
        let colon = start;
        while (colon < end && cgroupFile[colon] !== 58) colon++;
        let same = colon + systemdName.length <= end;
        for (let i = 0; same && i < systemdName.length; i++) {
          same = cgroupFile[colon + i] === systemdName[i];
        }
        if (same) systemd = cgroupFile.subarray(colon + systemdName.length, end);
      }
      start = end + 1;
    }
    const unifiedRoot = unified.length === 1 && unified[0] === 47;
    return unified.length > 0 && (!unifiedRoot || systemd.length === 0) ? unified : systemd;
  };
  // Inode numbers of the namespace links ("net:[4026531840]"); 0 where unreadable (a zombie's).
  const readPlace = (pid: number): void => {
    for (let i = 0; i < layout.namespaceKinds && config.namespaces !== false; i++) {
      const n = readLink(pathOf(pid, suffixes.ns[i]), linkBuffer);
      let value = 0;
      let at = 0;
      while (at < n && linkBuffer[at] !== 91) at++; // "["
      for (at++; at < n && linkBuffer[at] >= 48 && linkBuffer[at] <= 57; at++) {
        value = value * 10 + linkBuffer[at] - 48;
      }
      inodes[i] = value;
    }
    const length = readInto(pathOf(pid, suffixes.cgroup), cgroupFile);
    image.cgroup = length > 0 ? pickCgroup(length) : noName;
  };
  // cmdline and exe first: both live in the process's memory map, which exit_mm() drops
  // long before the process is reaped; stat (for the name) stays readable until then.
  const readImage = (pid: number): boolean => {
    image.cmdline = readInto(pathOf(pid, suffixes.cmdline), cmdlineBuffer);
    image.exe = image.cmdline > 0 ? readLink(pathOf(pid, suffixes.exe), exeBuffer) : 0;
    const stat = readInto(pathOf(pid, suffixes.stat), statBuffer);
    image.comm = noName;
    if (stat > 0) {
      let open = 0;
      while (open < stat && statBuffer[open] !== 40) open++; // "("
      let close = stat - 1;
      while (close > open && statBuffer[close] !== 41) close--; // ")"
      if (close > open) image.comm = statBuffer.subarray(open + 1, close);
    }
    image.readEndNs = now();
    // Not part of the image (an exec does not change them), so after readEndNs: they
    // do not widen the window in which a later exec voids this capture.
    if (config.attribution) readPlace(pid);
    return image.cmdline > 0;
  };
  // The ring's writer (lib/process/capture_ring.ts), which keeps what the status allows.
  const places = config.attribution === true ? inodes : null;
  const publish = (pid: number, timestampNs: bigint, status: number): number =>
    writeCapture(
      ints,
      ring,
      pid,
      timestampNs,
      status,
      image.comm,
      exeBuffer.subarray(0, image.exe),
      cmdlineBuffer.subarray(0, image.cmdline),
      image.readEndNs,
      image.cgroup,
      places,
    );

  // Warm up before subscribing: the first runs of this code are interpreted and its
  // FFI calls take the slow path, ~10x slower than optimised — long enough to miss a
  // /bin/true that lives a millisecond. The garbage of start-up is collected now too.
  // Subscribed only afterwards, so no backlog of execs piles up meanwhile.
  const selfPid = Number(decoder.decode(scratch.subarray(0, selfLength)).split("/")[0]);
  for (let round = 0; round < 300; round++) readImage(selfPid);
  // The publishing path too, as pid 0 (no process has it: a lookup never matches it).
  for (let round = 0; round < 50; round++) publish(0, 0n, layout.captured);

  // Netlink connector socket (AF_NETLINK 16, SOCK_DGRAM|SOCK_CLOEXEC, NETLINK_CONNECTOR 11).
  const fd = Number(c.socket(AF_NETLINK, 2 | 0o2000000, NETLINK_CONNECTOR));
  if (fd < 0) fail("socket() failed");
  const size = new Uint8Array(4);
  new DataView(size.buffer).setInt32(0, 4 << 20, true);
  c.setsockopt(fd, 1, 33, size, 4); // SO_RCVBUFFORCE
  const address = new Uint8Array(12);
  const addressView = new DataView(address.buffer);
  addressView.setUint16(0, AF_NETLINK, true); // nl_family
  addressView.setUint32(8, CN_IDX_PROC, true); // nl_groups
  // Failing from here on: the descriptor is the process's, close it (the worker ends).
  const failClosing = (why: string): never => {
    c.close(fd);
    return fail(why);
  };
  if (Number(c.bind(fd, address, 12)) < 0) failClosing("bind() failed");
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, 12, true);
  c.getsockname(fd, address, length);
  const portId = addressView.getUint32(4, true);

  // LISTEN / IGNORE as lib/connector/subscription.ts sends them: seq and ack = `sequence`.
  const control = (op: number, sequence: number, mask?: number): void => {
    const message = controlMessage(op, portId, sequence, sequence, mask);
    c.send(fd, message, BigInt(message.length), 0);
  };

  const pollFd = new Uint8Array(8);
  new DataView(pollFd.buffer).setInt32(0, fd, true);
  new DataView(pollFd.buffer).setInt16(4, 1, true); // POLLIN
  const buffer = new Uint8Array(64 * 1024);
  const view = new DataView(buffer.buffer);
  const from = new Uint8Array(12);
  const fromView = new DataView(from.buffer);
  const fromLength = new Uint8Array(4);
  const fromLengthView = new DataView(fromLength.buffer);
  const receive = (): number => {
    fromLengthView.setUint32(0, 12, true);
    const n = Number(c.recvfrom(fd, buffer, BigInt(buffer.length), 0x40, from, fromLength));
    return n >= 0 && fromView.getUint32(4, true) !== 0 ? 0 : n; // only the kernel speaks
  };

  // Like lib/connector/subscription.ts: the kernel acknowledges a LISTEN with an event filter
  // (struct proc_input, Linux >= 6.6) at once; older kernels drop it without a word.
  const awaitAck = (sequence: number, timeoutMs: number): number | null => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let n = receive(); n >= 0; n = receive()) {
        for (let offset = 0; offset + 16 <= n;) {
          const messageLength = view.getUint32(offset, true);
          if (messageLength < 16 || offset + messageLength > n) break;
          const error = ackErrorAt(view, offset, messageLength, sequence);
          if (error !== null) return error;
          offset += (messageLength + 3) & ~3;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) return null;
      c.poll(pollFd, 1n, left);
    }
  };
  let filterMode = 2;
  const sequence = (Date.now() * 7919) & 0x3fffffff;
  if (config.kernelFilter) {
    control(PROC_CN_MCAST_LISTEN, sequence, PROC_EVENT_ALL); // everything first (ACKs pass)
    const error = awaitAck(sequence, 200);
    if (error !== null && error !== 0) failClosing(`LISTEN refused (errno ${error})`);
    if (error === 0) {
      control(PROC_CN_MCAST_LISTEN, sequence + 2, ProcEventWhat.EXEC);
      filterMode = 1;
    }
  }
  if (filterMode === 2) {
    control(PROC_CN_MCAST_LISTEN, sequence + 4);
    const error = awaitAck(sequence + 4, 1000);
    if (error !== 0) {
      failClosing(error === null ? "no answer to LISTEN" : `LISTEN refused (errno ${error})`);
    }
  }
  Atomics.store(shared, words.filterMode, BigInt(filterMode));
  Atomics.store(shared, words.portId, BigInt(portId));
  Atomics.store(shared, words.fd, BigInt(fd));

  // Per pid: the ring index and read end of its newest capture, to void it if need be.
  const latest = new Map<number, { index: number; readEndNs: bigint; gone: boolean }>();
  const MAX_ROUND = 256;
  const roundPids = new Int32Array(MAX_ROUND);
  const roundTimes = new BigInt64Array(MAX_ROUND);
  const ids = new Int32Array(2); // execEventAt(): process id, thread id
  let roundSize = 0;

  Atomics.store(shared, words.settledNs, BigInt.asIntN(64, now()));
  Atomics.store(shared, words.state, 1n);
  Atomics.notify(shared, words.state);
  (globalThis as unknown as { postMessage(message: unknown): void }).postMessage({ ready: true });

  let generation = 0n;
  try {
    while (Atomics.load(stop, words.stop) === 0n) {
      Atomics.store(shared, words.idle, generation * 2n + 1n);
      const ready = Number(c.poll(pollFd, 1n, 100));
      Atomics.store(shared, words.idle, ++generation * 2n);
      if (ready <= 0) continue;
      // 1. Everything queued now (up to a round's worth).
      roundSize = 0;
      let settledNs = -1n;
      while (roundSize < MAX_ROUND) {
        const before = now();
        const n = receive();
        if (n < 0) {
          // EAGAIN (empty), or ENOBUFS: lost ones are lost, go on.
          settledNs = before;
          break;
        }
        for (let offset = 0; offset + 16 <= n;) {
          const messageLength = view.getUint32(offset, true);
          if (messageLength < 16 || offset + messageLength > n) break;
          const timestampNs = execEventAt(view, offset, messageLength, ids);
          if (timestampNs !== null && ids[0] === ids[1] && roundSize < MAX_ROUND) {
            roundPids[roundSize] = ids[0];
            roundTimes[roundSize++] = BigInt.asIntN(64, timestampNs);
          }
          offset += (messageLength + 3) & ~3;
        }
      }
      // 2. Read the newest image of each pid; void what a later exec overtook.
      for (let i = 0; i < roundSize; i++) {
        const pid = roundPids[i];
        const timestampNs = BigInt.asUintN(64, roundTimes[i]);
        const before = latest.get(pid);
        // A read that ended after this exec began may show this exec's program. And a
        // process that was "gone" but execs again was only between two programs.
        if (before !== undefined && (before.gone || before.readEndNs >= timestampNs)) {
          setCaptureStatus(ints, before.index, layout.replaced);
        }
        let later = false;
        for (let j = i + 1; j < roundSize && !later; j++) later = roundPids[j] === pid;
        if (later) {
          image.comm = noName;
          image.cgroup = noName;
          publish(pid, timestampNs, layout.replaced);
          latest.delete(pid);
        } else {
          const alive = readImage(pid);
          const index = publish(pid, timestampNs, alive ? layout.captured : layout.gone);
          latest.set(pid, { index, readEndNs: image.readEndNs, gone: !alive });
        }
        Atomics.store(stop, words.lastExecNs, BigInt.asIntN(64, timestampNs));
      }
      if (latest.size > 4 * layout.slots) latest.clear(); // entries that old are overwritten anyway
      if (settledNs >= 0n) Atomics.store(stop, words.settledNs, BigInt.asIntN(64, settledNs));
    }
  } finally {
    control(PROC_CN_MCAST_IGNORE, 0);
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
 * ```ts
 * import { unsubscribeWorker } from "./exec_capture_worker.ts";
 * const control = new BigInt64Array(new SharedArrayBuffer(64));
 * unsubscribeWorker(control); // then Atomics.store(control, 0, 1n)
 * ```
 */
export function unsubscribeWorker(control: BigInt64Array): void {
  const fd = Number(Atomics.load(control, CONTROL.fd));
  if (fd <= 0 || Atomics.load(control, CONTROL.stop) !== 0n) return;
  const portId = Number(Atomics.load(control, CONTROL.portId));
  const message = controlMessage(PROC_CN_MCAST_IGNORE, portId, 0, 0);
  libc().send(fd, message, BigInt(message.length), 0);
}
