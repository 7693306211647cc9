/**
 * What `/proc/PID/stat` and `/proc/PID/status` say about a process: its
 * state, its start time and — for a zombie — the wait status it left.
 * The parsers are pure; `read*` go through `ffi/proc_fs.ts`.
 *
 * @module
 */

import { readFileText, readRecordText } from "../../ffi/proc_fs.ts";

/**
 * The fields of `/proc/PID/stat` procwatch uses (see proc_pid_stat(5)).
 *
 * @example
 * ```ts
 * import { readProcStat } from "@procwatch/procwatch/proc";
 * const stat = readProcStat(1234);
 * if (stat?.state === "Z") console.log("zombie, wait status", stat.exitStatus);
 * ```
 */
export interface ProcStat {
  /** Field 1: the process id. */
  pid: number;
  /** Field 2: the name, without its parentheses. */
  comm: string;
  /** Field 3: `R`, `S`, `D`, `Z` (zombie), `T`, `t`, `X`, `I`, ... */
  state: string;
  /** Field 4: the parent's pid. */
  ppid: number;
  /** Field 7: the controlling terminal as the kernel encodes it (0: none). */
  ttyNr: number;
  /**
   * Field 20: the number of threads (`signal->nr_threads`). A zombie main
   * thread whose other threads live on (it called `pthread_exit()`) shows state
   * `Z` with more than 1 here; a process that has wholly ended shows 1.
   */
  numThreads: number;
  /** Field 22: start time in clock ticks after boot (`CLOCK_BOOTTIME`, Linux ≥ 5.5). */
  startTicks: bigint;
  /**
   * Field 52 (Linux ≥ 3.5): `task->exit_code`, the wait status of a zombie.
   * The kernel writes 0 here when the reader may not ptrace-read the process,
   * so it is only believable for root or the process's owner; `null` when absent.
   */
  exitStatus: number | null;
  /**
   * Field 38: `task->exit_signal`, -1 for a thread that is not its group's
   * leader (copy_process() with CLONE_THREAD); `null` when absent.
   */
  exitSignal: number | null;
}

/**
 * Parses the text of `/proc/PID/stat`. The name may hold spaces and `)`, so
 * the fields after it are found from the last `)`. Returns `null` for text
 * that is not a stat line.
 *
 * @example
 * ```ts
 * import { parseProcStat } from "./proc_stat.ts";
 * const line = "42 (a b) Z 1 " + "0 ".repeat(17) + "12345" + " 0".repeat(29) + " 768";
 * console.log(parseProcStat(line)?.exitStatus); // 768
 * ```
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf(" (");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open));
  if (!Number.isInteger(pid)) return null;
  // The fields after the name, one space apart (do_task_stat(), fs/proc/array.c),
  // the last one followed by a newline. Only the ones used are cut out: 8,000
  // pids of one `wait` are 8,000 lines of 52 fields (a split() made arrays of them).
  let state: string | undefined, ppid: string | undefined, ttyNr: string | undefined;
  let numThreads: string | undefined, startTicks: string | undefined;
  let exitSignal: string | undefined, exitStatus: string | undefined;
  let start = close + 2;
  let end = text.length;
  while (end > start && (text[end - 1] === "\n" || text[end - 1] === " ")) end--;
  let field = 3;
  while (start < end && field <= 52) {
    let stop = text.indexOf(" ", start);
    if (stop < 0 || stop > end) stop = end;
    switch (field) {
      case 3:
        state = text.slice(start, stop);
        break;
      case 4:
        ppid = text.slice(start, stop);
        break;
      case 7:
        ttyNr = text.slice(start, stop);
        break;
      case 20:
        numThreads = text.slice(start, stop);
        break;
      case 22:
        startTicks = text.slice(start, stop);
        break;
      case 38:
        exitSignal = text.slice(start, stop);
        break;
      case 52:
        exitStatus = text.slice(start, stop);
        break;
    }
    start = stop + 1;
    field++;
  }
  // Twenty fields after the name at least (up to the start time), as since Linux 2.6.
  if (field < 23) return null;
  return {
    pid,
    comm: text.slice(open + 2, close),
    state: state ?? "?",
    ppid: Number(ppid),
    ttyNr: Number(ttyNr),
    numThreads: Number(numThreads),
    startTicks: BigInt(startTicks ?? "0"),
    exitSignal: exitSignal === undefined ? null : Number(exitSignal),
    exitStatus: exitStatus === undefined ? null : Number(exitStatus),
  };
}

/**
 * Reads and parses `/proc/PID/stat`; `null` when the process does not exist
 * (or has been reaped).
 *
 * @example
 * ```ts
 * import { readProcStat } from "@procwatch/procwatch/proc";
 * console.log(readProcStat(1)?.state); // "S"
 * ```
 */
export function readProcStat(pid: number): ProcStat | null {
  const text = readRecordText(`/proc/${pid}/stat`, 4096);
  return text === null ? null : parseProcStat(text);
}

/**
 * The fields of `/proc/PID/status` procwatch uses.
 *
 * @example
 * ```ts
 * import { readProcStatus } from "@procwatch/procwatch/proc";
 * const status = readProcStatus(1235);
 * if (status && status.tgid !== 1235) console.log(`a thread of ${status.tgid}`);
 * ```
 */
export interface ProcStatus {
  /** `Tgid`: the process a thread id belongs to (equal to the pid for a process). */
  tgid: number;
  /** `Uid`: real, effective, saved, filesystem user ids. */
  uids: number[];
  /** `Gid`: real, effective, saved, filesystem group ids. */
  gids: number[];
}

/**
 * Parses the text of `/proc/PID/status`; `null` without a `Tgid` line.
 *
 * @example
 * ```ts
 * import { parseProcStatus } from "./proc_stat.ts";
 * console.log(parseProcStatus("Name:\tsh\nTgid:\t7\nUid:\t0\t0\t0\t0\n")); // { tgid: 7, uids: [0, 0, 0, 0] }
 * ```
 */
export function parseProcStatus(text: string): ProcStatus | null {
  const tgid = /^Tgid:\s*(\d+)$/m.exec(text);
  if (!tgid) return null;
  const ids = (name: string) => {
    const match = new RegExp(`^${name}:\\s*([\\d\\s]+)$`, "m").exec(text);
    return match ? match[1].trim().split(/\s+/).map(Number) : [];
  };
  return { tgid: Number(tgid[1]), uids: ids("Uid"), gids: ids("Gid") };
}

/**
 * Reads and parses `/proc/PID/status`; `null` when the process does not exist.
 *
 * @example
 * ```ts
 * import { readProcStatus } from "@procwatch/procwatch/proc";
 * console.log(readProcStatus(1)?.tgid); // 1
 * ```
 */
export function readProcStatus(pid: number): ProcStatus | null {
  const text = readFileText(`/proc/${pid}/status`, 8192);
  return text === null ? null : parseProcStatus(text);
}
