/**
 * The bench harness: `npm run bench -- [--quick] [--scenario NAME[,NAME]] [--reps N] [--duration S] [--warmup S]`.
 * Runs every scenario once per round (fresh processes, warm-up, one measured window), the load generator on one core and
 * everything under test on the other, and prints a table with the ratios to the baselines
 * measured in the same run. Writes bench/out/results-*.json and an SVG chart; a full run
 * appends its summary to bench/RESULTS.md.
 */
import { execSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitOnInvalidOption, parseCount, parseFlags } from '../server/args.js';
import { renderChart } from './chart.js';
import { CLOCK_TICKS, cpuMicros, hasTaskset, peakRss, start, which } from './procs.js';
import { describe, RESULTS_HEADER, resultsSection, table } from './report.js';
import type { Rep, Result } from './result.js';
import { available, LOAD_CPU, referenceCanRun, referenceTwin, SCENARIOS, type Scenario, SERVER_CPU, type Target } from './scenarios.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const { quick, pick, reps, durationS, warmupS, reference } = exitOnInvalidOption('bench', () => {
  const { values } = parseFlags(process.argv.slice(2), [
    { flag: '--quick', kind: 'boolean' },
    { flag: '--scenario', kind: 'string' },
    { flag: '--reps', kind: 'int' },
    { flag: '--duration', kind: 'int' },
    { flag: '--warmup', kind: 'int' },
    { flag: '--reference', kind: 'string' },
  ]);
  const quick = values.has('--quick');
  // Zero rounds or a zero-second window measure nothing; a zero-second warm-up is allowed, as before.
  const num = (flag: string, min: number, fallback: number) => {
    const raw = values.get(flag) as string | undefined;
    return raw === undefined ? fallback : parseCount(flag, raw, min);
  };
  return {
    quick,
    pick: (values.get('--scenario') as string | undefined)?.split(','),
    reps: num('--reps', 1, quick ? 1 : 3),
    durationS: num('--duration', 1, quick ? 3 : 10),
    warmupS: num('--warmup', 0, quick ? 1 : 3),
    reference: values.get('--reference') as string | undefined,
  };
});
const QUICK_SET = ['http-1w', 'limit-batched', 'ws-caller', 'meshage-node'];
/** Steal above this share of one core makes a window count as disturbed. */
const STEAL_LIMIT_PCT = 10;
const MAX_REMEASURE = quick ? 0 : 3;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function wrkScript(s: Scenario, dir: string): string {
  const body = JSON.stringify({ data: 'x'.repeat(Math.max(0, s.bodyBytes - 11)) });
  const file = path.join(dir, `${s.name}.lua`);
  const request = s.path === 'keyed' ? `request = function() return wrk.format(nil, "/api/echo/" .. math.random(1, 1000000)) end\n` : '';
  writeFileSync(
    file,
    `wrk.method = "POST"
wrk.body = ${JSON.stringify(body)}
wrk.headers["Content-Type"] = "application/json"
${Object.entries(s.headers ?? {})
  .map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}\n`)
  .join('')}${request}done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"errors":%d,"non2xx":%d,"seconds":%f,"p50us":%d,"p99us":%d,"p999us":%d}\\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`,
  );
  return file;
}

interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  p50us: number;
  p99us: number;
  p999us: number;
  loadCpuUs?: number;
}

async function runLoad(s: Scenario, t: Target, seconds: number, dir: string): Promise<LoadResult> {
  if (s.load === 'wrk' && t.urls && t.urls.length > 1) return runSplitLoad(s, t.urls, seconds, dir);
  let p: ReturnType<typeof start>;
  if (s.load === 'wrk') {
    const url = t.url + (s.path === 'keyed' ? '/' : s.path);
    p = start(LOAD_CPU, 'wrk', ['-t1', `-c${s.connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', wrkScript(s, dir), url]);
  } else if (s.load === 'ws-caller') {
    p = start(LOAD_CPU, process.execPath, [
      path.join(here, 'drivers/ws-caller.js'),
      t.url,
      s.path,
      String(s.connections),
      String(seconds * 1000),
      String(s.bodyBytes),
    ]);
  } else {
    p = start(LOAD_CPU, process.execPath, [
      path.join(here, 'baselines/nats-peer.js'),
      'requester',
      t.url,
      String(s.connections),
      String(seconds * 1000),
      String(s.bodyBytes),
    ]);
  }
  const out = await p.output();
  const line = out
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`${s.name}: load generator printed no result:\n${out.slice(-1000)}`);
  const r = JSON.parse(line) as LoadResult & { non2xx?: number };
  return { ...r, errors: r.errors + (r.non2xx ?? 0) };
}

/**
 * One wrk per URL (a mesh: each hub gets an equal share of the connections), run together.
 * Requests and errors add up; p50 is their request-weighted mean and p99/p99.9 the worst of
 * them (wrk cannot merge histograms across processes).
 */
async function runSplitLoad(s: Scenario, urls: string[], seconds: number, dir: string): Promise<LoadResult> {
  const script = wrkScript(s, dir);
  const per = Math.max(1, Math.round(s.connections / urls.length));
  const outs = await Promise.all(
    urls.map((u) =>
      start(LOAD_CPU, 'wrk', ['-t1', `-c${per}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, u + (s.path === 'keyed' ? '/' : s.path)]).output(),
    ),
  );
  const rs = outs.map((out) => {
    const line = out
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('{"requests"'));
    if (!line) throw new Error(`${s.name}: a load generator printed no result:\n${out.slice(-1000)}`);
    return JSON.parse(line) as LoadResult & { non2xx?: number };
  });
  const requests = rs.reduce((n, r) => n + r.requests, 0);
  return {
    requests,
    errors: rs.reduce((n, r) => n + r.errors + (r.non2xx ?? 0), 0),
    seconds: Math.max(...rs.map((r) => r.seconds)),
    p50us: rs.reduce((n, r) => n + r.p50us * r.requests, 0) / Math.max(1, requests),
    p99us: Math.max(...rs.map((r) => r.p99us)),
    p999us: Math.max(...rs.map((r) => r.p999us)),
  };
}

/** CPU time of the measured processes: the hub (or baseline front), or every hub of a mesh. */
function measuredCpu(t: Target): number {
  let sum = cpuMicros(t.measured.pid);
  for (const p of t.alsoMeasured ?? []) sum += cpuMicros(p.pid);
  return sum;
}

/** CPU time of every process on the server core (hub or baseline, and their workers). */
function totalCpu(t: Target): number {
  let sum = 0;
  for (const p of t.procs) {
    try {
      sum += cpuMicros(p.pid);
    } catch {
      // exited
    }
  }
  return sum;
}

/** CPU time the hypervisor took from this machine (steal), in microseconds, from /proc/stat. */
function stealMicros(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  return (Number(cpu[8] ?? 0) / CLOCK_TICKS) * 1e6;
}

/** One repetition: fresh processes, a warm-up, one measured window, everything stopped. */
async function runRep(s: Scenario, dir: string): Promise<Rep & { peakRssMB: number }> {
  const t = await s.start();
  try {
    await runLoad(s, t, warmupS, dir);
    const cpu0 = measuredCpu(t);
    const all0 = totalCpu(t);
    const steal0 = stealMicros();
    const r = await runLoad(s, t, durationS, dir);
    const cpu1 = measuredCpu(t);
    const all1 = totalCpu(t);
    const per = (us: number) => (r.requests ? us / r.requests : 0);
    // Steal over both cores, as a share of one core's time in the window.
    const stealPct = ((stealMicros() - steal0) / (r.seconds * 1e6)) * 100;
    return {
      rps: r.requests / r.seconds,
      p50us: r.p50us,
      p99us: r.p99us,
      p999us: r.p999us,
      errors: r.errors,
      cpuUsPerReq: per(cpu1 - cpu0),
      serverCpuUsPerReq: per(all1 - all0),
      stealPct,
      loadCpuUsPerReq: r.loadCpuUs === undefined ? null : per(r.loadCpuUs),
      peakRssMB: peakRss(t.measured.pid) / 1024 / 1024,
    };
  } finally {
    for (const p of t.procs) await p.stop();
  }
}

function summarize(s: Scenario, repsOut: Rep[], peakRssMB: number): Result {
  const m = (f: (r: Rep) => number) => median(repsOut.map(f));
  return {
    name: s.name,
    description: s.description,
    kind: s.kind,
    bodyBytes: s.bodyBytes,
    connections: s.connections,
    reps: repsOut,
    rps: m((r) => r.rps),
    p50us: m((r) => r.p50us),
    p99us: m((r) => r.p99us),
    p999us: m((r) => r.p999us),
    cpuUsPerReq: m((r) => r.cpuUsPerReq),
    serverCpuUsPerReq: m((r) => r.serverCpuUsPerReq),
    stealPct: m((r) => r.stealPct),
    loadCpuUsPerReq: repsOut[0]?.loadCpuUsPerReq === null ? null : m((r) => r.loadCpuUsPerReq ?? 0),
    peakRssMB,
    errors: repsOut.reduce((a, r) => a + r.errors, 0),
    ratios: {},
  };
}

/**
 * This build against the reference build, scenario by scenario: hub CPU per request (the most
 * stable figure here) and requests/s, each as the median of the per-round ratios.
 */
function compareWithReference(results: Result[], dir: string) {
  const refCommit = commitOf(path.resolve(dir));
  const rows = results
    .filter((r) => r.kind === 'astromesh' && !r.name.endsWith('@ref'))
    .flatMap((r) => {
      const ref = results.find((x) => x.name === `${r.name}@ref`);
      if (!ref) return [];
      const perRound = (f: (rep: Rep) => number) => median(r.reps.map((rep, i) => f(rep) / f(ref.reps[i]!)).filter((x) => Number.isFinite(x)));
      return [
        { scenario: r.name, hubCpu: r.cpuUsPerReq, refHubCpu: ref.cpuUsPerReq, cpuRatio: perRound((x) => x.cpuUsPerReq), rpsRatio: perRound((x) => x.rps) },
      ];
    });
  const table = [
    `this build (${commit()}) against the reference build (${refCommit}), medians of per-round ratios:`,
    '| scenario | hub CPU µs/req | reference µs/req | CPU ratio | req/s ratio |',
    '|---|---|---|---|---|',
    ...rows.map((x) => `| ${x.scenario} | ${x.hubCpu.toFixed(1)} | ${x.refHubCpu.toFixed(1)} | ${x.cpuRatio.toFixed(3)} | ${x.rpsRatio.toFixed(3)} |`),
  ].join('\n');
  return { rows: { dir, commit: refCommit, scenarios: rows }, table };
}

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
}

function commit(): string {
  return commitOf(repoRoot);
}

function commitOf(dir: string): string {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  if (!which('wrk')) {
    console.error('bench: wrk is not installed (Debian package "wrk"; .ci/run installs it)');
    process.exit(2);
  }
  const dir = path.join(repoRoot, 'bench/out');
  mkdirSync(dir, { recursive: true });
  const wanted = SCENARIOS.filter((s) => (pick ? pick.includes(s.name) : quick ? QUICK_SET.includes(s.name) : true));
  if (pick && wanted.length !== pick.length) {
    console.error(`bench: unknown scenario; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  const layout = hasTaskset
    ? `load generator on cpu${LOAD_CPU}; hub, workers and baselines on cpu${SERVER_CPU} (taskset)`
    : 'taskset missing: processes not pinned';
  console.log(
    `astromesh bench — ${new Date().toISOString()} — commit ${commit()}\nmachine: ${machine()}\nlayout: ${layout}\nrounds: ${reps}, each scenario ${durationS} s after ${warmupS} s warm-up with fresh processes; medians, ratios within rounds`,
  );
  const skipped: string[] = [];
  const runnable: Scenario[] = [];
  if (reference && !existsSync(path.resolve(reference, 'dist/server/cli.js'))) {
    console.error(`bench: --reference ${reference} holds no dist/server/cli.js (build it there first)`);
    process.exit(2);
  }
  for (const s of wanted) {
    if (available(s)) {
      runnable.push(s);
      // The reference build's twin runs right after, in the same round.
      if (reference && referenceCanRun(s, reference)) runnable.push(referenceTwin(s, reference));
    } else {
      skipped.push(`${s.name} (needs ${s.requires}, not installed)`);
      console.log(`skipping ${s.name}: ${s.requires} is not installed`);
    }
  }
  // Rounds, not scenario after scenario: round i runs every scenario once, so a slow minute
  // on this shared machine hits a scenario and its baselines alike, and each ratio is taken
  // within one round (then the median of the rounds' ratios is reported).
  const repsOf = new Map<string, Rep[]>(runnable.map((s) => [s.name, []]));
  const peak = new Map<string, number>();
  const remeasured = new Map<string, number>();
  for (let round = 1; round <= reps; round++) {
    for (const s of runnable) {
      let r = await runRep(s, dir);
      // A window in which the hypervisor took a large share of the CPU measures the host, not
      // the code: measure it again (a few times at most, then keep what we have).
      for (let again = 0; again < MAX_REMEASURE && r.stealPct > STEAL_LIMIT_PCT; again++) {
        process.stderr.write(`  round ${round}/${reps} ${s.name}: ${Math.round(r.rps)} req/s with steal ${r.stealPct.toFixed(0)} %, measuring again\n`);
        remeasured.set(s.name, (remeasured.get(s.name) ?? 0) + 1);
        r = await runRep(s, dir);
      }
      repsOf.get(s.name)!.push(r);
      peak.set(s.name, Math.max(peak.get(s.name) ?? 0, r.peakRssMB));
      process.stderr.write(
        `  round ${round}/${reps} ${s.name}: ${Math.round(r.rps)} req/s, p99 ${(r.p99us / 1000).toFixed(2)} ms, hub ${r.cpuUsPerReq.toFixed(1)} µs/req, steal ${r.stealPct.toFixed(0)} %${r.errors ? `, ${r.errors} errors` : ''}\n`,
      );
    }
  }
  const results = runnable.map((s) => ({ ...summarize(s, repsOf.get(s.name)!, peak.get(s.name) ?? 0), remeasured: remeasured.get(s.name) ?? 0 }));
  for (const r of results) {
    const s = runnable.find((x) => x.name === r.name)!;
    for (const b of s.compareWith ?? []) {
      const base = results.find((x) => x.name === b);
      if (!base) continue;
      const perRound = r.reps.map((rep, i) => rep.rps / (base.reps[i]?.rps || NaN)).filter((x) => Number.isFinite(x));
      if (perRound.length) r.ratios[b] = median(perRound);
    }
    for (const b of s.compareCpuWith ?? []) {
      const base = results.find((x) => x.name === b);
      if (!base) continue;
      const perRound = r.reps.map((rep, i) => rep.cpuUsPerReq / (base.reps[i]?.cpuUsPerReq || NaN)).filter((x) => Number.isFinite(x));
      if (perRound.length) r.ratios[`${b} hub CPU per request`] = median(perRound);
    }
  }
  const summary = table(results);
  console.log(`\n${summary}\n`);
  for (const r of results) console.log(`${r.name}: ${describe(r)}`);
  if (skipped.length) console.log(`skipped: ${skipped.join('; ')}`);
  const againstReference = reference ? compareWithReference(results, reference) : null;
  if (againstReference) console.log(`\n${againstReference.table}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = {
    date: new Date().toISOString(),
    commit: commit(),
    machine: machine(),
    layout,
    reps,
    durationS,
    warmupS,
    quick,
    skipped,
    results,
    ...(againstReference ? { reference: againstReference.rows } : {}),
  };
  writeFileSync(path.join(dir, `results-${stamp}.json`), JSON.stringify(json, null, 2));
  writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(json, null, 2));
  const svg = renderChart(results);
  writeFileSync(path.join(dir, 'latest.svg'), svg);
  if (!quick && !pick) {
    writeFileSync(path.join(repoRoot, 'bench/chart.svg'), svg);
    const md = resultsSection(json);
    const file = path.join(repoRoot, 'bench/RESULTS.md');
    if (!existsSync(file)) writeFileSync(file, RESULTS_HEADER);
    appendFileSync(file, md);
    console.log('appended to bench/RESULTS.md');
  }
  console.log(`wrote bench/out/latest.json and bench/out/latest.svg`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
