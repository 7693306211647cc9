/**
 * The libc symbol table of the tests' and the benchmark's own FFI helpers
 * (clone.ts, sandbox.ts, netlink_raw.ts, ptrace.ts, borrow_fd.ts beside it),
 * and errno read through it.
 *
 * procwatch's own table (ffi/libc.ts) holds only what the product calls. What
 * only tests and the load generator need — `clone`, `ptrace`, `pidfd_getfd`,
 * `seccomp`, `execve`, raw `sendto`, `dlsym` for the `_exit`/`pause`
 * addresses — lives here, so the product neither carries nor binds it.
 *
 * The whole table is opened by one `Deno.dlopen` on first use (~0.3 ms per
 * symbol, a few ms in all: tests do not count start-up time, and one library
 * is one resource to pre-open before a sanitized test, see
 * tests/resources_test.ts). Every call here is synchronous, on the calling
 * thread, so {@linkcode errno} read right after a failed call is that call's.
 *
 * @module
 */

/** The symbols the helpers call, each with its C signature. */
export const TEST_LIBC_SYMBOLS = {
  /** int socket(int domain, int type, int protocol); */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen); */
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  /** ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *fromlen); */
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  /** int close(int fd); */
  close: { parameters: ["i32"], result: "i32" },
  /** int setsockopt(int fd, int level, int name, const void *val, socklen_t len); */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int execve(const char *path, char *const argv[], char *const envp[]); */
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  /** int kill(pid_t pid, int sig); */
  kill: { parameters: ["i32", "i32"], result: "i32" },
  /** pid_t waitpid(pid_t pid, int *status, int options); */
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** long ptrace(enum __ptrace_request op, pid_t pid, void *addr, void *data); */
  ptrace: { parameters: ["i64", "i32", "pointer", "pointer"], result: "i64" },
  /** long syscall(long number, ...); used with two long arguments (pidfd_open). */
  syscall2: { name: "syscall", parameters: ["i64", "i64", "i64"], result: "i64" },
  /** long syscall(long number, ...); used with three long arguments (pidfd_getfd, seccomp). */
  syscall3: { name: "syscall", parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  /** void *dlsym(void *handle, const char *symbol); handle NULL = RTLD_DEFAULT. */
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  /** int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...); used without the optional tids/tls. */
  clone: { parameters: ["pointer", "pointer", "i32", "pointer"], result: "i32" },
  /** int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[], char *const envp[]); */
  posix_spawn: {
    parameters: ["buffer", "buffer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  /** int setpgid(pid_t pid, pid_t pgid); */
  setpgid: { parameters: ["i32", "i32"], result: "i32" },
  /** int sched_setaffinity(pid_t pid, size_t cpusetsize, const cpu_set_t *mask); */
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  /** int sched_getaffinity(pid_t pid, size_t cpusetsize, cpu_set_t *mask); */
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  /** int *__errno_location(void); glibc's errno of the calling thread. */
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type TestLibcSymbols = Deno.DynamicLibrary<typeof TEST_LIBC_SYMBOLS>["symbols"];
let library: TestLibcSymbols | undefined;

/**
 * The helpers' libc symbols, all opened by one `Deno.dlopen` on first use
 * (per thread: a Worker has its own module instance). Call it once before a
 * test run under Deno's resource sanitizer so the library is not counted as
 * the test's.
 *
 * @example
 * ```ts ignore
 * import { testLibc } from "./libc.ts";
 * testLibc(); // opened now, not inside the sanitized test
 * ```
 */
export function testLibc(): TestLibcSymbols {
  library ??= Deno.dlopen("libc.so.6", TEST_LIBC_SYMBOLS).symbols;
  return library;
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * errno of the calling thread, read right after a synchronous call of
 * {@linkcode testLibc} that failed. glibc keeps errno per thread and a
 * thread's location never moves, so the view is made once.
 *
 * @example
 * ```ts ignore
 * import { errno, testLibc } from "./libc.ts";
 * if (testLibc().kill(1 << 30, 0) < 0) console.log(errno()); // 3 (ESRCH)
 * ```
 */
export function errno(): number {
  if (errnoView === undefined) {
    const location = testLibc().__errno_location();
    if (location === null) return 0;
    errnoView = new Deno.UnsafePointerView(location);
  }
  return errnoView.getInt32();
}
