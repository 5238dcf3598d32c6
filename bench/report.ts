/** Turning bench results into the printed table and the bench/RESULTS.md section. */
import type { Result } from './result.js';

export interface RunRecord {
  date: string;
  commit: string;
  machine: string;
  layout: string;
  reps: number;
  durationS: number;
  warmupS: number;
  skipped: string[];
  results: Result[];
}

export const RESULTS_HEADER = `# Bench results

Produced by \`npm run bench\` (see README, "Benchmarks"); each full run appends a section.
Figures are medians of the repetitions on a shared 2-core machine, so compare rows of the same
run, not runs with each other. A run goes in rounds: each round starts, warms up, measures and
stops every scenario once, so a slow spell of the machine hits a scenario and its baselines
alike. "vs" is the scenario's requests/s divided by each baseline's within the same round, the
median over the rounds. "steal %" is the CPU time the hypervisor took during the window (as a
share of one core): a window with more than 10 % is measured again, up to three times, and the
description says how often that happened. CPU µs/req is the measured process's (the hub, or
the baseline's own server) user + system time over the measured window divided by the
requests served; "cpu0 total" adds every process on the server core (the hub's or baseline's
workers too).
`;

/** A Markdown table: one row per scenario, ratios to baselines in the last column. */
export function table(results: Result[]): string {
  const head = [
    'scenario',
    'req/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'CPU µs/req',
    'cpu0 total µs/req',
    'peak RSS MB',
    'steal %',
    'errors',
    'vs baselines (same run)',
  ];
  const rows = results.map((r) => [
    r.name,
    Math.round(r.rps).toLocaleString('en-US'),
    (r.p50us / 1000).toFixed(2),
    (r.p99us / 1000).toFixed(2),
    (r.p999us / 1000).toFixed(2),
    r.cpuUsPerReq.toFixed(1),
    r.serverCpuUsPerReq === undefined ? '' : r.serverCpuUsPerReq.toFixed(1),
    r.peakRssMB.toFixed(0),
    r.stealPct === undefined ? '' : r.stealPct.toFixed(0),
    String(r.errors),
    Object.entries(r.ratios)
      .map(([n, v]) => `${v.toFixed(2)}× ${n}`)
      .join(', '),
  ]);
  return [head, head.map(() => '---'), ...rows].map((cols) => `| ${cols.join(' | ')} |`).join('\n');
}

/** A scenario's description line: what runs, concurrency, and the Node caller's own CPU. */
export function describe(r: Result): string {
  const load = r.loadCpuUsPerReq === null || r.loadCpuUsPerReq === undefined ? '' : `; caller process ${r.loadCpuUsPerReq.toFixed(1)} µs/req`;
  const again = r.remeasured ? `; ${r.remeasured} window${r.remeasured > 1 ? 's' : ''} measured again for steal` : '';
  return `${r.description} (c=${r.connections}${load}${again})`;
}

/** The section a full run appends to bench/RESULTS.md. */
export function resultsSection(run: RunRecord): string {
  return `\n## ${run.date.slice(0, 10)} — commit ${run.commit}\n\n\`npm run bench\` on ${run.machine}.\n\nLayout: ${run.layout}. ${run.reps} rounds, each scenario ${run.durationS} s after ${run.warmupS} s warm-up with fresh processes; medians, ratios within rounds.${run.skipped.length ? ` Skipped: ${run.skipped.join('; ')}.` : ''}\n\n${table(run.results)}\n\n${run.results.map((r) => `- **${r.name}**: ${describe(r)}`).join('\n')}\n\n![chart](chart.svg)\n`;
}
