/**
 * User names and ids from /etc/passwd text (lib/process/users.ts).
 */

import assert from "node:assert/strict";
import { UsageError } from "../ground/errors.ts";
import { parsePasswd, UserNames } from "../lib/process/users.ts";

Deno.test("users: names, numeric ids, unknown names are a UsageError", () => {
  const users = new UserNames("root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n#bad\n");
  assert.equal(users.name(1000), "alice");
  assert.equal(users.name(7), null);
  assert.equal(users.resolve("alice"), 1000);
  assert.equal(users.resolve("1234"), 1234);
  assert.equal(users.resolve(0), 0);
  assert.throws(() => users.resolve("mallory"), UsageError);
  assert.equal(parsePasswd("a:x:1:1\na2:x:1:1\n").get(1), "a", "first name of a uid wins");
});
