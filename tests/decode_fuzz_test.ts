/**
 * The decoder under fuzzing. Over a million datagrams —
 * valid messages mixed with truncated, oversized and length-inconsistent ones
 * (`nlmsg_len` and `cn_msg.len` lying), several messages per datagram, and
 * plain random bytes. No exception may escape `decodeDatagram`, every bad
 * message must come out as exactly one `malformed` entry, and every valid
 * message before it (or after a bad one whose framing still holds) must decode
 * to the event that was encoded. A seeded PRNG makes any failure reproducible:
 * the message names the seed and the iteration.
 */

import assert from "node:assert/strict";
import { decodeDatagram, type DecodedMessage } from "../lib/connector/decode.ts";
import {
  CN_IDX_PROC,
  CN_VAL_PROC,
  NLMSG_DONE,
  NLMSG_NOOP,
  PROC_EVENT_HEAD,
  ProcEventWhat,
} from "../ground/cn_proc.ts";

/** mulberry32: small, fast, and good enough to pick cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KNOWN: { what: number; type: string; required: number }[] = [
  { what: ProcEventWhat.FORK, type: "fork", required: PROC_EVENT_HEAD + 16 },
  { what: ProcEventWhat.EXEC, type: "exec", required: PROC_EVENT_HEAD + 8 },
  { what: ProcEventWhat.UID, type: "uid", required: PROC_EVENT_HEAD + 16 },
  { what: ProcEventWhat.GID, type: "gid", required: PROC_EVENT_HEAD + 16 },
  { what: ProcEventWhat.SID, type: "sid", required: PROC_EVENT_HEAD + 8 },
  { what: ProcEventWhat.PTRACE, type: "ptrace", required: PROC_EVENT_HEAD + 16 },
  { what: ProcEventWhat.COMM, type: "comm", required: PROC_EVENT_HEAD + 24 },
  { what: ProcEventWhat.COREDUMP, type: "coredump", required: PROC_EVENT_HEAD + 8 },
  { what: ProcEventWhat.EXIT, type: "exit", required: PROC_EVENT_HEAD + 16 },
];

/** What the oracle expects one message to decode to. */
type Expected =
  | { kind: "event"; type: string; marker: number }
  | { kind: "ack"; ack: number }
  | { kind: "malformed" };

const FULL_DATA = PROC_EVENT_HEAD + 24; // struct proc_event with the largest union member
const FULL_MESSAGE = 16 + 20 + FULL_DATA;

class Builder {
  readonly bytes = new Uint8Array(4096);
  readonly view = new DataView(this.bytes.buffer);
  length = 0;
  readonly expected: Expected[] = [];
  constructor(readonly random: () => number) {}

  int(limit: number): number {
    return Math.floor(this.random() * limit);
  }

  /** Room for a message of `length` bytes plus its alignment padding, filled with noise. */
  #slot(length: number): number {
    const start = this.length;
    const padded = (length + 3) & ~3;
    for (let i = start; i < start + padded; i++) this.bytes[i] = this.int(256);
    this.length = start + padded;
    return start;
  }

  #header(start: number, nlmsgLength: number, type: number, dataLength: number): void {
    this.view.setUint32(start, nlmsgLength, true);
    this.view.setUint16(start + 4, type, true);
    this.view.setUint32(start + 16, CN_IDX_PROC, true);
    this.view.setUint32(start + 20, CN_VAL_PROC, true);
    this.view.setUint16(start + 32, dataLength, true);
  }

  /** A message as the kernel sends it; returns its start. */
  valid(): number {
    const start = this.#slot(FULL_MESSAGE);
    this.#header(start, FULL_MESSAGE, NLMSG_DONE, FULL_DATA);
    if (this.int(8) === 0) {
      const ack = this.int(0x7fffffff);
      this.view.setUint32(start + 28, ack, true);
      this.view.setUint32(start + 36, ProcEventWhat.NONE, true);
      this.expected.push({ kind: "ack", ack });
      return start;
    }
    const known = KNOWN[this.int(KNOWN.length)];
    const marker = 1 + this.int(0x3fffffff);
    this.view.setUint32(start + 36, known.what, true);
    this.view.setInt32(start + 52 + 4, marker, true); // pid (fork: parent_tgid)
    this.expected.push({ kind: "event", type: known.type, marker });
    return start;
  }

  /** A message whose framing holds but whose content lies: one malformed, decoding goes on. */
  badContent(): void {
    const known = KNOWN[this.int(KNOWN.length)];
    switch (this.int(5)) {
      case 0: { // nlmsg_len too short to hold a cn_msg
        const length = 16 + this.int(20);
        const start = this.#slot(length);
        this.view.setUint32(start, length, true);
        this.view.setUint16(start + 4, NLMSG_DONE, true);
        if (length >= 24) {
          this.view.setUint32(start + 16, CN_IDX_PROC, true);
          this.view.setUint32(start + 20, CN_VAL_PROC, true);
        }
        break;
      }
      case 1: { // cn_msg.len claims more than nlmsg_len holds
        const start = this.#slot(FULL_MESSAGE);
        this.#header(start, FULL_MESSAGE, NLMSG_DONE, FULL_DATA + 1 + this.int(0xffff - FULL_DATA));
        this.view.setUint32(start + 36, known.what, true);
        break;
      }
      case 2: { // cn_msg.len too short for the proc_event head
        const start = this.#slot(FULL_MESSAGE);
        this.#header(start, FULL_MESSAGE, NLMSG_DONE, this.int(PROC_EVENT_HEAD));
        break;
      }
      case 3: { // cn_msg.len too short for this event's fields
        const dataLength = PROC_EVENT_HEAD + this.int(known.required - PROC_EVENT_HEAD);
        const length = 36 + dataLength + this.int(8);
        const start = this.#slot(Math.max(length, 36 + PROC_EVENT_HEAD));
        this.#header(start, length, NLMSG_DONE, dataLength);
        this.view.setUint32(start + 36, known.what, true);
        break;
      }
      default: { // an nlmsg_type no connector message has
        const start = this.#slot(FULL_MESSAGE);
        let type = this.int(0x10000);
        while (type === NLMSG_DONE || type === NLMSG_NOOP) type = this.int(0x10000);
        this.#header(start, FULL_MESSAGE, type, FULL_DATA);
        this.view.setUint32(start + 36, known.what, true);
      }
    }
    this.expected.push({ kind: "malformed" });
  }

  /**
   * A message that breaks framing: one malformed, and nothing after it is
   * decoded. Returns whether noise may follow it (a cut message or a short
   * tail could be completed by noise).
   */
  badFraming(): boolean {
    const remaining = this.bytes.length - this.length;
    switch (this.int(4)) {
      case 0: { // nlmsg_len below the header size
        const start = this.#slot(FULL_MESSAGE);
        this.#header(start, this.int(16), NLMSG_DONE, FULL_DATA);
        break;
      }
      case 1: { // nlmsg_len beyond the datagram (up to 4 GiB)
        const start = this.#slot(FULL_MESSAGE);
        const lie = this.int(2) === 0
          ? 0xffffffff - this.int(1000)
          : remaining + 1 + this.int(10_000);
        this.#header(start, lie, NLMSG_DONE, FULL_DATA);
        break;
      }
      case 2: { // fewer bytes left than a header
        const tail = 1 + this.int(15);
        for (let i = 0; i < tail; i++) this.bytes[this.length + i] = this.int(256);
        this.length += tail;
        this.expected.push({ kind: "malformed" });
        return false;
      }
      default: { // a valid message cut short
        const start = this.valid();
        this.expected.pop();
        this.length = start + 1 + this.int(FULL_MESSAGE - 1);
        this.expected.push({ kind: "malformed" });
        return false;
      }
    }
    this.expected.push({ kind: "malformed" });
    return true;
  }
}

function check(out: DecodedMessage[], expected: Expected[], where: string): number {
  assert.equal(
    out.length,
    expected.length,
    `${where}: got ${
      JSON.stringify(out.map((m) => m.kind === "malformed" ? m.reason : m.kind))
    }, expected ${JSON.stringify(expected.map((e) => e.kind))}`,
  );
  let malformed = 0;
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i];
    const got = out[i];
    if (got.kind !== want.kind) {
      assert.fail(`${where}: message ${i} is ${JSON.stringify(got)}, expected ${want.kind}`);
    }
    if (want.kind === "malformed") malformed++;
    if (want.kind === "ack" && got.kind === "ack") assert.equal(got.ack, want.ack, where);
    if (want.kind === "event" && got.kind === "event") {
      const event = got.event;
      assert.equal(event.type, want.type, where);
      const pid = event.type === "fork" ? event.parentPid : "pid" in event ? event.pid : -1;
      assert.equal(pid, want.marker, where);
    }
  }
  return malformed;
}

Deno.test("decoder fuzz: 600K structured datagrams decode exactly, bad messages are malformed", () => {
  const seed = Number(Deno.env.get("PROCWATCH_FUZZ_SEED") ?? 0x7a11ed);
  const random = prng(seed);
  const out: DecodedMessage[] = [];
  let datagrams = 0;
  let expectedMalformed = 0;
  let malformed = 0;
  let events = 0;
  for (let iteration = 0; iteration < 600_000; iteration++) {
    const b = new Builder(random);
    const messages = 1 + b.int(4);
    for (let m = 0; m < messages; m++) {
      if (b.int(3) === 0) b.badContent();
      else b.valid();
    }
    if (b.int(3) === 0 && b.badFraming()) {
      // Noise after a framing error must never be decoded.
      const noise = b.int(64);
      for (let i = 0; i < noise; i++) b.bytes[b.length + i] = b.int(256);
      b.length += noise;
    }
    // Oversized buffers: the bytes past `length` must be ignored; a `length`
    // larger than the buffer must be capped at the buffer.
    const mode = b.int(4);
    const bytes = mode === 0 ? b.bytes.subarray(0, b.length) : b.bytes;
    const length = mode === 1 ? b.length + 1 + b.int(1 << 20) : b.length;
    if (mode === 1) {
      const real = b.bytes.subarray(0, b.length);
      out.length = 0;
      decodeDatagram(real, length, 0n, out);
    } else {
      out.length = 0;
      decodeDatagram(bytes, length, 0n, out);
    }
    const where = `seed ${seed}, iteration ${iteration}`;
    malformed += check(out, b.expected, where);
    for (const want of b.expected) {
      if (want.kind === "malformed") expectedMalformed++;
      if (want.kind === "event") events++;
    }
    datagrams++;
  }
  assert.equal(datagrams, 600_000);
  assert.equal(malformed, expectedMalformed);
  assert.ok(expectedMalformed > 200_000, `too few bad messages generated: ${expectedMalformed}`);
  assert.ok(events > 600_000, `too few valid events generated: ${events}`);
});

Deno.test("decoder fuzz: 500K random and half-plausible buffers never throw", () => {
  const seed = Number(Deno.env.get("PROCWATCH_FUZZ_SEED") ?? 0xbadf00d);
  const random = prng(seed);
  const bytes = new Uint8Array(512);
  const view = new DataView(bytes.buffer);
  const out: DecodedMessage[] = [];
  const kinds = new Set(["event", "ack", "unknown", "other", "malformed"]);
  let outputs = 0;
  for (let iteration = 0; iteration < 500_000; iteration++) {
    const length = Math.floor(random() * random() * bytes.length);
    for (let i = 0; i < length; i += 4) view.setUint32(i, (random() * 4294967296) >>> 0);
    // Half of them look like connector messages, so the deeper checks run too.
    if (iteration % 2 === 0 && length >= 40) {
      let offset = 0;
      while (offset + 40 <= length) {
        const claimed = 16 + Math.floor(random() * 90);
        view.setUint32(offset, claimed, true);
        view.setUint16(offset + 4, random() < 0.9 ? NLMSG_DONE : NLMSG_NOOP, true);
        view.setUint32(offset + 16, CN_IDX_PROC, true);
        view.setUint32(offset + 20, random() < 0.95 ? CN_VAL_PROC : 7, true);
        view.setUint16(offset + 32, Math.floor(random() * 64), true);
        view.setUint32(offset + 36, KNOWN[Math.floor(random() * KNOWN.length)].what, true);
        offset += (claimed + 3) & ~3;
      }
    }
    out.length = 0;
    try {
      decodeDatagram(bytes, length, 0n, out);
    } catch (error) {
      assert.fail(`seed ${seed}, iteration ${iteration}: decodeDatagram threw ${error}`);
    }
    // Each message takes at least a 16-byte header (a trailing fragment counts once).
    assert.ok(out.length <= Math.floor(length / 16) + 1, `seed ${seed}, iteration ${iteration}`);
    for (const message of out) {
      if (!kinds.has(message.kind)) assert.fail(`unexpected kind ${message.kind}`);
    }
    outputs += out.length;
  }
  assert.ok(outputs > 500_000, `random buffers produced only ${outputs} messages`);
});
