/**
 * Parsing the /proc files procwatch reads about a process: `stat`, `status`
 * and `cmdline` (proc(5)). Pure: bytes or text in, values out.
 *
 * @module
 */

/** The fields of `/proc/PID/stat` procwatch uses. */
export interface StatFields {
  /** The process name (`comm`), up to 15 bytes. */
  comm: string;
  /** One-letter state (`R`, `S`, `Z`, ...). */
  state: string;
  ppid: number;
  /** Controlling terminal as the kernel encodes it (0: none). */
  ttyNr: number;
  /** Start time in clock ticks after boot. */
  startTicks: number;
}

/**
 * Parses `/proc/PID/stat`. The name sits in parentheses and may itself hold
 * spaces and `)`, so the fields are counted from the last `)`.
 *
 * @example
 * ```ts
 * import { parseStat } from "./proc_parse.ts";
 * const stat = parseStat("42 (a) b) S 1 42 42 34817 42 0 0 0 0 0 0 0 0 0 20 0 1 0 300 0");
 * console.log(stat?.comm, stat?.ppid); // "a) b" 1
 * ```
 */
export function parseStat(text: string): StatFields | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const fields = text.slice(close + 2).split(" ");
  // After the name: state(0) ppid(1) pgrp(2) session(3) tty_nr(4) ... starttime(19).
  if (fields.length < 20) return null;
  return {
    comm: text.slice(open + 1, close),
    state: fields[0],
    ppid: Number(fields[1]),
    ttyNr: Number(fields[4]),
    startTicks: Number(fields[19]),
  };
}

/** Real and effective ids from `/proc/PID/status`. */
export interface StatusIds {
  ruid: number;
  euid: number;
  rgid: number;
  egid: number;
}

/**
 * Parses the `Uid:` and `Gid:` lines of `/proc/PID/status`.
 *
 * @example
 * ```ts
 * import { parseStatusIds } from "./proc_parse.ts";
 * console.log(parseStatusIds("Name:\tx\nUid:\t1\t2\t2\t2\nGid:\t3\t4\t4\t4\n"));
 * // { ruid: 1, euid: 2, rgid: 3, egid: 4 }
 * ```
 */
export function parseStatusIds(text: string): StatusIds | null {
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  const gid = /^Gid:\s+(\d+)\s+(\d+)/m.exec(text);
  if (!uid || !gid) return null;
  return { ruid: Number(uid[1]), euid: Number(uid[2]), rgid: Number(gid[1]), egid: Number(gid[2]) };
}

const decoder = new TextDecoder();

/**
 * Splits `/proc/PID/cmdline` into argv. Empty arguments are kept; only the
 * terminating NUL is dropped. A process that rewrote its arguments
 * (setproctitle) may leave no terminator: the text is then one argument, or
 * split on its NULs.
 *
 * @example
 * ```ts
 * import { parseCmdline } from "./proc_parse.ts";
 * const bytes = new TextEncoder().encode("echo\0\0x\0");
 * console.log(parseCmdline(bytes)); // ["echo", "", "x"]
 * ```
 */
export function parseCmdline(bytes: Uint8Array): string[] {
  if (bytes.length === 0) return [];
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  return decoder.decode(bytes.subarray(0, end)).split("\0");
}

/**
 * The terminal name of a `tty_nr` from `/proc/PID/stat` (devices.txt major
 * numbers): `pts/3`, `tty1`, `ttyS0`; `null` without a terminal.
 *
 * @example
 * ```ts
 * import { ttyName } from "./proc_parse.ts";
 * console.log(ttyName(34819)); // "pts/3"
 * ```
 */
export function ttyName(ttyNr: number): string | null {
  if (ttyNr === 0) return null;
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return minor < 64 ? `tty${minor}` : `ttyS${minor - 64}`;
  if (major === 5 && minor === 1) return "console";
  return `${major}:${minor}`;
}

/**
 * A command line for people: arguments joined by spaces, each quoted when it
 * is empty or holds spaces or quotes, so `a ""` and `a` stay distinct.
 *
 * @example
 * ```ts
 * import { commandLine } from "./proc_parse.ts";
 * console.log(commandLine(["echo", "", "a b"])); // echo '' 'a b'
 * ```
 */
export function commandLine(argv: readonly string[]): string {
  return argv.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)
    .join(" ");
}
