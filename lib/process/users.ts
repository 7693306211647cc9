/**
 * User names and ids from `/etc/passwd`, read through libc (Deno's file API
 * would need `--allow-read`).
 *
 * @module
 */

import { readFileText } from "../../ffi/proc_fs.ts";
import { UsageError } from "../../ground/errors.ts";

/**
 * Parses passwd(5) text into a uid → name map (the first name of a uid wins).
 *
 * @example
 * ```ts
 * import { parsePasswd } from "./users.ts";
 * console.log(parsePasswd("root:x:0:0::/root:/bin/sh\n").get(0)); // "root"
 * ```
 */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 3 || !/^\d+$/.test(fields[2])) continue;
    const uid = Number(fields[2]);
    if (!users.has(uid)) users.set(uid, fields[0]);
  }
  return users;
}

/**
 * Looks user names up in `/etc/passwd`, read once.
 *
 * @example
 * ```ts
 * import { UserNames } from "@procwatch/procwatch/proc";
 * const users = new UserNames();
 * console.log(users.name(0)); // "root"
 * console.log(users.resolve("root")); // 0
 * ```
 */
export class UserNames {
  #byUid: Map<number, string> | undefined;
  readonly #passwd: string | undefined;

  /** Uses `passwd` text when given, else reads `/etc/passwd` on first use (unreadable: no names). */
  constructor(passwd?: string) {
    this.#passwd = passwd;
  }

  get #users(): Map<number, string> {
    this.#byUid ??= parsePasswd(this.#passwd ?? readFileText("/etc/passwd") ?? "");
    return this.#byUid;
  }

  /** The name of `uid`, or `null` when it has none. */
  name(uid: number): string | null {
    return this.#users.get(uid) ?? null;
  }

  /**
   * A user given by name or numeric id, as a uid. Throws {@linkcode UsageError}
   * for an unknown name.
   *
   * @throws {UsageError} (code `"USAGE"`) for an unknown name or an invalid uid.
   */
  resolve(user: string | number): number {
    if (typeof user === "number") {
      if (!Number.isInteger(user) || user < 0 || user > 0xffffffff) {
        throw new UsageError(`invalid uid: ${user}`);
      }
      return user;
    }
    const text = user.trim();
    if (/^\d+$/.test(text)) return this.resolve(Number(text));
    for (const [uid, name] of this.#users) if (name === text) return uid;
    throw new UsageError(`unknown user '${user}'`);
  }
}
