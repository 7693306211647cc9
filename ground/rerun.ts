/**
 * The command line that repeats this invocation with more Deno permissions,
 * for error messages that say exactly what to run: the program that was run
 * (`Deno.mainModule`: `cli.ts`, or a script run directly), not a guess.
 *
 * @module
 */

/**
 * `deno run FLAGS MAIN ARGS`, shell-quoted. `MAIN` is relative to the
 * working directory when it lies below it, else absolute; both are exact.
 *
 * @example
 * ```ts
 * import { rerunCommand } from "./rerun.ts";
 * console.log(rerunCommand(["--allow-ffi"], ["^nc$"])); // deno run --allow-ffi /path/main.ts '^nc$'
 * ```
 */
export function rerunCommand(
  flags: readonly string[],
  args: readonly string[] = Deno.args,
): string {
  return ["deno", "run", ...flags, mainModulePath(), ...args].map(shellQuote).join(" ");
}

/**
 * The path of the program that was run (`Deno.mainModule`), relative to the
 * working directory when it lies below it.
 *
 * @example
 * ```ts
 * import { mainModulePath } from "./rerun.ts";
 * console.log(mainModulePath()); // e.g. "scripts/new_processes.ts"
 * ```
 */
export function mainModulePath(): string {
  let main = Deno.mainModule;
  if (!main.startsWith("file://")) return main;
  main = decodeURIComponent(main.slice("file://".length));
  try {
    // Deno 2 gives the working directory without read access (no prompt).
    const cwd = Deno.cwd();
    if (main.startsWith(`${cwd}/`)) main = main.slice(cwd.length + 1);
  } catch {
    // The absolute path is just as exact.
  }
  return main;
}

/**
 * Quotes a word for a POSIX shell when it needs it.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./rerun.ts";
 * console.log(shellQuote("it's")); // 'it'\''s'
 * ```
 */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
