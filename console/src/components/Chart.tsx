// Hand-drawn SVG charts (no chart library: the bundle stays small). The
// caller gives an aria-label summary; the data is also in a table.
import { useEffect, useRef, useState } from "preact/hooks";

export interface Series {
  name: string;
  values: number[];
}

const PALETTE = 8;

/**
 * Draws in the container's own pixel width (not a scaled viewBox), so the
 * axis text stays readable from phones to wide screens.
 */
function useWidth<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(720);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setWidth(Math.max(200, el.getBoundingClientRect().width - 20)));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}

function ticks(max: number): number[] {
  if (max <= 0) return [0];
  const step = Math.pow(10, Math.floor(Math.log10(max)));
  const nice = max / step > 5 ? step * 2 : max / step > 2 ? step : step / 2;
  const out = [];
  for (let v = 0; v <= max; v += nice) out.push(v);
  return out;
}

interface BarProps {
  series: Series[];
  labels: string[];
  summary: string;
  testid?: string;
  height?: number;
}

/** Bars per slot, stacked by series. */
export function StackedBars({ series, labels, summary, testid, height = 220 }: BarProps) {
  const [ref, W] = useWidth<HTMLElement>();
  const n = labels.length;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const left = 48;
  const bottom = 20;
  const plotH = height - bottom - 8;
  const slot = (W - left) / Math.max(n, 1);
  const y = (v: number) => 8 + plotH - (v / max) * plotH;
  const every = Math.ceil(n / Math.max(2, Math.floor(W / 90)));
  return (
    <figure class="chart" ref={ref}>
      <svg viewBox={`0 0 ${W} ${height}`} height={height} role="img" aria-label={summary} data-testid={testid}>
        {ticks(max).map((t) => (
          <g key={t}>
            <line class="grid" x1={left} x2={W} y1={y(t)} y2={y(t)} />
            <text class="axis" x={left - 6} y={y(t) + 4} text-anchor="end">{compact(t)}</text>
          </g>
        ))}
        {labels.map((label, i) => {
          let base = 0;
          return (
            <g key={i}>
              <title>{`${label}: ${totals[i]}`}</title>
              {series.map((s, k) => {
                const v = s.values[i] ?? 0;
                const top = base + v;
                const rect = v > 0 && (
                  <rect
                    key={s.name}
                    class={`c${k % PALETTE}`}
                    x={left + i * slot + slot * 0.1}
                    width={Math.max(slot * 0.8, 1)}
                    y={y(top)}
                    height={y(base) - y(top)}
                  />
                );
                base = top;
                return rect;
              })}
              {i % every === 0 && (
                <text class="axis" x={left + i * slot + slot / 2} y={height - 4} text-anchor="middle">{label}</text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption class="legend">
        {series.map((s, k) => (
          <span key={s.name}><i class={`swatch c${k % PALETTE}`} />{s.name}</span>
        ))}
      </figcaption>
    </figure>
  );
}

interface LineProps {
  values: number[];
  summary: string;
  height?: number;
}

/** A small line, e.g. distinct users per hour. */
export function Sparkline({ values, summary, height = 60 }: LineProps) {
  const [ref, W] = useWidth<HTMLDivElement>();
  const max = Math.max(1, ...values);
  const step = W / Math.max(values.length - 1, 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 4 - (v / max) * (height - 8)).toFixed(1)}`);
  return (
    <div class="spark" ref={ref}>
      <svg viewBox={`0 0 ${W} ${height}`} height={height} role="img" aria-label={summary}>
        <polyline points={points.join(" ")} />
      </svg>
    </div>
  );
}

function compact(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(2));
}
