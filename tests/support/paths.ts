/**
 * File URLs and root-relative paths for tests that look at the tree itself.
 */

/** The path of a `file://` URL. */
export function fromFileUrl(url: URL | string): string {
  return decodeURIComponent(new URL(url).pathname);
}

/** `specifier` relative to `root` when it is a file below it, else null. */
export function relativeTo(root: URL, specifier: string): string | null {
  if (!specifier.startsWith(root.href)) return null;
  return decodeURIComponent(specifier.slice(root.href.length));
}
