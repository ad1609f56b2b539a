// The API client: a fetch wrapper that signs requests, refreshes the session silently
// and sends the user to the login page (keeping the wanted route) when it is gone.
import type { Me } from "./types";

const STORAGE_KEY = "tradebus.session";
const REFRESH_MARGIN_MS = 60_000;

/** One sign-in: tokens, when the access token expires (ms since the epoch), who. */
export interface Session {
  access: string;
  refresh: string;
  expiresAt: number;
  user: Me;
}

/** One bad field of an error answer. */
export interface ErrorDetail {
  field: string | null;
  message: string;
  source?: string | null;
}

/** A refusal of the API: HTTP status plus the gateway's error body. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly details: ErrorDetail[];

  constructor(status: number, body: { error?: string; message?: string; field?: string | null; details?: ErrorDetail[] }) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body.error ?? "error";
    this.field = body.field ?? null;
    this.details = body.details ?? [];
  }

  /** Field path -> message, for showing errors next to form fields. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) if (d.field && !(d.field in out)) out[d.field] = d.message;
    if (this.field && !(this.field in out)) out[this.field] = this.message;
    return out;
  }
}

interface TokenPair {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  user: Me;
}

type Listener = (session: Session | null) => void;

/** The route the browser shows now (`#/bots/x` -> `/bots/x`). */
export function currentRoute(): string {
  return location.hash.replace(/^#/, "") || "/bots";
}

/** Go to the login page, remembering `next` (the route wanted). */
export function toLogin(next: string = currentRoute()): void {
  const keep = next.startsWith("/login") ? "" : `?next=${encodeURIComponent(next)}`;
  location.hash = `#/login${keep}`;
}

/** The API client of one browser tab (one per page, given to components by context). */
export class Api {
  private session: Session | null = null;
  private timer: number | undefined;
  private refreshing: Promise<boolean> | null = null;
  private readonly listeners = new Set<Listener>();

  constructor() {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      if (raw) this.session = JSON.parse(raw) as Session;
    } catch {
      this.session = null;
    }
    if (this.session) this.schedule();
  }

  /** The current sign-in (null: signed out). */
  get me(): Session | null {
    return this.session;
  }

  /** Call `fn` on every sign-in change (tokens renewed, signed in or out); returns unsubscribe. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Sign in; throws ApiError (401 wrong user or password, 429 throttled). */
  async login(user: string, password: string): Promise<Session> {
    const pair = await this.raw<TokenPair>("POST", "/api/v1/auth/login", { user, password });
    return this.store(pair);
  }

  /** Sign out (revokes the refresh token) and forget the session. */
  async logout(): Promise<void> {
    const s = this.session;
    if (s) {
      try {
        await this.request("POST", "/api/v1/auth/logout", { refresh_token: s.refresh });
      } catch {
        // signed out locally anyway
      }
    }
    this.clear();
  }

  /** Spend the refresh token for a new pair; false when the sign-in is gone. */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const s = this.session;
    if (!s) return Promise.resolve(false);
    this.refreshing = this.raw<TokenPair>("POST", "/api/v1/auth/refresh", { refresh_token: s.refresh })
      .then((pair) => {
        this.store(pair);
        return true;
      })
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 401) this.clear();
        return false;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** A signed JSON request; on 401 refreshes once and retries, then goes to the login page. */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await this.signed(method, path, body, headers);
    return parse<T>(res);
  }

  /** GET shorthand. */
  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  /** Download `path` (a CSV) with the Authorization header and save it as `filename`. */
  async download(path: string, filename: string): Promise<void> {
    const res = await this.signed("GET", path);
    if (!res.ok) await parse(res);
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  private async signed(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    if (!this.session) {
      toLogin();
      throw new ApiError(401, { error: "unauthorized", message: "sign in first" });
    }
    if (this.session.expiresAt - Date.now() < 5_000) await this.refresh();
    let res = await this.send(method, path, body, headers);
    if (res.status === 401 && this.session && (await this.refresh())) {
      res = await this.send(method, path, body, headers);
    }
    if (res.status === 401) {
      this.clear();
      toLogin();
    }
    return res;
  }

  private send(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.session) h.Authorization = `Bearer ${this.session.access}`;
    if (body !== undefined) h["Content-Type"] = "application/json";
    return fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  private async raw<T>(method: string, path: string, body: unknown): Promise<T> {
    const res = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return parse<T>(res);
  }

  private store(pair: TokenPair): Session {
    this.session = {
      access: pair.access_token,
      refresh: pair.refresh_token,
      expiresAt: Date.now() + pair.expires_in * 1000,
      user: pair.user,
    };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    this.schedule();
    this.emit();
    return this.session;
  }

  private clear(): void {
    const had = this.session !== null;
    this.session = null;
    sessionStorage.removeItem(STORAGE_KEY);
    window.clearTimeout(this.timer);
    if (had) this.emit();
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (!this.session) return;
    const lifetime = this.session.expiresAt - Date.now();
    const wait = Math.max(1_000, Math.min(lifetime - REFRESH_MARGIN_MS, lifetime * 0.8));
    this.timer = window.setTimeout(() => {
      void this.refresh().then((ok) => {
        if (!ok && !this.session) toLogin();
      });
    }, wait);
  }

  private emit(): void {
    for (const fn of this.listeners) fn(this.session);
  }
}

async function parse<T>(res: Response): Promise<T> {
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text };
    }
  }
  if (!res.ok) throw new ApiError(res.status, (body ?? {}) as Record<string, never>);
  return body as T;
}

/** A query string of the defined values (`?a=1&b=x`, or "" when none). */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
