/** A series' trend over a run (RSS, fds): a leak shows as growth once the warm-up is left out. */
import { median } from '../lib/stats.js';
import type { SeriesSummary } from './types.js';

/**
 * first/max/last over every point; the least-squares slope (per minute) and the growth trend (median of the last
 * third > 1.2 × median of the first third) over the points from `trendFromMs` on (a warm-up excluded), or over all
 * of them when fewer than 3 are left.
 */
export function summarize(all: Array<{ atMs: number; v: number }>, trendFromMs = 0): SeriesSummary | undefined {
  if (all.length === 0) return undefined;
  const late = all.filter((p) => p.atMs >= trendFromMs);
  const points = late.length >= 3 ? late : all;
  const xs = points.map((p) => p.atMs / 60_000);
  const ys = points.map((p) => p.v);
  const n = points.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const third = Math.max(1, Math.floor(n / 3));
  const firstThirdMedian = median(ys.slice(0, third));
  const lastThirdMedian = median(ys.slice(n - third));
  const vs = all.map((p) => p.v);
  return {
    first: vs[0]!,
    max: Math.max(...vs),
    last: vs[vs.length - 1]!,
    trendFromMs: points[0]!.atMs,
    slopePerMin: sxx === 0 ? 0 : sxy / sxx,
    firstThirdMedian,
    lastThirdMedian,
    growth: n >= 3 && lastThirdMedian > firstThirdMedian * 1.2,
  };
}

