/**
 * Fixture: runs `deno ARGS...` under a seccomp filter that makes
 * `socket(AF_NETLINK, ...)` fail with EPERM — a sandbox that forbids netlink.
 *
 * @module
 */

import { Errno } from "../../ffi/libc.ts";
import { denySocketFamily, replaceProcess } from "./ffi/sandbox.ts";
import { AF_NETLINK } from "../../ground/cn_proc.ts";

denySocketFamily(AF_NETLINK, Errno.EPERM);
replaceProcess(Deno.execPath(), ["deno", ...Deno.args], Deno.env.toObject());
