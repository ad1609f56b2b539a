// Pieces shared by the pages: the app context, the confirm dialog, bot command buttons,
// field errors.
import { createContext } from "preact";
import { useContext, useState } from "preact/hooks";
import { Api, ApiError } from "./api";
import type { EventStream } from "./ws";
import type { Markets } from "./markets";
import type { CommandResult } from "./types";

/** What every page gets: the API client, the live events of the signed-in user and the
 * markets' precision. */
export interface AppCtx {
  api: Api;
  events: EventStream | null;
  markets: Markets;
}

export const AppContext = createContext<AppCtx | null>(null);

/** The app context (throws outside the app). */
export function useApp(): AppCtx {
  const ctx = useContext(AppContext);
  if (!ctx) throw new Error("useApp outside <AppContext.Provider>");
  return ctx;
}

/** A modal yes/no question. */
export function Confirm(props: { message: string; onOk: () => void; onCancel: () => void }) {
  return (
    <div class="modal-backdrop">
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby="confirm-text">
        <p id="confirm-text">{props.message}</p>
        <div class="row">
          <button type="button" class="danger" data-testid="confirm-ok" onClick={props.onOk} autoFocus>
            Yes
          </button>
          <button type="button" data-testid="confirm-cancel" onClick={props.onCancel}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}

/** The message of an error for people. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.code && err.code !== "error" ? `${err.message} (${err.code})` : err.message;
  return err instanceof Error ? err.message : String(err);
}

/** An error next to a form field (testid `field-error-<path>`). */
export function FieldError(props: { errors: Record<string, string>; field: string }) {
  const msg = props.errors[props.field];
  return msg ? (
    <span class="field-error" role="alert" data-testid={`field-error-${props.field}`}>
      {msg}
    </span>
  ) : null;
}

/** Errors of fields no input shows (a params path inside the JSON), listed by field. */
export function OtherFieldErrors(props: { errors: Record<string, string>; shown: string[] }) {
  const rest = Object.keys(props.errors).filter((f) => !props.shown.includes(f));
  if (!rest.length) return null;
  return (
    <ul class="field-errors">
      {rest.map((f) => (
        <li key={f}>
          <FieldError errors={props.errors} field={f} /> <code>{f}</code>
        </li>
      ))}
    </ul>
  );
}

/** Start / pause / resume / stop / flatten of one bot; stop and flatten ask first; a refusal is shown. */
export function BotControls(props: { id: string; onDone?: (r: CommandResult) => void }) {
  const { api } = useApp();
  const [asking, setAsking] = useState<"stop" | "flatten" | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const id = props.id;

  const run = async (verb: "start" | "pause" | "resume" | "stop" | "flatten") => {
    setBusy(true);
    setError(null);
    try {
      const path = `/api/v1/bots/${encodeURIComponent(id)}/${verb}`;
      const result = await api.request<CommandResult>("POST", path, verb === "start" ? { mode: "resume" } : undefined);
      if (!result.ok) setError(result.message);
      props.onDone?.(result);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const questions = {
    stop: `Stop ${id}? Its open orders are cancelled if its cancel_on_exit says so.`,
    flatten: `Flatten ${id}? Its open orders are cancelled, its position is sold (or bought back) at market, then it stops.`,
  };

  return (
    <span class="controls">
      <button type="button" data-testid={`bot-start-${id}`} disabled={busy} onClick={() => void run("start")}>
        Start
      </button>
      <button type="button" data-testid={`bot-pause-${id}`} disabled={busy} onClick={() => void run("pause")}>
        Pause
      </button>
      <button type="button" data-testid={`bot-resume-${id}`} disabled={busy} onClick={() => void run("resume")}>
        Resume
      </button>
      <button type="button" class="danger" data-testid={`bot-stop-${id}`} disabled={busy} onClick={() => setAsking("stop")}>
        Stop
      </button>
      <button type="button" class="danger" data-testid={`bot-flatten-${id}`} disabled={busy} onClick={() => setAsking("flatten")}>
        Flatten
      </button>
      {error && (
        <span class="error" role="alert" data-testid="bot-error">
          {error}
        </span>
      )}
      {asking && (
        <Confirm
          message={questions[asking]}
          onOk={() => {
            const verb = asking;
            setAsking(null);
            void run(verb);
          }}
          onCancel={() => setAsking(null)}
        />
      )}
    </span>
  );
}

/** Newest / Newer / Older buttons of a keyset-paged list and the page number: `cursors` holds
 * the cursor of each page seen (`[null]`: the newest page), `next` the shown page's next_cursor. */
export function Pager(props: { cursors: (string | null)[]; setCursors: (c: (string | null)[]) => void; next: string | null | undefined }) {
  const { cursors, setCursors, next } = props;
  return (
    <>
      <button type="button" disabled={cursors.length === 1} onClick={() => setCursors([null])}>
        Newest
      </button>
      <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
        Newer
      </button>
      <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>
        Older
      </button>
      <span>page {cursors.length}</span>
    </>
  );
}
