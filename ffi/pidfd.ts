/**
 * Process file descriptors (`pidfd_open(2)`, Linux ≥ 5.3): a descriptor that
 * becomes readable when a process has exited. Waiting this way needs no
 * privilege and works for any process, child or not — but it says nothing
 * about how the process ended.
 *
 * @module
 */

import { check, Errno, errno, ErrnoError, libc } from "./libc.ts";

/** `__NR_pidfd_open`: the same number on every architecture (include/uapi/asm-generic/unistd.h). */
const SYS_PIDFD_OPEN = 434n;
/** `POLLIN` (include/uapi/asm-generic/poll.h). */
const POLLIN = 0x1;
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
 * ```ts ignore
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
 * ```ts ignore
 * import { PidfdSet } from "./pidfd.ts";
 * const set = PidfdSet.open([1234, 5678]);
 * await set.wait();
 * console.log(set.exited()); // e.g. [1234]
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

  /** The pids whose process has exited (zombies included), polled now on the JS thread. */
  exited(): number[] {
    if (this.#closed) return [];
    const fds = this.#pollFds.slice(0, this.#fds.length * POLLFD_SIZE);
    const view = new DataView(fds.buffer);
    for (;;) {
      const n = libc().poll(fds, BigInt(this.#fds.length), 0);
      if (n >= 0) break;
      if (errno() !== Errno.EINTR) throw new ErrnoError("poll", errno(), "(pidfds)");
    }
    return this.pids.filter((_, i) => (view.getInt16(i * POLLFD_SIZE + 6, true) & POLLIN) !== 0);
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
