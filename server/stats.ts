/** The JSON behind GET /stats: services, their queues, and every connected session. */
import type { Hub } from './hub.js';

export function buildStats(hub: Hub) {
  const d = hub.dispatcher;
  const o = hub.options;
  const leased = hub.longPoll.leasedByService();
  const services = [...d.services.values()].map((svc) => {
    let inflight = 0;
    let workers = 0;
    for (const r of svc.regs) {
      inflight += r.inflight;
      if (!r.unkeyedOnly) workers++;
    }
    return {
      name: svc.name,
      workers,
      queued: svc.queued,
      inflight,
      longPollWaiting: hub.longPoll.waiting.get(svc.name) ?? 0,
      longPollLeased: leased.get(svc.name) ?? 0,
      served: svc.isServed(o.serviceLingerMs),
    };
  });
  const workers = [...hub.sessions].map((s) => ({
    sessionId: s.sessionId,
    instanceId: s.instanceId,
    role: s.role,
    name: s.name || undefined,
    state: s.state,
    remoteAddress: s.remoteAddress,
    connectedAt: new Date(s.openedAt).toISOString(),
    blocked: s.blocked,
    inflight: s.inflight.size,
    requests: s.requests.size,
    services: [...s.regs.values()].map((r) => ({ name: r.service, credit: r.concurrency, inflight: r.inflight, weight: r.weight })),
  }));
  return {
    hubId: hub.hubId,
    state: hub.state,
    uptimeMs: Date.now() - hub.startedAt,
    openJobs: d.open,
    longPoll: { waiting: hub.longPoll.totalWaiting, openAttempts: hub.longPoll.leases.size },
    queuedBytes: d.queuedBytes,
    http: { callerRequests: hub.http.callerRequests, unanswered: hub.http.unanswered },
    jobs: d.counters,
    sockets: { connections: hub.sessions.size, ...hub.counters },
    services,
    workers,
  };
}
