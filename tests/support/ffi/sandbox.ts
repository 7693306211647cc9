/**
 * A seccomp sandbox for tests: make `socket()` of one address family fail
 * with a chosen errno, as a container profile or an LSM would, then replace
 * this process with another program that inherits the filter. This is how
 * tests reach procwatch's "permission denied" path on kernels that let
 * anyone listen to proc events.
 *
 * @module
 */

import { cString, ErrnoError } from "../../../ffi/libc.ts";
import { errno, testLibc } from "./libc.ts";

/** `__NR_seccomp` on x86_64 (arch/x86/entry/syscalls/syscall_64.tbl). */
const SYS_SECCOMP = 317n;
/** `__NR_socket` on x86_64. */
const SYS_SOCKET = 41;
/** `AUDIT_ARCH_X86_64` (include/uapi/linux/audit.h). */
const AUDIT_ARCH_X86_64 = 0xc000003e;
/** `SECCOMP_SET_MODE_FILTER`, `SECCOMP_FILTER_FLAG_TSYNC` (include/uapi/linux/seccomp.h). */
const SECCOMP_SET_MODE_FILTER = 1n;
const SECCOMP_FILTER_FLAG_TSYNC = 1n;
/** `SECCOMP_RET_ALLOW`, `SECCOMP_RET_ERRNO`. */
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
/** Classic BPF opcodes (include/uapi/linux/bpf_common.h): LD|W|ABS, JMP|JEQ|K, RET|K. */
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const RET_K = 0x06;
/** Offsets in `struct seccomp_data`: nr, arch, args[0] (low half on little endian). */
const DATA_NR = 0;
const DATA_ARCH = 4;
const DATA_ARG0 = 16;

/**
 * Installs, on every thread of this process, a seccomp filter under which
 * `socket(family, ...)` fails with `errnoValue`; all else is allowed. The
 * filter is inherited by children and kept across `execve`. Needs root (or
 * no_new_privs). x86_64 only; throws {@linkcode ErrnoError} on failure.
 *
 * @example
 * ```ts ignore
 * import { denySocketFamily } from "./sandbox.ts";
 * denySocketFamily(16, 1); // AF_NETLINK sockets now fail with EPERM
 * ```
 */
export function denySocketFamily(family: number, errnoValue: number): void {
  const program: [number, number, number, number][] = [
    [LD_W_ABS, 0, 0, DATA_ARCH],
    [JEQ_K, 1, 0, AUDIT_ARCH_X86_64],
    [RET_K, 0, 0, RET_ALLOW],
    [LD_W_ABS, 0, 0, DATA_NR],
    [JEQ_K, 0, 3, SYS_SOCKET],
    [LD_W_ABS, 0, 0, DATA_ARG0],
    [JEQ_K, 0, 1, family],
    [RET_K, 0, 0, (RET_ERRNO | (errnoValue & 0xffff)) >>> 0],
    [RET_K, 0, 0, RET_ALLOW],
  ];
  // struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }
  const filter = new Uint8Array(program.length * 8);
  const view = new DataView(filter.buffer);
  program.forEach(([code, jt, jf, k], i) => {
    view.setUint16(i * 8, code, true);
    view.setUint8(i * 8 + 2, jt);
    view.setUint8(i * 8 + 3, jf);
    view.setUint32(i * 8 + 4, k >>> 0, true);
  });
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
  const fprog = new Uint8Array(16);
  const fview = new DataView(fprog.buffer);
  fview.setUint16(0, program.length, true);
  fview.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(filter))), true);
  const result = testLibc().syscall3(
    SYS_SECCOMP,
    SECCOMP_SET_MODE_FILTER,
    SECCOMP_FILTER_FLAG_TSYNC,
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(fprog))),
  );
  if (result !== 0n) throw new ErrnoError("seccomp", errno(), "(SECCOMP_SET_MODE_FILTER)");
}

/**
 * Replaces this process with `path` run with `args` (argv[0] included) and
 * `env`. Returns only on failure, by throwing {@linkcode ErrnoError}.
 *
 * @example
 * ```ts ignore
 * import { replaceProcess } from "./sandbox.ts";
 * replaceProcess("/bin/true", ["true"], {});
 * ```
 */
export function replaceProcess(path: string, args: string[], env: Record<string, string>): never {
  const keep: Uint8Array[] = [];
  const pointerArray = (items: string[]) => {
    const array = new BigUint64Array(items.length + 1);
    items.forEach((item, i) => {
      const bytes = cString(item);
      keep.push(bytes);
      array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    });
    return new Uint8Array(array.buffer);
  };
  const argv = pointerArray(args);
  const envp = pointerArray(Object.entries(env).map(([key, value]) => `${key}=${value}`));
  testLibc().execve(cString(path), argv, envp);
  throw new ErrnoError("execve", errno(), path);
}
