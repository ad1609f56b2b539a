// The tradebus web page: hash routes, the signed-in shell (header, nav), live events.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api, currentRoute, toLogin, type Session } from "./api";
import { AppContext } from "./components";
import { EventStream } from "./ws";
import { Markets } from "./markets";
import type { MarketInfo } from "./types";
import { AccountsPage } from "./pages/accounts";
import { AllBotsPage, AuditPage, UsersPage } from "./pages/admin";
import { BotPage } from "./pages/bot";
import { BotsPage } from "./pages/bots";
import { LoginPage } from "./pages/login";
import "./style.css";

/** `#/bots/x?y=1` -> path `/bots/x` and its query. */
function parseRoute(route: string): { path: string; params: URLSearchParams } {
  const [path, q = ""] = route.split("?", 2);
  return { path: path || "/bots", params: new URLSearchParams(q) };
}

function useRoute(): string {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

function App(props: { api: Api }) {
  const { api } = props;
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(api.me);
  useEffect(() => api.subscribe(setSession), []);
  const signedIn = session !== null;
  const events = useMemo(() => (signedIn ? new EventStream(api) : null), [signedIn]);
  useEffect(() => () => events?.close(), [events]);
  const [markets, setMarkets] = useState(() => new Markets());
  useEffect(() => {
    if (!signedIn) return;
    api.get<MarketInfo[]>("/api/v1/markets").then(
      (items) => setMarkets(new Markets(items)),
      () => undefined, // without them numbers keep the digits they come with
    );
  }, [signedIn]);

  const { path, params } = parseRoute(route);
  useEffect(() => {
    if (!signedIn && !path.startsWith("/login")) toLogin(route);
  }, [signedIn, route]);

  if (path.startsWith("/login") || !session) {
    return (
      <AppContext.Provider value={{ api, events: null, markets }}>
        <main>
          <LoginPage next={params.get("next") ?? "/bots"} />
        </main>
      </AppContext.Provider>
    );
  }

  const admin = session.user.role === "admin";
  let page;
  const bot = /^\/bots\/(.+)$/.exec(path);
  if (bot) page = <BotPage key={bot[1]} id={decodeURIComponent(bot[1])} />;
  else if (path === "/accounts") page = <AccountsPage />;
  else if (path === "/admin/users" && admin) page = <UsersPage />;
  else if (path === "/admin/bots" && admin) page = <AllBotsPage />;
  else if (path === "/admin/audit" && admin) page = <AuditPage />;
  else page = <BotsPage />;
  const current = (p: string) => (path.startsWith(p) ? "page" : undefined);

  return (
    <AppContext.Provider value={{ api, events, markets }}>
      <header>
        <strong class="brand">tradebus</strong>
        <nav aria-label="Main">
          <a href="#/bots" data-testid="nav-bots" aria-current={current("/bots")}>
            Bots
          </a>
          <a href="#/accounts" data-testid="nav-accounts" aria-current={current("/accounts")}>
            Accounts
          </a>
          {admin && (
            <span data-testid="nav-admin">
              Admin: <a href="#/admin/users" aria-current={current("/admin/users")}>users</a>{" "}
              <a href="#/admin/bots" aria-current={current("/admin/bots")}>all bots</a>{" "}
              <a href="#/admin/audit" aria-current={current("/admin/audit")}>audit</a>
            </span>
          )}
        </nav>
        <span class="who">
          <span data-testid="whoami">{session.user.id}</span>
          <button type="button" data-testid="logout" onClick={() => void api.logout().then(() => (location.hash = "#/login"))}>
            Log out
          </button>
        </span>
      </header>
      <main>{page}</main>
    </AppContext.Provider>
  );
}

render(<App api={new Api()} />, document.getElementById("app") as HTMLElement);
