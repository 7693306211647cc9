/**
 * The two libc symbol tables stay apart (test and bench FFI live outside
 * ffi/): ffi/libc.ts lists only what the product calls — every symbol it
 * lists costs a trampoline when bound and is a libc entry point the package
 * ships — and tests/support/ffi/libc.ts lists only what the tests' and the
 * benchmark's helpers call. The product never imports tests/ or bench/.
 *
 * Read from the source text: a symbol counts as called where a file calls it
 * as a method (`libc().close(`, `c.close(`; the exec-capture worker binds its
 * subset by name and calls it the same way, lib/process/exec_capture_worker.ts).
 * A name in a string does not count: "ptrace" is also an event type.
 */

import assert from "node:assert/strict";
import { LIBC_SYMBOLS } from "../ffi/libc.ts";
import { TEST_LIBC_SYMBOLS } from "./support/ffi/libc.ts";

const root = new URL("../", import.meta.url);

/** The product's source files: what `deno.json` publishes and the CLI runs. */
const PRODUCT = ["ffi/", "lib/", "ground/", "cli/", "scripts/", "mod.ts", "cli.ts"];

/** Every .ts file under `path` (a file or a folder ending in "/"), relative to the root. */
function sources(path: string): string[] {
  if (!path.endsWith("/")) return [path];
  const found: string[] = [];
  for (const entry of Deno.readDirSync(new URL(path, root))) {
    if (entry.isDirectory) found.push(...sources(`${path}${entry.name}/`));
    else if (entry.name.endsWith(".ts")) found.push(`${path}${entry.name}`);
  }
  return found;
}

/** A file's text without the symbol table declared in it (its entries name every symbol). */
function textWithoutTable(path: string): string {
  const text = Deno.readTextFileSync(new URL(path, root));
  return text.replace(
    /export const (TEST_)?LIBC_SYMBOLS = \{[\s\S]*?\} as const satisfies Deno\.ForeignLibraryInterface;/,
    "",
  );
}

/** The names in `table` that none of `texts` calls. */
function uncalled(table: Record<string, unknown>, texts: string[]): string[] {
  return Object.keys(table).filter((name) => !texts.some((text) => text.includes(`.${name}(`)));
}

Deno.test("ffi/libc.ts lists only symbols the product calls", () => {
  const texts = PRODUCT.flatMap(sources).map(textWithoutTable);
  assert.deepEqual(uncalled(LIBC_SYMBOLS, texts), []);
});

Deno.test("tests/support/ffi/libc.ts lists only symbols the tests' helpers call", () => {
  const texts = sources("tests/support/ffi/").map(textWithoutTable);
  assert.deepEqual(uncalled(TEST_LIBC_SYMBOLS, texts), []);
});

Deno.test("no product file imports from tests/ or bench/", () => {
  const offending = PRODUCT.flatMap(sources).flatMap((path) => {
    const text = Deno.readTextFileSync(new URL(path, root));
    const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]);
    return specifiers
      .filter((specifier) => specifier.startsWith("."))
      .filter((specifier) => {
        const target = new URL(specifier, new URL(path, root)).href.slice(root.href.length);
        return target.startsWith("tests/") || target.startsWith("bench/");
      })
      .map((specifier) => `${path} imports ${specifier}`);
  });
  assert.deepEqual(offending, []);
});
