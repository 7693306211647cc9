/**
 * A process's namespaces: the inode numbers /proc/PID/ns/* link to
 * (`readlink` gives `net:[4026531840]`; the number is the namespace's
 * `ns_common.inum`, equal for every process sharing it), each marked whether
 * it is the host's — the one pid 1 is in, read once. Where pid 1's links
 * cannot be read (`hidepid`, or a sandbox whose pid 1 refuses
 * ptrace-read access, which readlink on /proc/PID/ns needs: proc_ns_get_link()
 * checks PTRACE_MODE_READ), procwatch's own namespaces stand for the host's.
 *
 * @module
 */

import {
  NAMESPACE_KINDS,
  type NamespaceInfo,
  type NamespaceKind,
  type Namespaces,
} from "../events/place.ts";
export { NAMESPACE_KINDS, type NamespaceInfo, type NamespaceKind, type Namespaces };

import { readLink } from "../../ffi/proc_fs.ts";

/**
 * Inode numbers in {@linkcode NAMESPACE_KINDS} order, 0 where unknown: how
 * the process table and the exec-capture ring keep them (no objects per record).
 *
 * @example
 * ```ts
 * import { NAMESPACE_KINDS, type NamespaceInodes } from "@procwatch/procwatch/proc";
 * const inodes: NamespaceInodes = new Uint32Array(NAMESPACE_KINDS.length);
 * console.log(inodes[NAMESPACE_KINDS.indexOf("net")]); // 0: unknown
 * ```
 */
export type NamespaceInodes = Uint32Array;

/**
 * The inode number of a namespace link's text (`"pid:[4026531836]"` → 4026531836), or 0.
 *
 * @example
 * ```ts
 * import { namespaceInode } from "./namespaces.ts";
 * console.log(namespaceInode("net:[4026531840]")); // 4026531840
 * ```
 */
export function namespaceInode(link: string | null): number {
  if (link === null) return 0;
  const open = link.indexOf(":[");
  if (open < 0 || !link.endsWith("]")) return 0;
  const value = Number(link.slice(open + 2, -1));
  return Number.isInteger(value) && value > 0 && value <= 0xffffffff ? value : 0;
}

/**
 * Reads the namespaces of `pid`; `null` when none could be read (gone, a
 * zombie: exit_task_namespaces() has dropped them).
 *
 * @example
 * ```ts
 * import { readNamespaceInodes } from "./namespaces.ts";
 * console.log(readNamespaceInodes(1));
 * ```
 */
export function readNamespaceInodes(pid: number): NamespaceInodes | null {
  const inodes = new Uint32Array(NAMESPACE_KINDS.length);
  let any = false;
  for (let i = 0; i < NAMESPACE_KINDS.length; i++) {
    inodes[i] = namespaceInode(readLink(`/proc/${pid}/ns/${NAMESPACE_KINDS[i]}`));
    if (inodes[i] !== 0) any = true;
  }
  return any ? inodes : null;
}

let hostInodes: NamespaceInodes | null | undefined;

/**
 * Pid 1's namespaces, read once; where a link of pid 1 cannot be read,
 * procwatch's own of that kind. `null` when neither can be read.
 */
export function hostNamespaceInodes(): NamespaceInodes | null {
  if (hostInodes === undefined) {
    const init = readNamespaceInodes(1);
    const self = readNamespaceInodes(Deno.pid);
    if (init === null || self === null) hostInodes = init ?? self;
    else {
      for (let i = 0; i < init.length; i++) if (init[i] === 0) init[i] = self[i];
      hostInodes = init;
    }
  }
  return hostInodes;
}

/**
 * The API form of kept inode numbers, each compared with `host`'s.
 *
 * @example
 * ```ts
 * import { describeNamespaces } from "./namespaces.ts";
 * const host = Uint32Array.of(1, 2, 3, 4, 5, 6, 7);
 * console.log(describeNamespaces(Uint32Array.of(1, 2, 9, 4, 5, 6, 7), host).net);
 * // { inode: 9, host: false }
 * ```
 */
export function describeNamespaces(
  inodes: NamespaceInodes,
  host: NamespaceInodes | null,
): Namespaces {
  const out = {} as Namespaces;
  for (let i = 0; i < NAMESPACE_KINDS.length; i++) {
    out[NAMESPACE_KINDS[i]] = inodes[i] === 0
      ? null
      : { inode: inodes[i], host: host !== null && host[i] === inodes[i] };
  }
  return out;
}
