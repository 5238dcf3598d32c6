/**
 * GET /metrics: Prometheus text exposition through prom-client. Nothing here runs per request:
 * every collector reads, at scrape time, the plain counters and fields the hot path keeps
 * (Counters, the dispatcher's RequestTally, services, sessions, peer links).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type MetricObjectWithValues, type MetricValueWithName, Registry } from 'prom-client';
import { ERROR_CODES, LATENCY_BUCKETS_S, OTHER_SERVICE, type RequestTally, type ServiceTally, STATUS_CLASSES } from './request-tally.js';
import { ServiceOrigin, type ServiceState } from './service-queue.js';
import type { StatsSource } from './stats.js';

/** A registry with the hub's metrics and prom-client's process and event-loop metrics. */
export function hubMetrics(hub: StatsSource, tally: RequestTally): Registry {
  const registry = new Registry();
  const registers = [registry];
  // Conventional names (process_*, nodejs_*), unprefixed, so stock Node.js dashboards work.
  collectDefaultMetrics({ register: registry });

  const tallies = (): ServiceTally[] => [...tally.services.values(), tally.other];

  new Counter({
    name: 'astromesh_requests_total',
    help: 'Requests answered, by service, status class and error code ("none" for a reply that is not an error)',
    labelNames: ['service', 'status_class', 'error_code'] as const,
    registers,
    collect() {
      this.reset();
      const n = ERROR_CODES.length;
      for (const t of tallies()) {
        const o = t.outcomes;
        for (let i = 0; i < o.length; i++) {
          if (o[i] === 0) continue;
          this.inc({ service: t.name, status_class: STATUS_CLASSES[(i / n) | 0], error_code: ERROR_CODES[i % n] }, o[i]);
        }
      }
    },
  });

  new TallyHistogram(tallies, registers);

  const perService = (name: string, help: string, read: (s: ServiceView) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['service'] as const,
      registers,
      collect() {
        this.reset();
        for (const [service, v] of byService(hub, tally, read)) this.set({ service }, v);
      },
    });
  perService('astromesh_queue_depth', 'Jobs queued, waiting for a worker', (s) => s.svc.queued);
  perService('astromesh_inflight_jobs', 'Jobs handed to a consumer (worker, long-poll, peer hub) and not yet answered', (s) => s.inflight);
  perService('astromesh_workers', 'Worker instances on this hub serving the service (WebSocket workers, and its in-process handlers as one)', (s) => s.workers);

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge('astromesh_open_jobs', 'Jobs accepted and not yet settled', () => hub.dispatcher.open);
  gauge('astromesh_queued_bytes', 'Bytes of request bodies waiting in queues', () => hub.dispatcher.queuedBytes);
  gauge('astromesh_longpoll_waiting', 'Long-polls waiting for a job', () => hub.longPoll.totalWaiting);
  gauge('astromesh_longpoll_leased', 'Jobs handed to long-pollers and not yet answered (attempts open)', () => hub.longPoll.leases.size);
  new Gauge({
    name: 'astromesh_sessions',
    help: 'WebSocket sessions connected, by role (worker or client)',
    labelNames: ['role'] as const,
    registers,
    collect() {
      let workers = 0;
      for (const s of hub.sessions) if (s.role === 'worker') workers++;
      this.set({ role: 'worker' }, workers);
      this.set({ role: 'client' }, hub.sessions.size - workers);
    },
  });

  const j = hub.counters.jobs;
  const s = hub.counters.sockets;
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter('astromesh_redeliveries_total', 'Jobs run again after their worker vanished or their lease ran out', () => j.redelivered);
  counter('astromesh_deadline_expiries_total', 'Jobs whose deadline passed before a reply (504)', () => j.expired);
  counter('astromesh_lease_expiries_total', 'Long-poll attempts whose lease ran out without a reply', () => j.leasesExpired);
  counter('astromesh_late_replies_total', 'Replies to jobs already settled (late or duplicate), dropped', () => j.lateReplies);
  counter('astromesh_unknown_replies_total', 'Replies naming no job the hub knows, dropped', () => j.unknownReplies);
  counter('astromesh_protocol_errors_total', 'WebSocket frames refused as protocol violations', () => s.protocolErrors);
  counter('astromesh_connections_refused_total', 'WebSocket connections refused at a connection limit', () => s.connectionsRefused);
  counter('astromesh_slow_consumers_total', 'Sessions closed because they did not read their frames', () => s.slowConsumers);
  new Counter({
    name: 'astromesh_http_refused_total',
    help: 'HTTP requests the hub answered with an error of its own before any job existed for them (bad name, key or timeout, 401/403, 404, 413 or 431 by the head, long-poll and reply refusals, WebSocket upgrades refused), by error code',
    labelNames: ['error_code'] as const,
    registers,
    collect() {
      this.reset();
      for (const [code, n] of hub.http.refused) this.inc({ error_code: code }, n);
    },
  });
  new Counter({
    name: 'astromesh_auth_failures_total',
    help: 'Refusals by auth: unauthorized (no valid token, 401) or forbidden (no right, 403)',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      this.reset();
      const a = hub.counters.auth;
      this.inc({ reason: 'unauthorized' }, a.unauthorized);
      this.inc({ reason: 'forbidden' }, a.forbidden);
    },
  });

  // The peers' series are rebuilt at each scrape: a forgotten peer's are gone.
  new Gauge({
    name: 'astromesh_peer_up',
    help: 'Whether the link to a peer hub is open (1) or not (0)',
    labelNames: ['peer'] as const,
    registers,
    collect() {
      this.reset();
      for (const p of hub.mesh.peerMetrics()) this.set({ peer: p.hubId }, p.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'astromesh_peer_rtt_seconds',
    help: 'Last ping round trip to a peer hub',
    labelNames: ['peer'] as const,
    registers,
    collect() {
      this.reset();
      for (const p of hub.mesh.peerMetrics()) if (p.up && p.rttMs !== null) this.set({ peer: p.hubId }, p.rttMs / 1000);
    },
  });
  new Counter({
    name: 'astromesh_peer_forwarded_jobs_total',
    help: 'Jobs forwarded to a peer hub (out) and from it (in)',
    labelNames: ['peer', 'direction'] as const,
    registers,
    collect() {
      this.reset();
      for (const p of hub.mesh.peerMetrics()) {
        this.inc({ peer: p.hubId, direction: 'out' }, p.forwardedOut);
        this.inc({ peer: p.hubId, direction: 'in' }, p.forwardedIn);
      }
    },
  });
  return registry;
}

interface ServiceView {
  svc: ServiceState;
  inflight: number;
  workers: number;
}

/**
 * A per-service gauge's values by series name: services that have series of their own, the
 * rest summed under `_other`. Names only long-polls asked for get none.
 */
function byService(hub: StatsSource, tally: RequestTally, read: (s: ServiceView) => number): Map<string, number> {
  const out = new Map<string, number>();
  for (const svc of hub.dispatcher.services.values()) {
    const t = svc.tally ?? (svc.origin === ServiceOrigin.Poll ? null : tally.bind(svc));
    const name = t?.name ?? OTHER_SERVICE;
    let inflight = 0;
    let workers = 0;
    for (const r of svc.regs) {
      inflight += r.inflight;
      if (r.isLocal() && r.ownsKeys()) workers++;
    }
    out.set(name, (out.get(name) ?? 0) + read({ svc, inflight, workers }));
  }
  return out;
}

/** The latency histogram, read from the tallies' fixed buckets rather than observed per request. */
const DURATION = 'astromesh_request_duration_seconds';
const DURATION_HELP = 'Time from a request entering the dispatcher (its body read) to its answer, for requests accepted';

class TallyHistogram extends Histogram<'service'> {
  constructor(
    private readonly tallies: () => ServiceTally[],
    registers: Registry[],
  ) {
    super({
      name: DURATION,
      help: DURATION_HELP,
      labelNames: ['service'],
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    });
  }

  /** The registry's exposition reads this when it exists (prom-client's Histogram has it), not get(). */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<'service'>>> {
    return this.get();
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<'service'>>> {
    const values: MetricValueWithName<'service' | 'le'>[] = [];
    for (const t of this.tallies()) {
      if (t.latencyCount === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < t.buckets.length; i++) {
        cumulative += t.buckets[i]!;
        const le = i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i]! : '+Inf';
        values.push({ metricName: `${DURATION}_bucket`, labels: { service: t.name, le }, value: cumulative });
      }
      values.push({ metricName: `${DURATION}_sum`, labels: { service: t.name }, value: t.latencySumMs / 1000 });
      values.push({ metricName: `${DURATION}_count`, labels: { service: t.name }, value: t.latencyCount });
    }
    // The typings declare `type` as a numeric enum and leave `le` out; the registry reads the
    // string type and any labels, as prom-client's own Histogram returns them.
    const metric = { name: DURATION, help: DURATION_HELP, type: 'histogram', aggregator: 'sum', values };
    return metric as unknown as MetricObjectWithValues<MetricValueWithName<'service'>>;
  }
}
