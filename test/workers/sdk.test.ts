/**
 * The SDK runs unchanged inside workerd: it reaches the gateway through a fetch-upgrade
 * transport (`exports.default.fetch`, the way a Worker would use a service binding), with the
 * token as `Authorization: Bearer`.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { connect, fetchTransport, type Bus } from "../../sdk/src/index.ts";
import { freshTopic, testCredential } from "./helpers.ts";

function gatewayFetch(input: string | Request, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(input, init));
}

async function busInWorkerd(): Promise<Bus> {
  return connect("http://bus.test", { token: await testCredential(), transport: fetchTransport(gatewayFetch), fetch: gatewayFetch });
}

describe("sdk inside workerd", () => {
  it("publishes, batches and subscribes through a fetch-upgrade transport", async () => {
    const bus = await busInWorkerd();
    const topic = freshTopic("sdk");
    expect(await bus.publish(topic, { hello: 1 }, { key: "k", headers: { h: "v" } })).toEqual({ offset: 0 });
    const pub = bus.publisher(topic, { lingerMs: 1, maxBatch: 50 });
    const offsets = await Promise.all(Array.from({ length: 200 }, (_, n) => pub.send({ n })));
    expect(offsets).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));

    const sub = bus.subscribe(topic, { from: "earliest", buffer: 64 });
    const seen: number[] = [];
    for await (const m of sub) {
      if (m.offset === 0) expect(m).toMatchObject({ data: { hello: 1 }, key: "k", headers: { h: "v" } });
      else expect(m.data).toEqual({ n: m.offset - 1 });
      seen.push(m.offset);
      if (seen.length === 201) break;
    }
    expect(seen).toEqual(Array.from({ length: 201 }, (_, i) => i));
    expect((await bus.info(topic)).head).toBe(201);
    await bus.close();
  });

  it("refuses a bad token with a typed `unauthorized` error", async () => {
    const bus = connect("http://bus.test", { token: "wrong", transport: fetchTransport(gatewayFetch), fetch: gatewayFetch });
    await expect(bus.publish(freshTopic("sdk"), 1)).rejects.toMatchObject({ name: "DovetailError", code: "unauthorized" });
    await expect(bus.info(freshTopic("sdk"))).rejects.toMatchObject({ code: "unauthorized" });
    await bus.close({ force: true });
  });
});
