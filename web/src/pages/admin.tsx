// Admin pages: users, all bots, the audit log (the API refuses non-admins with 403).
import { useEffect, useState } from "preact/hooks";
import { query } from "../api";
import { Pager, errorText, useApp } from "../components";
import { fmtTime } from "../format";
import type { AuditRow, Bot, Page, UserView } from "../types";
import { BotsTable } from "./bots";

/** Users. */
export function UsersPage() {
  const { api } = useApp();
  const [users, setUsers] = useState<UserView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<UserView[] | { users: UserView[] }>("/api/v1/users").then(
      (r) => setUsers(Array.isArray(r) ? r : r.users),
      (err) => setError(errorText(err)),
    );
  }, []);
  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <table data-testid="users-table">
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">Disabled</th>
            <th scope="col">Created by</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {(users ?? []).map((u) => (
            <tr key={u.id}>
              <td>{u.id}</td>
              <td>{u.role}</td>
              <td>{u.disabled ? "yes" : "no"}</td>
              <td>{u.created_by}</td>
              <td>{fmtTime(u.created_ns)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Every user's bots (refreshed every 5 s). */
export function AllBotsPage() {
  const { api } = useApp();
  const [bots, setBots] = useState<Bot[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const load = () => api.get<Bot[]>("/api/v1/bots").then(setBots, (err) => setError(errorText(err)));
    void load();
    const timer = window.setInterval(() => void load(), 5000);
    return () => window.clearInterval(timer);
  }, []);
  return (
    <section aria-labelledby="all-bots-title">
      <h1 id="all-bots-title">All bots</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {bots && <BotsTable bots={bots} showUser />}
    </section>
  );
}

/** The audit log, newest first, paged. */
export function AuditPage() {
  const { api } = useApp();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<Page<AuditRow> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    api.get<Page<AuditRow>>(`/api/v1/audit${query({ limit: 100, cursor })}`).then(setPage, (err) => setError(errorText(err)));
  }, [cursor]);
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="row">
        <Pager cursors={cursors} setCursors={setCursors} next={page?.next_cursor} />
      </div>
      <table data-testid="audit-table">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Source</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">User</th>
          </tr>
        </thead>
        <tbody>
          {(page?.items ?? []).map((r) => (
            <tr key={r.id}>
              <td>{fmtTime(r.ts)}</td>
              <td>{r.actor}</td>
              <td>{r.source}</td>
              <td>{r.action}</td>
              <td>{r.target}</td>
              <td>{r.user ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
