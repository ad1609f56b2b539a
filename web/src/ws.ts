// The live events of /api/v1/events (protocol: services/gateway/src/tradebus/gateway/routes/events.py):
// auth with the access token, resume with since_seq after a reconnect, renew the token in place.
import type { Api } from "./api";
import type { Frame } from "./types";

type Handler = (frame: Frame) => void;

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

/** One WebSocket to the gateway's events, reconnecting until closed. */
export class EventStream {
  private socket: WebSocket | null = null;
  private lastSeq = 0;
  private backoff = MIN_BACKOFF_MS;
  private closed = false;
  private retry: number | undefined;
  private readonly handlers = new Set<Handler>();
  private readonly unsubscribe: () => void;

  /** `api` gives the token (and renews it); `scope` asks an admin's wider view. */
  constructor(private readonly api: Api, private readonly scope: { all_users?: boolean; user?: string } = {}) {
    this.unsubscribe = api.subscribe((session) => {
      if (!session) this.close();
      else this.renew(session.access);
    });
    this.connect();
  }

  /** Call `fn` with every frame; returns unsubscribe. */
  on(fn: Handler): () => void {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }

  /** Stop for good. */
  close(): void {
    this.closed = true;
    window.clearTimeout(this.retry);
    this.unsubscribe();
    this.socket?.close(1000, "page left");
    this.socket = null;
  }

  private connect(): void {
    const session = this.api.me;
    if (this.closed || !session) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${proto}//${location.host}/api/v1/events`);
    this.socket = socket;
    socket.onopen = () => {
      const hello: Record<string, unknown> = { type: "auth", token: this.api.me?.access ?? session.access, ...this.scope };
      if (this.lastSeq > 0) hello.since_seq = this.lastSeq;
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (msg: MessageEvent<string>) => {
      let frame: Frame;
      try {
        frame = JSON.parse(msg.data) as Frame;
      } catch {
        return;
      }
      if (frame.type === "ready") this.backoff = MIN_BACKOFF_MS;
      if (frame.type === "order" && frame.seq > this.lastSeq) this.lastSeq = frame.seq;
      for (const fn of this.handlers) fn(frame);
    };
    socket.onclose = (ev: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) return;
      const resume = /since_seq=(\d+)/.exec(ev.reason);
      if (resume) this.lastSeq = Math.max(this.lastSeq, Number(resume[1]));
      const wait = this.backoff;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.retry = window.setTimeout(() => {
        if (ev.code === 1008) {
          // token expired or refused: refresh first (the API client goes to login if it cannot)
          void this.api.refresh().then((ok) => {
            if (ok) this.connect();
          });
        } else {
          this.connect();
        }
      }, wait);
    };
  }

  private renew(token: string): void {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "auth", token, ...this.scope }));
    } else if (!this.socket && !this.closed) {
      window.clearTimeout(this.retry);
      this.connect();
    }
  }
}
