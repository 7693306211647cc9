/**
 * The CLI's value parsers (cli/parse.ts): pids, event lists, seconds and
 * byte sizes; bad values are UsageErrors (one `procwatch:` line, exit 2).
 */

import assert from "node:assert/strict";
import { parseBytes, parsePid, parseSeconds } from "../cli/parse.ts";
import { parseEvents } from "../cli/parse_events.ts";
import { UsageError } from "../ground/errors.ts";

Deno.test("CLI value parsers reject bad input with usage errors", () => {
  assert.equal(parsePid("42"), 42);
  for (const bad of ["0", "-1", "abc", "1.5", ""]) assert.throws(() => parsePid(bad), UsageError);
  assert.deepEqual(parseEvents("exec, EXIT"), ["exec", "exit"]);
  assert.equal(parseEvents("all").length, 9);
  assert.throws(() => parseEvents("exec,frok"), /unknown event 'frok'/);
  assert.equal(parseSeconds("1.5"), 1.5);
  assert.throws(() => parseSeconds("soon"), UsageError);
  assert.equal(parseBytes("4M"), 4 << 20);
  assert.throws(() => parseBytes("lots"), UsageError);
});
