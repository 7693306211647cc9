/**
 * Parsing the /proc files procwatch reads about a process: `stat`, `status`
 * and `cmdline` (proc(5)). Pure: bytes or text in, values out.
 *
 * @module
 */

const decoder = new TextDecoder();

/**
 * Splits `/proc/PID/cmdline` into argv. Empty arguments are kept; only the
 * terminating NUL is dropped. A process that rewrote its arguments
 * (setproctitle) may leave no terminator: the text is then one argument, or
 * split on its NULs.
 *
 * @example
 * ```ts
 * import { parseCmdline } from "@procwatch/procwatch/proc";
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
 * import { commandLine } from "@procwatch/procwatch/proc";
 * console.log(commandLine(["echo", "", "a b"])); // echo '' 'a b'
 * ```
 */
export function commandLine(argv: readonly string[]): string {
  return argv.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)
    .join(" ");
}
