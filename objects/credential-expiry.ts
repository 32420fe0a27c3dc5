/**
 * Credential expiry as a Topic module: a socket whose credential expires (a JWT's `exp`, an API
 * key's expiry) is closed at that time, by the alarm, also when it is silent (issue 18: a silent
 * subscriber kept receiving after its token expired). Frames that arrive after the expiry are
 * refused by the connection policy before that.
 */
import type { SocketAttachment } from "./fanout.ts";
import type { TopicModule } from "./topic-module.ts";

export interface CredentialExpiryHost {
  /** Every client socket with its attachment. */
  sockets(): Iterable<[WebSocket, SocketAttachment]>;
  /** Close a socket whose credential ended (error frame, then 4401). */
  closeExpired(ws: WebSocket): void;
}

export class CredentialExpiry implements TopicModule {
  readonly #host: CredentialExpiryHost;
  /** The earliest expiry among open sockets; undefined until counted after a wake. */
  #next: number | null | undefined;

  constructor(host: CredentialExpiryHost) {
    this.#host = host;
  }

  onSocketOpened(_ws: WebSocket, attachment: SocketAttachment): void {
    const exp = attachment.grant?.exp;
    if (exp === undefined || this.#next === undefined) return;
    if (this.#next === null || exp < this.#next) this.#next = exp;
  }

  nextDeadline(): number | null {
    if (this.#next === undefined) this.#next = this.#scan(Number.NEGATIVE_INFINITY);
    return this.#next;
  }

  onAlarm(now: number): void {
    this.#next = this.#scan(now);
  }

  /** Close sockets expired by `now`; returns the earliest expiry left. */
  #scan(now: number): number | null {
    let next: number | null = null;
    for (const [ws, attachment] of [...this.#host.sockets()]) {
      const exp = attachment.grant?.exp;
      if (exp === undefined) continue;
      if (exp <= now) this.#host.closeExpired(ws);
      else if (next === null || exp < next) next = exp;
    }
    return next;
  }
}
