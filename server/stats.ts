/** The JSON behind GET /stats: services, their rings and queues, every connected session, counters. */
import type { HttpSide } from './answer.js';
import type { Auth } from './auth/auth.js';
import type { Counters } from './counters.js';
import type { Dispatcher } from './dispatcher.js';
import type { InProcessWorker } from './in-process-worker.js';
import type { LongPoll } from './longpoll.js';
import type { Mesh } from './mesh/mesh.js';
import type { HubOptions } from './options.js';
import type { WorkerSession } from './worker-session.js';

/** What /stats reads; the hub provides it. */
export interface StatsSource {
  readonly hubId: string;
  readonly state: string;
  readonly startedAt: number;
  readonly options: HubOptions;
  readonly dispatcher: Dispatcher;
  readonly longPoll: LongPoll;
  readonly sessions: ReadonlySet<WorkerSession>;
  readonly counters: Counters;
  readonly mesh: Mesh;
  readonly http: HttpSide;
  readonly auth: Auth;
  readonly local: InProcessWorker;
}

export function buildStats(hub: StatsSource) {
  const d = hub.dispatcher;
  const o = hub.options;
  const leased = hub.longPoll.leasedByService();
  const services = [...d.services.values()].map((svc) => {
    let inflight = 0;
    let workers = 0;
    for (const r of svc.regs) {
      inflight += r.inflight;
      if (r.ownsKeys()) workers++;
    }
    return {
      name: svc.name,
      workers,
      queued: svc.queued,
      inflight,
      longPollWaiting: hub.longPoll.waiting.get(svc.name) ?? 0,
      longPollLeased: leased.get(svc.name) ?? 0,
      served: svc.isServed(o.serviceLingerMs),
      ring: {
        epoch: svc.ring.epoch,
        digest: svc.ring.digest().toString(16).padStart(8, '0'),
        members: svc.ring.members().map((m) => ({ instanceId: m.instanceId, hubId: m.hubId, weight: m.weight })),
      },
    };
  });
  const workers = [...hub.sessions].map((s) => ({
    ...s.identity(),
    state: s.state,
    connectedAt: new Date(s.openedAt).toISOString(),
    blocked: s.blocked,
    queuedBytes: s.queuedBytes,
    inflight: s.inflight.size,
    requests: s.requests.size,
    services: [...s.regs.values()].map((r) => ({ name: r.service, credit: r.concurrency, inflight: r.inflight, weight: r.weight })),
  }));
  // In-process handlers are listed like a session (id 0), so operators see them beside the workers.
  const local = hub.local.services();
  if (local.length > 0) {
    workers.unshift({
      sessionId: 0,
      instanceId: hub.local.instanceId,
      role: 'worker',
      name: 'in-process',
      token: undefined,
      remoteAddress: 'in-process',
      state: 'open',
      connectedAt: new Date(hub.startedAt).toISOString(),
      blocked: false,
      queuedBytes: 0,
      inflight: hub.local.inflight,
      requests: 0,
      services: local,
    });
  }
  let sessionQueuedBytes = 0;
  for (const s of hub.sessions) sessionQueuedBytes += s.queuedBytes;
  const counted = hub.counters.snapshot();
  return {
    hubId: hub.hubId,
    state: hub.state,
    uptimeMs: Date.now() - hub.startedAt,
    openJobs: d.open,
    longPoll: { waiting: hub.longPoll.totalWaiting, openAttempts: hub.longPoll.leases.size },
    queuedBytes: d.queuedBytes,
    http: { callerRequests: hub.http.callerRequests, unanswered: hub.http.unanswered },
    jobs: counted.jobs,
    sockets: { connections: hub.sessions.size, queuedBytes: sessionQueuedBytes, ...counted.sockets },
    services,
    workers,
    mesh: hub.mesh.stats(),
    auth: { enabled: hub.auth.enabled, tokens: hub.auth.size, ...counted.auth },
  };
}
