/**
 * GET /metrics on real hubs under a scripted load: requests by service and outcome, the latency
 * histogram, queue depth and in-flight jobs with a busy worker, redeliveries, expiries; the
 * cardinality bounds (services past the cap, worker codes outside the catalogue, long-poll-only
 * names); peer series in a mesh; the monitor right; and --metrics off.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../server/auth/auth.js';
import { converged, startMesh } from '../helpers/mesh.js';
import { scrape } from '../helpers/metrics.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

const FAST = { 'default-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 };
const REQUESTS = 'astromesh_requests_total';
const DURATION = 'astromesh_request_duration_seconds';

describe('metrics: one hub under a scripted load', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub(FAST);
    await startWorker({
      url: hub.url,
      instanceId: 'w1',
      services: [
        { name: 'echo' },
        { name: 'boom', mode: 'fail' },
        { name: 'slow', mode: 'sleep', sleepMs: 400, concurrency: 1 },
        { name: 'hang', mode: 'hang' },
      ],
    });
  });
  after(stopAll);

  it('serves the text exposition format with the hub metrics and the process and event-loop ones', async () => {
    const m = await scrape(hub);
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(m.get(name) !== undefined, name);
    }
    assert.equal(m.get('astromesh_workers', { service: 'echo' }), 1);
    assert.equal(m.get('astromesh_sessions', { role: 'worker' }), 1);
    assert.equal(m.get('astromesh_queue_depth', { service: 'echo' }), 0);
  });

  it('counts requests by service and outcome, and times them in the histogram', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await post(`${hub.url}/service/echo`, `{"i":${i}}`)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await post(`${hub.url}/api/echo/k${i}`, '{}')).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await post(`${hub.url}/service/boom`, '{}')).status, 500);
    assert.equal((await post(`${hub.url}/service/nobody-serves-this`, '{}')).status, 503);
    assert.equal((await post(`${hub.url}/api/broadcast/nobody-serves-this/k`, '{}')).text, '[]');
    const m = await scrape(hub);
    assert.equal(m.get(REQUESTS, { service: 'echo', status_class: '2xx', error_code: 'none' }), 7);
    // The fixture's own code E_FIXTURE is not in the catalogue: it folds into one value.
    assert.equal(m.get(REQUESTS, { service: 'boom', status_class: '5xx', error_code: 'other' }), 2);
    assert.ok(!m.labelValues('error_code').has('E_FIXTURE'));
    // A name the hub does not know creates no series of its own.
    assert.equal(m.get(REQUESTS, { service: '_other', error_code: 'E_NO_WORKERS' }), 1);
    // A broadcast to a stream without handlers is answered, with []: a 2xx, timed.
    assert.equal(m.get(REQUESTS, { service: '_other', status_class: '2xx', error_code: 'none' }), 1);
    assert.equal(m.get(`${DURATION}_count`, { service: '_other' }), 1);
    assert.ok(!m.labelValues('service').has('nobody-serves-this'));

    assert.equal(m.get(`${DURATION}_count`, { service: 'echo' }), 7);
    assert.equal(m.get(`${DURATION}_bucket`, { service: 'echo', le: '+Inf' }), 7);
    const sum = m.get(`${DURATION}_sum`, { service: 'echo' })!;
    assert.ok(sum > 0 && sum < 7 * 5, `sum ${sum}`);
    const buckets = m.find(`${DURATION}_bucket`, { service: 'echo' });
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'buckets are cumulative');
  });

  it('counts the requests refused before a job existed, by code, and not as requests of a service', async () => {
    const REFUSED = 'astromesh_http_refused_total';
    const before = await scrape(hub);
    const was = (code: string) => before.get(REFUSED, { error_code: code }) ?? 0;
    assert.equal((await post(`${hub.url}/service/bad%20name`, '{}')).status, 400);
    assert.equal((await post(`${hub.url}/service/echo`, '{}', { 'x-timeout-ms': 'soon' })).status, 400);
    assert.equal((await post(`${hub.url}/nowhere`, '{}')).status, 404);
    const many: Record<string, string> = {};
    for (let i = 0; i < 35; i++) many[`x-h${i}`] = 'v';
    assert.equal((await post(`${hub.url}/service/echo`, '{}', many)).status, 431);
    const m = await scrape(hub);
    assert.equal(m.get(REFUSED, { error_code: 'E_BAD_NAME' }), was('E_BAD_NAME') + 1);
    assert.equal(m.get(REFUSED, { error_code: 'E_BAD_TIMEOUT' }), was('E_BAD_TIMEOUT') + 1);
    assert.equal(m.get(REFUSED, { error_code: 'E_NOT_FOUND' }), was('E_NOT_FOUND') + 1);
    assert.equal(m.get(REFUSED, { error_code: 'E_HEADERS_TOO_LARGE' }), was('E_HEADERS_TOO_LARGE') + 1);
    // A refusal the request accounting counts (no workers) is not counted twice.
    assert.equal((await post(`${hub.url}/service/nobody-at-all`, '{}')).status, 503);
    assert.equal((await scrape(hub)).get(REFUSED, { error_code: 'E_NO_WORKERS' }), undefined);
  });

  it('times broadcasts like any other request', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await post(`${hub.url}/api/broadcast/echo/b${i}`, '{}')).status, 200);
    const before = (await scrape(hub)).get(`${DURATION}_count`, { service: 'echo' })!;
    assert.equal((await post(`${hub.url}/api/broadcast/echo/b`, '{}')).status, 200);
    const m = await scrape(hub);
    assert.equal(m.get(`${DURATION}_count`, { service: 'echo' }), before + 1);
  });

  it('shows queue depth and in-flight jobs rising behind a busy worker and back to 0', async () => {
    const answers = Array.from({ length: 3 }, (_, i) => post(`${hub.url}/service/slow`, `{"s":${i}}`));
    let busy = await scrape(hub);
    await waitUntil(
      async () => {
        busy = await scrape(hub);
        return busy.get('astromesh_queue_depth', { service: 'slow' }) === 2;
      },
      3000,
      'two jobs queued behind the busy worker',
    );
    assert.equal(busy.get('astromesh_inflight_jobs', { service: 'slow' }), 1);
    assert.ok(busy.get('astromesh_open_jobs')! >= 3);
    for (const r of await Promise.all(answers)) assert.equal(r.status, 200);
    const m = await scrape(hub);
    assert.equal(m.get('astromesh_queue_depth', { service: 'slow' }), 0);
    assert.equal(m.get('astromesh_inflight_jobs', { service: 'slow' }), 0);
    assert.equal(m.get('astromesh_open_jobs'), 0);
    // Each took its 400 ms at the worker, the last two after waiting in the queue as well.
    assert.equal(m.get(`${DURATION}_count`, { service: 'slow' }), 3);
    assert.equal(m.get(`${DURATION}_bucket`, { service: 'slow', le: '0.25' }), 0);
    assert.equal(m.get(`${DURATION}_bucket`, { service: 'slow', le: '5' }), 3);
  });

  it('counts deadline expiries', async () => {
    const before = (await scrape(hub)).get('astromesh_deadline_expiries_total')!;
    assert.equal((await post(`${hub.url}/service/hang`, '{}', { 'x-timeout-ms': '300' })).status, 504);
    const m = await scrape(hub);
    assert.equal(m.get('astromesh_deadline_expiries_total'), before + 1);
    assert.equal(m.get(REQUESTS, { service: 'hang', status_class: '5xx', error_code: 'E_DEADLINE' }), 1);
  });

  it('counts redeliveries after a worker is killed with jobs in flight', { timeout: 20_000 }, async () => {
    const before = (await scrape(hub)).get('astromesh_redeliveries_total')!;
    const doomed = await startWorker({ url: hub.url, instanceId: 'doomed', services: [{ name: 'work', mode: 'sleep', sleepMs: 20_000, concurrency: 2 }] });
    const answers = Array.from({ length: 2 }, (_, i) => post(`${hub.url}/service/work`, `{"i":${i}}`));
    await waitUntil(() => doomed.events('job').length === 2, 3000, 'two jobs at the doomed worker');
    assert.equal((await scrape(hub)).get('astromesh_inflight_jobs', { service: 'work' }), 2);
    await startWorker({ url: hub.url, instanceId: 'rescuer', services: [{ name: 'work', concurrency: 4 }] });
    doomed.kill('SIGKILL');
    for (const r of await Promise.all(answers)) assert.equal(r.status, 200);
    const m = await scrape(hub);
    assert.equal(m.get('astromesh_redeliveries_total'), before + 2);
    assert.equal(m.get(REQUESTS, { service: 'work', status_class: '2xx' }), 2);
    assert.equal(m.get('astromesh_inflight_jobs', { service: 'work' }), 0);
  });

  it('gives names only long-polls asked for no series', async () => {
    const r = await fetch(`${hub.url}/service/polled-only/jobs?wait=1`);
    assert.equal(r.status, 204);
    await r.arrayBuffer();
    const m = await scrape(hub);
    assert.ok(!m.labelValues('service').has('polled-only'), [...m.labelValues('service')].join(', '));
  });
});

describe('metrics: cardinality cap', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ ...FAST, 'metrics-max-services': 2 });
  });
  after(stopAll);

  it('folds services past --metrics-max-services into _other', async () => {
    const names = ['s1', 's2', 's3', 's4'];
    await startWorker({ url: hub.url, services: names.map((name) => ({ name })) });
    for (const name of names) assert.equal((await post(`${hub.url}/service/${name}`, '{}')).status, 200);
    const m = await scrape(hub);
    const services = m.labelValues('service');
    assert.equal(services.size, 3, [...services].join(', '));
    assert.ok(services.has('_other'));
    assert.equal(m.get(REQUESTS, { status_class: '2xx' }), 4);
    assert.equal(m.get(REQUESTS, { service: '_other', status_class: '2xx' }), 2);
    assert.equal(m.get('astromesh_workers', { service: '_other' }), 2);
    assert.equal(m.get(`${DURATION}_count`, { service: '_other' }), 2);
  });
});

describe('metrics: --metrics off', { timeout: 30_000 }, () => {
  it('answers 404 at /metrics and still serves requests', async () => {
    const hub = await startHub({ ...FAST, metrics: 'off' });
    try {
      await startWorker({ url: hub.url, services: [{ name: 'echo' }] });
      assert.equal((await post(`${hub.url}/service/echo`, '{}')).status, 200);
      const r = await fetch(`${hub.url}/metrics`);
      assert.equal(r.status, 404);
      assert.equal(r.headers.get('x-error-code'), 'E_NOT_FOUND');
      await r.arrayBuffer();
    } finally {
      await stopAll();
    }
  });
});

describe('metrics: auth', { timeout: 30_000 }, () => {
  const T = { caller: 'caller-token-0123456789abcdefghij', ops: 'ops-token-0123456789abcdefghijklmn' };
  let hub: HubProc;
  before(async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-metrics-')), 'auth.json');
    const tokens = [
      { name: 'caller', sha256: hashToken(T.caller), request: ['echo'] },
      { name: 'ops', sha256: hashToken(T.ops), monitor: true },
    ];
    writeFileSync(file, JSON.stringify({ tokens }));
    hub = await startHub({ 'auth-file': file });
  });
  after(stopAll);

  it('needs the monitor right: 401 without a token, 403 without the right, 200 with it', async () => {
    const get = (token?: string) => fetch(`${hub.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    const none = await get();
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('x-error-code'), 'E_UNAUTHORIZED');
    await none.arrayBuffer();
    const caller = await get(T.caller);
    assert.equal(caller.status, 403);
    assert.equal(caller.headers.get('x-error-code'), 'E_FORBIDDEN');
    await caller.arrayBuffer();
    const m = await scrape(hub, T.ops);
    assert.equal(m.get('astromesh_auth_failures_total', { reason: 'unauthorized' }), 1);
    assert.equal(m.get('astromesh_auth_failures_total', { reason: 'forbidden' }), 1);
  });
});

describe('metrics: peers of a mesh', { timeout: 60_000 }, () => {
  let hubs: HubProc[];
  before(async () => {
    hubs = await startMesh(['a', 'b', 'c'], { 'peer-forget-ms': 500 });
  });
  after(stopAll);

  it('counts jobs forwarded to and from each peer, shows link state, and drops a forgotten peer', { timeout: 40_000 }, async () => {
    const [a, b, c] = hubs as [HubProc, HubProc, HubProc];
    await startWorker({ url: a.url, instanceId: 'kv-on-a', services: [{ name: 'kv' }] });
    await converged(hubs, 'kv', 1);
    for (let i = 0; i < 6; i++) {
      const r = await post(`${b.url}/api/kv/key-${i}`, '{}');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('x-served-by') ?? '', /^a\//);
    }
    const mb = await scrape(b);
    const ma = await scrape(a);
    assert.equal(mb.get('astromesh_peer_forwarded_jobs_total', { peer: 'a', direction: 'out' }), 6);
    assert.equal(ma.get('astromesh_peer_forwarded_jobs_total', { peer: 'b', direction: 'in' }), 6);
    assert.equal(mb.get(REQUESTS, { service: 'kv', status_class: '2xx' }), 6);
    // A forwarded job is counted where its caller is, not again at the hub that ran it.
    assert.equal(ma.get(REQUESTS, { service: 'kv' }), undefined);
    for (const m of [ma, mb]) assert.deepEqual([...m.labelValues('peer')].sort(), m === ma ? ['b', 'c'] : ['a', 'c']);
    assert.equal(mb.get('astromesh_peer_up', { peer: 'c' }), 1);
    assert.ok(mb.get('astromesh_peer_rtt_seconds', { peer: 'a' })! >= 0);

    // c was learned from a (b's seed): once it is gone past --peer-forget-ms, b forgets it.
    c.kill('SIGKILL');
    await waitUntil(async () => (await scrape(b)).get('astromesh_peer_up', { peer: 'c' }) === 0, 5000, 'c down at b');
    await waitUntil(async () => !(await scrape(b)).labelValues('peer').has('c'), 10_000, "c's series gone at b");
    const after = await scrape(b);
    assert.equal(after.get('astromesh_peer_up', { peer: 'a' }), 1);
    assert.equal(after.get('astromesh_peer_forwarded_jobs_total', { peer: 'a', direction: 'out' }), 6);
    assert.equal(
      (await stats(b)).mesh.peers.some((p: { hubId: string }) => p.hubId === 'c'),
      false,
    );
  });
});
