// Numbers and times for people: decimal strings to a market's precision (no 0E-8, no
// 20-digit tails), times in the browser's time zone.

/** Digits after the point of a decimal string ("0.0100" -> 4, "1E-8" -> 8, "5" -> 0). */
export function decimalsOf(value: string | null | undefined): number {
  if (!value) return 0;
  const v = expand(value);
  const dot = v.indexOf(".");
  return dot < 0 ? 0 : v.length - dot - 1;
}

/** A decimal string without exponent ("1E-8" -> "0.00000001", "1.5E+3" -> "1500"). */
export function expand(value: string): string {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?[eE]([+-]?\d+)$/.exec(value.trim());
  if (!m) return value.trim();
  const [, sign, int = "", frac = "", expText] = m;
  let digits = int + frac;
  let point = int.length + Number(expText);
  while (digits.length > 1 && digits.startsWith("0")) {
    digits = digits.slice(1);
    point -= 1;
  }
  let out: string;
  if (point <= 0) out = `0.${"0".repeat(-point)}${digits}`;
  else if (point >= digits.length) out = `${digits}${"0".repeat(point - digits.length)}`;
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  if (out.includes(".")) out = out.replace(/0+$/, "").replace(/\.$/, "");
  return `${sign === "-" ? "-" : ""}${out}`;
}

/** The exact product of two decimal strings ("61800.5" x "0.00434" -> "268.2137"). */
export function mulDec(a: string, b: string): string {
  const parse = (v: string): [bigint, number] => {
    const text = expand(v);
    const neg = text.startsWith("-");
    const [int = "0", frac = ""] = text.replace(/^[+-]/, "").split(".");
    const n = BigInt((int || "0") + frac);
    return [neg ? -n : n, frac.length];
  };
  const [x, xp] = parse(a);
  const [y, yp] = parse(b);
  const n = x * y;
  const places = xp + yp;
  const digits = (n < 0n ? -n : n).toString().padStart(places + 1, "0");
  const out = places ? `${digits.slice(0, digits.length - places)}.${digits.slice(digits.length - places)}` : digits;
  const trimmed = out.includes(".") ? out.replace(/\.?0+$/, "") : out;
  return n < 0n ? `-${trimmed}` : trimmed;
}

/** Round a decimal string to `places` digits (half away from zero), exactly, as a string. */
export function roundDec(value: string, places: number): string {
  const v = expand(value);
  const neg = v.startsWith("-");
  const abs = v.replace(/^[+-]/, "");
  const [int = "0", frac = ""] = abs.split(".");
  if (frac.length <= places) {
    const out = places > 0 ? `${int || "0"}.${frac.padEnd(places, "0")}` : int || "0";
    return neg && /[1-9]/.test(out) ? `-${out}` : out;
  }
  const keep = (int || "0") + frac.slice(0, places);
  let n = BigInt(keep);
  if (Number(frac[places]) >= 5) n += 1n;
  let s = n.toString().padStart(places + 1, "0");
  s = places > 0 ? `${s.slice(0, s.length - places)}.${s.slice(s.length - places)}` : s;
  return neg && /[1-9]/.test(s) ? `-${s}` : s;
}

/**
 * A decimal string for display: rounded to `places` when given (the market's price or
 * quantity precision), else trimmed of trailing zeros and capped at 8 places.
 */
export function fmtDec(value: string | number | null | undefined, places?: number): string {
  if (value === null || value === undefined || value === "") return "–";
  const text = typeof value === "number" ? String(value) : value;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim())) return text;
  if (places !== undefined) return group(roundDec(text, Math.max(0, Math.min(places, 12))));
  const rounded = roundDec(text, Math.min(decimalsOf(text), 8));
  return group(rounded.includes(".") ? rounded.replace(/\.?0+$/, "") : rounded);
}

/** A money amount (quote asset): 2 places, or more for tiny amounts. */
export function fmtMoney(value: string | null | undefined): string {
  if (value === null || value === undefined) return "–";
  const n = Number(value);
  const places = n !== 0 && Math.abs(n) < 0.01 ? 6 : 2;
  return fmtDec(value, places);
}

/** A percentage in percent ("1.2345" -> "1.23 %"). */
export function fmtPct(value: string | null | undefined): string {
  return value === null || value === undefined ? "–" : `${fmtDec(value, 2)} %`;
}

function group(s: string): string {
  const neg = s.startsWith("-");
  const [int, frac] = s.replace(/^-/, "").split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "-" : ""}${grouped}${frac !== undefined ? `.${frac}` : ""}`;
}

/** Integer ns since the epoch -> local date and time ("2024-03-01 13:05:09"). */
export function fmtTime(ns: number | null | undefined): string {
  if (!ns) return "–";
  const d = new Date(Math.floor(ns / 1e6));
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Market precision learned from the prices and quantities seen (decimal strings). */
export class Precision {
  price = 0;
  qty = 0;

  /** Widen to the places of `price` and `qty` (capped at 8). */
  see(price?: string | null, qty?: string | null): void {
    if (price) this.price = Math.min(8, Math.max(this.price, decimalsOf(trimZeros(price))));
    if (qty) this.qty = Math.min(8, Math.max(this.qty, decimalsOf(trimZeros(qty))));
  }
}

function trimZeros(value: string): string {
  const v = expand(value);
  return v.includes(".") ? v.replace(/\.?0+$/, "") : v;
}
