/** A small SVG chart: one bar per scenario for requests/s, with its p99 latency written beside it. */
import type { Result } from './result.js';

export function renderChart(results: Pick<Result, 'name' | 'rps' | 'p99us' | 'kind'>[]): string {
  const rowH = 26;
  const left = 130;
  const width = 760;
  const barMax = width - left - 190;
  const max = Math.max(1, ...results.map((r) => r.rps));
  const h = 40 + results.length * rowH + 10;
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const rows = results.map((r, i) => {
    const y = 40 + i * rowH;
    const w = Math.max(1, (r.rps / max) * barMax);
    const color = r.kind === 'astromesh' ? '#2b6cb0' : '#a0aec0';
    return (
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(r.name)}</text>` +
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>` +
      `<text x="${left + w + 6}" y="${y + 15}">${Math.round(r.rps).toLocaleString('en-US')} req/s · p99 ${(r.p99us / 1000).toFixed(2)} ms</text>`
    );
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" font-family="sans-serif" font-size="12"><title>astromesh bench</title>` +
    `<text x="10" y="20" font-size="14" font-weight="bold">astromesh bench: requests/s (bar) and p99 latency; blue = astromesh, grey = baselines</text>` +
    rows.join('') +
    '</svg>\n'
  );
}
