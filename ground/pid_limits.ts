/**
 * The kernel's bound on pids, a number every layer may check input against.
 *
 * @module
 */

/**
 * The highest pid_max a 64-bit kernel allows (`PID_MAX_LIMIT`, 4 × 1024 × 1024,
 * include/linux/threads.h): no pid can ever be above it.
 *
 * @example
 * ```ts
 * import { PID_MAX_LIMIT } from "@procwatch/procwatch/proc";
 * console.log(PID_MAX_LIMIT); // 4194304
 * ```
 */
export const PID_MAX_LIMIT = 4 * 1024 * 1024;
