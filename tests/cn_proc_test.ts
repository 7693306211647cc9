/**
 * The control message procwatch sends the proc connector (ground/cn_proc.ts
 * controlMessage): `struct cn_msg` with the classic 4-byte `enum
 * proc_cn_mcast_op`, or Linux 6.6's `struct proc_input` with an event mask.
 */

import assert from "node:assert/strict";
import { controlMessage } from "../ground/cn_proc.ts";

Deno.test("control messages: classic 4-byte op and 6.6 proc_input", () => {
  const classic = controlMessage(1, 77, 5, 6);
  assert.equal(classic.length, 40);
  const view = new DataView(classic.buffer);
  assert.equal(view.getUint32(0, true), 40);
  assert.equal(view.getUint16(32, true), 4);
  assert.equal(view.getUint32(36, true), 1);
  const filtered = controlMessage(1, 77, 5, 6, 0x80000000);
  assert.equal(filtered.length, 44);
  assert.equal(new DataView(filtered.buffer).getUint32(40, true), 0x80000000);
});
