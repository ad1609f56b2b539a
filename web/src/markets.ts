// The markets' precision (GET /api/v1/markets): prices are shown to the market's tick size
// and quantities to its step size ("0.01" -> 2 places, "1E-8" -> 8).
import { decimalsOf, expand } from "./format";
import type { MarketInfo } from "./types";

/** Digits shown for a market's prices and quantities. */
export interface Places {
  price: number;
  qty: number;
}

function placesOf(increment: string): number {
  const v = expand(increment);
  return decimalsOf(v.includes(".") ? v.replace(/\.?0+$/, "") : v);
}

/** Lookup of each market's {@link Places} by venue and symbol; the same object every time. */
export class Markets {
  private readonly byKey = new Map<string, Places>();
  /** The venues with markets (the market-data venues an account can trade on), sorted. */
  readonly venues: string[];

  constructor(items: MarketInfo[] = []) {
    for (const m of items) this.byKey.set(`${m.venue}:${m.symbol}`, { price: placesOf(m.tick_size), qty: placesOf(m.step_size) });
    this.venues = [...new Set(items.map((m) => m.venue))].sort();
  }

  /** The places of `venue`'s `symbol`; undefined for a market the gateway does not list. */
  places(venue: string | null | undefined, symbol: string | null | undefined): Places | undefined {
    return venue && symbol ? this.byKey.get(`${venue}:${symbol}`) : undefined;
  }
}
