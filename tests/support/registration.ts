/**
 * Observing, from outside, whether a process's proc connector socket is still
 * registered as a listener — after that process has closed it or died.
 *
 * Why this way: the kernel keeps one global listener count
 * (`proc_event_num_listeners`), so "does an idle socket still receive
 * events?" answers for every listener on the machine at once, and other
 * tests run watchers in parallel. Instead we borrow the watcher's own socket
 * with `pidfd_getfd` while it is registered. The copy keeps that socket alive
 * after its owner closes it or exits, and the kernel's `cn_filter` drops every
 * message for a socket whose last request was `PROC_CN_MCAST_IGNORE`. So the
 * borrowed socket receives events afterwards if and only if this very socket
 * never sent IGNORE — whatever other listeners exist. If a test finds it still
 * registered, `withdraw()` sends the IGNORE through the copy, so a failing
 * test does not leave the kernel building events for nobody.
 *
 * @module
 */

import { borrowDescriptor } from "./ffi/borrow_fd.ts";
import { closeDescriptor, detachFilter, sendToPort } from "./ffi/netlink_raw.ts";
import { controlMessage, PROC_CN_MCAST_IGNORE } from "../../ground/cn_proc.ts";
import { drainDecoded, procConnectorDescriptors } from "./netlink.ts";

/** A borrowed copy of another process's proc connector socket. */
export interface BorrowedListener {
  /** Our descriptor for the socket. */
  fd: number;
  /** The socket's netlink port. */
  port: number;
}

/**
 * Borrows the one proc connector socket process `pid` holds (throws if it holds none or several).
 *
 * @example
 * ```ts ignore
 * import { borrowListener } from "./registration.ts";
 * const listener = borrowListener(child.pid);
 * ```
 */
export function borrowListener(pid: number): BorrowedListener {
  const sockets = procConnectorDescriptors(pid);
  if (sockets.length !== 1) {
    throw new Error(`process ${pid} holds ${sockets.length} proc connector sockets, expected 1`);
  }
  return { fd: borrowDescriptor(pid, sockets[0].fd), port: sockets[0].port };
}

/**
 * Borrows every proc connector socket process `pid` holds (a watcher with
 * `context` also has its exec-capture worker's). Throws if it holds none.
 *
 * @example
 * ```ts ignore
 * import { borrowListeners } from "./registration.ts";
 * const listeners = borrowListeners(child.pid);
 * ```
 */
export function borrowListeners(pid: number): BorrowedListener[] {
  const sockets = procConnectorDescriptors(pid);
  if (sockets.length === 0) throw new Error(`process ${pid} holds no proc connector socket`);
  return sockets.map((socket) => ({ fd: borrowDescriptor(pid, socket.fd), port: socket.port }));
}

/**
 * Whether the kernel still sends events to the borrowed socket: drops what is
 * queued, makes a process (fork, exec, exit), and looks at what arrives.
 *
 * @example
 * ```ts ignore
 * import { borrowListener, stillReceives } from "./registration.ts";
 * const listener = borrowListener(child.pid);
 * await child.status;
 * console.log(await stillReceives(listener)); // false: it sent IGNORE
 * ```
 */
export async function stillReceives(listener: BorrowedListener): Promise<boolean> {
  // A socket filter (`wait`, `watch -p`) would drop the probe's events
  // whatever the registration: take it off (the owner has finished with it).
  detachFilter(listener.fd);
  drainDecoded(listener.fd);
  const status = await new Deno.Command("true", { stdin: "null", stdout: "null", stderr: "null" })
    .output();
  if (!status.success) throw new Error("could not run `true`");
  // The kernel queues the events while `true` forks and exits; give a busy machine a moment.
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (drainDecoded(listener.fd).datagrams > 0) return true;
  }
  return false;
}

/**
 * Sends `PROC_CN_MCAST_IGNORE` through the borrowed socket: undoes a leaked registration.
 *
 * @example
 * ```ts ignore
 * import { withdraw } from "./registration.ts";
 * withdraw(listener); // the kernel forgets the leaked registration
 * ```
 */
export function withdraw(listener: BorrowedListener): void {
  sendToPort(listener.fd, 0, controlMessage(PROC_CN_MCAST_IGNORE, listener.port, 0, 0));
}

/**
 * Closes the borrowed copy, withdrawing the registration first if it is still live.
 *
 * @example
 * ```ts ignore
 * import { release } from "./registration.ts";
 * await release(listener);
 * ```
 */
export async function release(listener: BorrowedListener): Promise<void> {
  if (await stillReceives(listener)) withdraw(listener);
  closeDescriptor(listener.fd);
}
