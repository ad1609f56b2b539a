// The bot page's charts: the price chart (lightweight-charts: price line, fills as markers
// coloured by side, resting orders as price lines) and the P&L chart (uPlot).
import { useEffect, useRef } from "preact/hooks";
import {
  createChart,
  createSeriesMarkers,
  LineSeries,
  LineStyle,
  type IChartApi,
  type IPriceLine,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtDec } from "./format";
import type { PnlPoint } from "./types";

export const BUY_COLOUR = "#1a7f37";
export const SELL_COLOUR = "#cf222e";

/** A fill on the chart. */
export interface ChartFill {
  id: string;
  ts: number; // ns
  side: string;
  price: string;
  qty: string;
}

/** A resting order on the chart. */
export interface ChartOrder {
  id: string;
  side: string;
  price: string;
  qty: string;
}

function localTime(t: Time): string {
  const d = new Date((t as number) * 1000);
  return d.toLocaleString();
}

function localTick(t: Time): string {
  const d = new Date((t as number) * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * The price chart of a bot's market: `prices` (ns -> price) as a line, `fills` as markers
 * (buy green below, sell red above; the fills table has their figures), `orders` as horizontal lines; zoomable over time.
 */
export function PriceChart(props: { prices: Map<number, number>; fills: ChartFill[]; orders: ChartOrder[]; pricePlaces: number }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Line"> | null>(null);
  const markers = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const lines = useRef<IPriceLine[]>([]);
  const moved = useRef(false); // the user zoomed or scrolled: new data keeps their view

  useEffect(() => {
    if (!box.current) return;
    const c = createChart(box.current, {
      autoSize: true, // fills .chart-price (fixed height in the CSS)
      localization: { timeFormatter: localTime },
      timeScale: { timeVisible: true, secondsVisible: true, tickMarkFormatter: localTick },
      handleScroll: true,
      handleScale: true,
    });
    const s = c.addSeries(LineSeries, { color: "#0969da", lineWidth: 2 });
    chart.current = c;
    series.current = s;
    const mine = () => {
      moved.current = true;
    };
    box.current.addEventListener("wheel", mine, { passive: true });
    box.current.addEventListener("pointerdown", mine);
    markers.current = createSeriesMarkers(s, []);
    return () => {
      c.remove();
      chart.current = null;
      series.current = null;
      markers.current = null;
      lines.current = [];
    };
  }, []);

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    const places = Math.max(0, Math.min(props.pricePlaces, 8));
    s.applyOptions({ priceFormat: { type: "price", precision: places, minMove: 1 / 10 ** places } });
    const bySecond = new Map<number, number>();
    for (const [ns, price] of [...props.prices.entries()].sort((a, b) => a[0] - b[0])) bySecond.set(Math.floor(ns / 1e9), price);
    const data = [...bySecond.entries()].sort((a, b) => a[0] - b[0]).map(([t, value]) => ({ time: t as UTCTimestamp, value }));
    s.setData(data);
    if (!moved.current && data.length > 1) chart.current?.timeScale().fitContent(); // all of it, until the user zooms or scrolls
    const marks: SeriesMarker<Time>[] = props.fills
      .map((f) => ({
        time: Math.floor(f.ts / 1e9) as UTCTimestamp,
        position: f.side === "buy" ? ("belowBar" as const) : ("aboveBar" as const),
        shape: f.side === "buy" ? ("arrowUp" as const) : ("arrowDown" as const),
        color: f.side === "buy" ? BUY_COLOUR : SELL_COLOUR,
        id: f.id,
      }))
      .sort((a, b) => (a.time as number) - (b.time as number));
    markers.current?.setMarkers(marks);
    for (const line of lines.current) s.removePriceLine(line);
    lines.current = props.orders.map((o) =>
      s.createPriceLine({
        price: Number(o.price),
        color: o.side === "buy" ? BUY_COLOUR : SELL_COLOUR,
        lineStyle: LineStyle.Dashed,
        lineWidth: 1,
        axisLabelVisible: true,
        title: `${o.side} ${fmtDec(o.qty)}`,
      }),
    );
  }, [props.prices, props.fills, props.orders, props.pricePlaces]);

  return <div class="chart chart-price" ref={box} data-testid="price-chart" role="figure" aria-label="Price chart with the bot's fills and resting orders" />;
}

/** Time axis labels in the browser's zone, 24-hour like the price chart's: "13:05:09", or
 * "08-09 13:05" when the ticks span more than a day (`ticks` in seconds). */
function timeTicks(ticks: number[]): string[] {
  const span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0;
  const p = (n: number) => String(n).padStart(2, "0");
  return ticks.map((t) => {
    const d = new Date(t * 1000);
    const clock = `${p(d.getHours())}:${p(d.getMinutes())}`;
    return span > 86_400 ? `${p(d.getMonth() + 1)}-${p(d.getDate())} ${clock}` : `${clock}:${p(d.getSeconds())}`;
  });
}

/** The P&L chart: realized, unrealized and total P&L after each fill (quote asset). */
export function PnlChart(props: { points: PnlPoint[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    if (!box.current) return;
    const width = box.current.clientWidth || 600;
    const opts: uPlot.Options = {
      width,
      height: 240,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "realized", stroke: "#1a7f37", width: 2 },
        { label: "unrealized", stroke: "#bf8700", width: 2 },
        { label: "total", stroke: "#0969da", width: 2 },
      ],
      axes: [{ space: 90, values: (_u, ticks) => timeTicks(ticks) }, { values: (_u, ticks) => ticks.map((t) => fmtDec(String(t))) }],
    };
    const p = new uPlot(opts, [[], [], [], []], box.current);
    plot.current = p;
    const resize = () => {
      if (box.current) p.setSize({ width: box.current.clientWidth || width, height: 240 });
    };
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      p.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    const pts = [...props.points].sort((a, b) => a.ts_event - b.ts_event);
    plot.current?.setData([
      pts.map((p) => p.ts_event / 1e9),
      pts.map((p) => Number(p.realized_pnl)),
      pts.map((p) => Number(p.unrealized_pnl)),
      pts.map((p) => Number(p.pnl)),
    ]);
  }, [props.points]);

  return <div class="chart" ref={box} data-testid="pnl-chart" role="figure" aria-label="Realized and unrealized P&L over time" />;
}
