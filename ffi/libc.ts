/**
 * The one libc symbol table of procwatch, and errno handling.
 *
 * Every other module in `ffi/` calls through {@linkcode libc}; nothing else in
 * the product touches pointers. The table holds only symbols the product
 * calls: what only tests and the benchmark's load generator need (clone,
 * ptrace, pidfd_getfd, seccomp, execve, raw sendto) is in their own table,
 * tests/support/ffi/libc.ts. Synchronous calls run on the JS thread, so errno can
 * be read right after them with {@linkcode errno}. Calls marked `nonblocking`
 * run on another thread: their errno is lost, so they are only used to wait.
 *
 * @module
 */

import { ProcwatchError } from "../ground/errors.ts";
import { rerunCommand } from "../ground/rerun.ts";

/** libc's symbols the product calls, each with its C signature. */
export const LIBC_SYMBOLS = {
  /** int tgkill(pid_t tgid, pid_t tid, int sig); (glibc ≥ 2.30) */
  tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int socket(int domain, int type, int protocol); */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int fd, const struct sockaddr *addr, socklen_t len); */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int getsockname(int fd, struct sockaddr *addr, socklen_t *len); */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** ssize_t send(int fd, const void *buf, size_t len, int flags); */
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *fromlen); */
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  /** int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout); */
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  /** int setsockopt(int fd, int level, int name, const void *val, socklen_t len); */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int getsockopt(int fd, int level, int name, void *val, socklen_t *len); */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); on another thread, to wait only. */
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); on the JS thread. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** int open(const char *path, int flags, mode_t mode); */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** off_t lseek(int fd, off_t offset, int whence); */
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  /** ssize_t readlink(const char *path, char *buf, size_t size); */
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  /** int ioctl(int fd, unsigned long request, void *arg); (variadic in C; used with one pointer) */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** DIR *opendir(const char *name); */
  opendir: { parameters: ["buffer"], result: "pointer" },
  /** struct dirent *readdir(DIR *dirp); */
  readdir: { parameters: ["pointer"], result: "pointer" },
  /** int closedir(DIR *dirp); */
  closedir: { parameters: ["pointer"], result: "i32" },
  /** int close(int fd); */
  close: { parameters: ["i32"], result: "i32" },
  /** void _exit(int status); ends the process at once: no atexit handlers, no runtime teardown. */
  _exit: { parameters: ["i32"], result: "void" },
  /** int kill(pid_t pid, int sig); */
  kill: { parameters: ["i32", "i32"], result: "i32" },
  /** long syscall(long number, ...); used with two long arguments (pidfd_open). */
  syscall2: { name: "syscall", parameters: ["i64", "i64", "i64"], result: "i64" },
  /** int clock_gettime(clockid_t clk, struct timespec *tp); */
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  /** pid_t gettid(void); the calling thread's id. */
  gettid: { parameters: [], result: "i32" },
  /** uid_t geteuid(void); */
  geteuid: { parameters: [], result: "u32" },
  /** int setpriority(int which, id_t who, int prio); with PRIO_PROCESS, `who` is a thread id. */
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  /** int sched_setscheduler(pid_t pid, int policy, const struct sched_param *param); per thread. */
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  /** long sysconf(int name); */
  sysconf: { parameters: ["i32"], result: "i64" },
  /** int *__errno_location(void); glibc's per-thread errno. */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum); */
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Raised when procwatch runs without `--allow-ffi`. A {@linkcode ProcwatchError}
 * with code `"DENO_PERMISSION"`; its message names the program that was run
 * (a script run directly, or `cli.ts`) in the command to use.
 *
 * @example
 * ```ts
 * import { FfiPermissionError, watch } from "@procwatch/procwatch";
 * try {
 *   watch();
 * } catch (error) {
 *   if (error instanceof FfiPermissionError) console.error(error.message);
 * }
 * ```
 */
export class FfiPermissionError extends ProcwatchError {
  /** Creates the error. */
  constructor(cause?: unknown) {
    super(
      `needs FFI access to talk to the kernel; run it as: ${rerunCommand(["--allow-ffi"])}`,
      "DENO_PERMISSION",
      { cause },
    );
    this.name = "FfiPermissionError";
  }
}

type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];
let library: LibcSymbols | undefined;

/**
 * libc's symbols, opened on first use. Throws {@linkcode FfiPermissionError} without `--allow-ffi`.
 * Each symbol is bound on its first use: Deno.dlopen costs ~0.3 ms per symbol
 * (it builds a call trampoline for each), ~13 ms for all of them, which
 * `wait`'s start-up would pay for the few symbols it calls.
 */
export function libc(): LibcSymbols {
  if (library === undefined) {
    let exit: LibcSymbols["_exit"];
    try {
      // The permission check, at once; it binds `_exit` too: `wait` calls it
      // (exitNow) the moment it returns, where binding it (0.25–0.3 ms,
      // measured with performance.now()) would come between a death and the return.
      exit = Deno.dlopen("libc.so.6", { _exit: LIBC_SYMBOLS._exit }).symbols._exit;
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw new FfiPermissionError(error);
      }
      throw error;
    }
    const lazy = { _exit: exit } as Record<string, unknown>;
    for (const name of Object.keys(LIBC_SYMBOLS) as (keyof typeof LIBC_SYMBOLS)[]) {
      if (name === "_exit") continue;
      Object.defineProperty(lazy, name, {
        configurable: true,
        enumerable: true,
        get() {
          const symbol = Deno.dlopen("libc.so.6", { [name]: LIBC_SYMBOLS[name] }).symbols[name];
          Object.defineProperty(lazy, name, { value: symbol, enumerable: true });
          return symbol;
        },
      });
    }
    library = lazy as LibcSymbols;
  }
  return library;
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * errno of the JS thread. Read it right after a synchronous call that failed:
 * glibc keeps errno per thread, and the JS thread's location never moves.
 */
export function errno(): number {
  if (errnoView === undefined) {
    const location = libc().__errno_location();
    if (location === null) return 0;
    errnoView = new Deno.UnsafePointerView(location);
  }
  return errnoView.getInt32();
}

/** Linux errno values procwatch reacts to (asm-generic/errno-base.h, errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  EMFILE: 24,
  ENOSYS: 38,
  EPROTONOSUPPORT: 93,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  ECONNREFUSED: 111,
} as const;

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Errno).map(([name, value]) => [value, name]),
);

/** The symbolic name of an errno value, e.g. `"EPERM"`, or `"E<number>"`. */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `E${code}`;
}

/**
 * A failed libc call: a {@linkcode ProcwatchError} with code `"SYSTEM"` that
 * carries the call, errno and its symbolic name.
 *
 * @example
 * ```ts
 * import { ErrnoError, watch } from "@procwatch/procwatch";
 * try {
 *   using watcher = watch();
 *   for await (const event of watcher) console.log(event.type);
 * } catch (error) {
 *   if (error instanceof ErrnoError) console.error(`${error.syscall} failed: ${error.errnoName}`);
 * }
 * ```
 */
export class ErrnoError extends ProcwatchError {
  /** The errno value. */
  readonly errno: number;
  /** The errno name, e.g. `"ECONNREFUSED"`. */
  readonly errnoName: string;
  /** The libc call that failed. */
  readonly syscall: string;

  /** Creates the error from a call name and errno. */
  constructor(syscall: string, code: number, detail?: string) {
    const text = strerror(code);
    super(`${syscall}${detail ? ` ${detail}` : ""}: ${text} (${errnoName(code)})`, "SYSTEM");
    this.name = "ErrnoError";
    this.errno = code;
    this.errnoName = errnoName(code);
    this.syscall = syscall;
  }
}

/** libc's message for an errno value. */
export function strerror(code: number): string {
  const pointer = libc().strerror(code);
  return pointer === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(pointer);
}

/** Throws an {@linkcode ErrnoError} for the current errno when `result` is negative. */
export function check(syscall: string, result: number | bigint, detail?: string): number {
  if (result < 0) throw new ErrnoError(syscall, errno(), detail);
  return Number(result);
}

/** A NUL-terminated C string for a `buffer` parameter. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  // One encoder for all: making a TextEncoder costs more than the encoding.
  const out = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, out);
  return out.subarray(0, written + 1);
}

const encoder = new TextEncoder();
