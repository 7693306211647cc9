/**
 * Fixture: sends a forged proc connector exit message for pid `Deno.args[1]`
 * to netlink port `Deno.args[0]`, and prints `sent` or the errno's name.
 * Run it as an unprivileged user to see the kernel refuse the unicast.
 *
 * @module
 */

import { errnoName } from "../../ffi/libc.ts";
import { closeDescriptor, openConnectorSender, sendToPort } from "./ffi/netlink_raw.ts";
import { forgedExitMessage } from "./netlink.ts";

const [port, pid] = Deno.args.map(Number);
const fd = openConnectorSender();
const result = sendToPort(fd, port, forgedExitMessage(pid, 3));
closeDescriptor(fd);
console.log(result === 0 ? "sent" : errnoName(result));
