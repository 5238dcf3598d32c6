/** Reading a hub's GET /metrics in tests: the Prometheus text format, sample by sample. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format (comments skipped; label values unescaped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** GET /metrics of a hub, parsed; throws unless it answers 200. */
export async function scrape(hub: { url: string }, token?: string): Promise<Metrics> {
  const r = await fetch(`${hub.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await r.text();
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}: ${text}`);
  return new Metrics(parseMetrics(text), r.headers.get('content-type') ?? '');
}

export class Metrics {
  constructor(
    readonly samples: Sample[],
    readonly contentType: string,
  ) {}

  /** Samples of `name` whose labels include `labels`. */
  find(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The sum of the matching samples, or undefined when there is none. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    const found = this.find(name, labels);
    return found.length === 0 ? undefined : found.reduce((a, s) => a + s.value, 0);
  }

  /** Every value the label `label` takes in any sample. */
  labelValues(label: string): Set<string> {
    return new Set(this.samples.flatMap((s) => (label in s.labels ? [s.labels[label]!] : [])));
  }
}
