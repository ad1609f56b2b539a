// Numbers and times as the page shows them (format.ts, markets.ts): exact decimal strings,
// the market's precision, no exponent, no float tails.
import { describe, expect, it } from "vitest";
import { decimalsOf, expand, fmtDec, fmtMoney, fmtTime, mulDec, roundDec } from "./format";
import { Markets } from "./markets";

describe("expand", () => {
  it("writes exponents out", () => {
    expect(expand("1E-8")).toBe("0.00000001");
    expect(expand("0E-8")).toBe("0");
    expect(expand("1.5E+3")).toBe("1500");
    expect(expand("-2.50E-2")).toBe("-0.025");
    expect(expand("61800.10")).toBe("61800.10"); // no exponent: as it came
  });
});

describe("roundDec", () => {
  it("rounds half away from zero, exactly", () => {
    expect(roundDec("2678.305", 2)).toBe("2678.31");
    expect(roundDec("-2678.305", 2)).toBe("-2678.31");
    expect(roundDec("0.1", 3)).toBe("0.100");
    expect(roundDec("9.999", 2)).toBe("10.00");
    expect(roundDec("-0.001", 2)).toBe("0.00"); // no negative zero
    // a value a float cannot hold: 0.1 + 0.2 style tails never appear
    expect(roundDec("0.30000000000000004441", 8)).toBe("0.30000000");
  });
});

describe("fmtDec", () => {
  it("shows a market's places, grouped", () => {
    expect(fmtDec("61800.1", 2)).toBe("61,800.10");
    expect(fmtDec("0E-8")).toBe("0");
    expect(fmtDec("0.00434000", 5)).toBe("0.00434");
    expect(fmtDec("1234567.123456789123")).toBe("1,234,567.12345679"); // at most 8 places
    expect(fmtDec(null)).toBe("–");
    expect(fmtDec("not a number")).toBe("not a number");
  });

  it("keeps small money visible", () => {
    expect(fmtMoney("-3.9312")).toBe("-3.93");
    expect(fmtMoney("0.0037490")).toBe("0.003749");
  });
});

describe("mulDec", () => {
  it("multiplies exactly", () => {
    expect(mulDec("61800.5", "0.00434")).toBe("268.21417");
    expect(mulDec("0.1", "0.2")).toBe("0.02"); // 0.020000000000000004 in floats
    expect(mulDec("-2", "1E-8")).toBe("-0.00000002");
    expect(mulDec("100", "3")).toBe("300");
  });
});

describe("decimalsOf", () => {
  it("counts the places of a decimal string", () => {
    expect(decimalsOf("0.0100")).toBe(4);
    expect(decimalsOf("1E-8")).toBe(8);
    expect(decimalsOf("5")).toBe(0);
  });
});

describe("Markets", () => {
  const markets = new Markets([
    { venue: "binance", symbol: "BTCUSDT", base: "BTC", quote: "USDT", kind: "spot", tick_size: "0.01", step_size: "0.00001", min_notional: "5", min_qty: "0" },
    { venue: "backpack", symbol: "BTC_USDC", base: "BTC", quote: "USDC", kind: "spot", tick_size: "0.1", step_size: "1E-8", min_notional: "0", min_qty: "0" },
    { venue: "x", symbol: "BIG", base: "B", quote: "Q", kind: "spot", tick_size: "5.000", step_size: "1", min_notional: "0", min_qty: "0" },
  ]);

  it("gives the places of the tick and step sizes", () => {
    expect(markets.places("binance", "BTCUSDT")).toEqual({ price: 2, qty: 5 });
    expect(markets.places("backpack", "BTC_USDC")).toEqual({ price: 1, qty: 8 });
    expect(markets.places("x", "BIG")).toEqual({ price: 0, qty: 0 });
  });

  it("is the same object each time (memoized rows stay put) and undefined when unknown", () => {
    expect(markets.places("binance", "BTCUSDT")).toBe(markets.places("binance", "BTCUSDT"));
    expect(markets.places("binance", "NOPE")).toBeUndefined();
    expect(markets.places(null, "BTCUSDT")).toBeUndefined();
  });
});

describe("fmtTime", () => {
  it("shows ns in the local zone (the test runs in Europe/Berlin, package.json)", () => {
    expect(fmtTime(Date.UTC(2024, 7, 9, 23, 54, 39) * 1e6)).toBe("2024-08-10 01:54:39"); // CEST
    expect(fmtTime(Date.UTC(2024, 0, 9, 23, 54, 39) * 1e6)).toBe("2024-01-10 00:54:39"); // CET
    expect(fmtTime(null)).toBe("–");
  });
});
