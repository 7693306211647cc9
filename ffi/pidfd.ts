/**
 * Process file descriptors (`pidfd_open(2)`, Linux ≥ 5.3): a descriptor that
 * becomes readable when a process has exited. Waiting this way needs no
 * privilege and works for any process, child or not. How the process ended
 * is only told once its parent has reaped it, and only by Linux ≥ 6.15
 * (`PIDFD_INFO_EXIT`).
 *
 * @module
 */

import { check, Errno, errno, ErrnoError, libc } from "./libc.ts";
import { readFileText } from "./proc_fs.ts";

/** `__NR_pidfd_open`: the same number on every architecture (include/uapi/asm-generic/unistd.h). */
const SYS_PIDFD_OPEN = 434n;
/** `POLLIN`, `POLLHUP` (include/uapi/asm-generic/poll.h). */
const POLLIN = 0x1;
const POLLHUP = 0x10;
/**
 * `PIDFD_GET_INFO` = `_IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)` with the 64-byte
 * `PIDFD_INFO_SIZE_VER0` struct (include/uapi/linux/pidfd.h, Linux ≥ 6.13).
 */
const PIDFD_GET_INFO = (3n << 30n) | (64n << 16n) | (0xFFn << 8n) | 11n;
const PIDFD_INFO_SIZE = 64;
/** `PIDFD_INFO_EXIT` (Linux ≥ 6.15): the exit status, kept once the process has been reaped. */
const PIDFD_INFO_EXIT = 1n << 3n;
/** Offset of `__s32 exit_code` in `struct pidfd_info` (after mask, cgroupid and 11 ids). */
const EXIT_CODE_OFFSET = 60;
/** `EFD_NONBLOCK | EFD_CLOEXEC` (include/uapi/linux/eventfd.h). */
const EFD_FLAGS = 0o4000 | 0o2000000;
/** `struct pollfd`: int fd; short events; short revents. */
const POLLFD_SIZE = 8;

/**
 * Opens a pidfd for the thread-group leader `pid`. Throws
 * {@linkcode ErrnoError}: `ESRCH` when no such process exists (a zombie still
 * does), `EINVAL` when `pid` is not a thread-group leader, `ENOSYS` before
 * Linux 5.3.
 *
 * @example
 * ```ts
 * import { pidfdOpen } from "./pidfd.ts";
 * const fd = pidfdOpen(Deno.pid);
 * ```
 */
export function pidfdOpen(pid: number): number {
  // pidfd_open always sets O_CLOEXEC on the new descriptor.
  const result = libc().syscall2(SYS_PIDFD_OPEN, BigInt(pid), 0n);
  if (result < 0n) throw new ErrnoError("pidfd_open", errno(), `(${pid})`);
  return Number(result);
}

/**
 * A set of pidfds waited on together with one `poll()` on another thread,
 * plus an eventfd that wakes that poll (to cancel or close).
 *
 * @example
 * ```ts
 * import { PidfdSet } from "./pidfd.ts";
 * const set = PidfdSet.open([1234, 5678]);
 * await set.wait();
 * console.log(set.check().exited); // e.g. [1234]
 * await set.close();
 * ```
 */
export class PidfdSet {
  /** The pids, in the order of the descriptors. */
  readonly pids: readonly number[];
  /** Pids that had no process to open (`ESRCH`: exited and reaped already). */
  readonly missing: readonly number[];
  readonly #fds: number[];
  readonly #wakeFd: number;
  readonly #pollFds: Uint8Array<ArrayBuffer>;
  readonly #view: DataView;
  #waiting: Promise<number> | undefined;
  #closed = false;

  private constructor(pids: number[], missing: number[], fds: number[], wakeFd: number) {
    this.pids = pids;
    this.missing = missing;
    this.#fds = fds;
    this.#wakeFd = wakeFd;
    this.#pollFds = new Uint8Array((fds.length + 1) * POLLFD_SIZE);
    this.#view = new DataView(this.#pollFds.buffer);
    [...fds, wakeFd].forEach((fd, i) => {
      this.#view.setInt32(i * POLLFD_SIZE, fd, true);
      this.#view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
    });
  }

  /**
   * Opens a pidfd for each pid; pids without a process (`ESRCH`) are left out
   * and listed in {@linkcode missing}. Throws {@linkcode ErrnoError} for any
   * other failure (see {@linkcode pidfdOpen}) after closing what it opened.
   */
  static open(pids: readonly number[]): PidfdSet {
    const c = libc();
    const fds: number[] = [];
    const opened: number[] = [];
    const missing: number[] = [];
    try {
      for (const pid of pids) {
        try {
          fds.push(pidfdOpen(pid));
          opened.push(pid);
        } catch (error) {
          if (!(error instanceof ErrnoError) || error.errno !== Errno.ESRCH) throw error;
          missing.push(pid);
        }
      }
      const wakeFd = check("eventfd", c.eventfd(0, EFD_FLAGS));
      return new PidfdSet(opened, missing, fds, wakeFd);
    } catch (error) {
      for (const fd of fds) c.close(fd);
      throw error;
    }
  }

  /**
   * Waits on another thread until a process exits, {@linkcode wake} is
   * called, or `timeoutMs` passes (-1: no limit). Only one wait at a time.
   */
  wait(timeoutMs = -1): Promise<number> {
    if (this.#closed) return Promise.resolve(0);
    if (this.#waiting) return this.#waiting;
    this.#waiting = libc().poll_wait(this.#pollFds, BigInt(this.#fds.length + 1), timeoutMs)
      .finally(() => {
        this.#waiting = undefined;
        if (!this.#closed) libc().read(this.#wakeFd, new Uint8Array(8), 8n);
      });
    return this.#waiting;
  }

  /**
   * Polls now, on the JS thread: which pids have exited (zombies included),
   * and which have also been reaped by their parent (`POLLHUP`, Linux ≥ 6.9).
   */
  check(): { exited: number[]; reaped: number[] } {
    if (this.#closed) return { exited: [], reaped: [] };
    const fds = this.#pollFds.slice(0, this.#fds.length * POLLFD_SIZE);
    const view = new DataView(fds.buffer);
    for (;;) {
      const n = libc().poll(fds, BigInt(this.#fds.length), 0);
      if (n >= 0) break;
      if (errno() !== Errno.EINTR) throw new ErrnoError("poll", errno(), "(pidfds)");
    }
    const revents = (i: number) => view.getInt16(i * POLLFD_SIZE + 6, true);
    return {
      exited: this.pids.filter((_, i) => (revents(i) & POLLIN) !== 0),
      reaped: this.pids.filter((_, i) => (revents(i) & POLLHUP) !== 0),
    };
  }

  /**
   * From now on, wake only when `pid` is reaped (`POLLHUP`), not because it
   * has exited (`POLLIN` stays set, so it would wake every wait at once).
   */
  awaitReap(pid: number): void {
    const index = this.pids.indexOf(pid);
    if (index >= 0) this.#view.setInt16(index * POLLFD_SIZE + 4, 0, true);
  }

  /**
   * The wait status of `pid` from `PIDFD_GET_INFO` / `PIDFD_INFO_EXIT`
   * (Linux ≥ 6.15), which the kernel keeps once the process has been reaped
   * — for any caller, no privilege needed. `null` before the reap, or on
   * kernels without it.
   */
  exitStatus(pid: number): number | null {
    const index = this.pids.indexOf(pid);
    if (index < 0 || this.#closed) return null;
    const info = new Uint8Array(PIDFD_INFO_SIZE);
    const view = new DataView(info.buffer);
    view.setBigUint64(0, PIDFD_INFO_EXIT, true);
    if (libc().ioctl(this.#fds[index], PIDFD_GET_INFO, info) < 0) return null;
    if ((view.getBigUint64(0, true) & PIDFD_INFO_EXIT) === 0n) return null;
    return view.getInt32(EXIT_CODE_OFFSET, true);
  }

  /**
   * Stops polling `pid` (its exit has been handled), so a later
   * {@linkcode wait} does not return at once for it. Call it between waits.
   */
  forget(pid: number): void {
    const index = this.pids.indexOf(pid);
    if (index >= 0) this.#view.setInt32(index * POLLFD_SIZE, -1, true);
  }

  /** Wakes a pending {@linkcode wait}. */
  wake(): void {
    if (this.#closed) return;
    const one = new Uint8Array(8);
    one[0] = 1;
    libc().write(this.#wakeFd, one, 8n);
  }

  /**
   * Closes every descriptor; with a wait pending, wakes it first and closes
   * once it has returned, so the poll never sees a reused descriptor.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const release = () => {
      if (this.#closed) return;
      this.#closed = true;
      for (const fd of [...this.#fds, this.#wakeFd]) libc().close(fd);
    };
    const pending = this.#waiting;
    if (pending === undefined) {
      release();
      return Promise.resolve();
    }
    this.wake();
    return pending.then(release, release);
  }
}

/**
 * Whether this kernel keeps the exit status for pidfd holders
 * (`PIDFD_INFO_EXIT`, Linux ≥ 6.15), from `/proc/sys/kernel/osrelease`.
 *
 * @example
 * ```ts
 * import { pidfdKeepsExitStatus } from "./pidfd.ts";
 * console.log(pidfdKeepsExitStatus()); // true on 6.18
 * ```
 */
export function pidfdKeepsExitStatus(): boolean {
  const match = /^(\d+)\.(\d+)/.exec(readFileText("/proc/sys/kernel/osrelease") ?? "");
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 6 || (major === 6 && minor >= 15);
}
