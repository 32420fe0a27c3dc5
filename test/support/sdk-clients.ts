/**
 * SDK clients for Node tests against a bus process: each `client()` is a fresh `Bus` with quick
 * reconnects, and `closeAll()` (in `afterAll`) closes every one made.
 *
 * @example
 * const clients = sdkClients(() => bus);
 * const b = clients.client();
 * afterAll(() => clients.closeAll());
 */
import { connect, type Bus } from "../../sdk/src/index.ts";
import type { BusProcess } from "./bus-process.ts";

export function sdkClients(busProcess: () => BusProcess) {
  const buses: Bus[] = [];
  return {
    client(): Bus {
      const bus = busProcess();
      const b = connect(bus.url, { token: bus.token!, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
      buses.push(b);
      return b;
    },
    /** Close a bus made elsewhere with the others. */
    track(b: Bus): Bus {
      buses.push(b);
      return b;
    },
    closeAll(): Promise<unknown> {
      return Promise.all(buses.map((b) => b.close().catch(() => undefined)));
    },
  };
}

/** A topic name no other test uses. */
export function freshTopic(prefix: string): string {
  return `${prefix}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`;
}
