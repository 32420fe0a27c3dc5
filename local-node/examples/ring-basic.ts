/**
 * Minimal shared-memory ring: one producer, one consumer, in one process for brevity (they are
 * usually separate processes: run the producer part in one and the consumer part in another).
 *
 *   node local-node/examples/ring-basic.ts
 */
import { FULL, Ring } from "@dovetail/local-node";

const name = `example-${process.pid}`;
const w = Ring.create(name, { capacity: 1 << 20, maxConsumers: 8, crc: true });
const r = Ring.open(name);

const text = new TextEncoder();
w.publish(text.encode("hello"));
const last = w.publishBatch(["a", "b", "c"].map((s) => text.encode(s)));
if (last === FULL) throw new Error("ring full");

const words: string[] = [];
for (const rec of r.pollBatch(10)) {
  // rec.data is a zero-copy view, valid until the next poll on `r`: decode (copy) it now.
  words.push(new TextDecoder().decode(rec.data));
}
console.log(words.join(" "));

w.close();
r.close();
Ring.unlink(name);
