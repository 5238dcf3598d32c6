import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

interface Envelope {
  id: string;
  originalRequest: unknown;
  encoding?: string;
}

/** One legacy long-poll: the envelope, or null on 204. */
async function poll(hub: HubProc, service: string, query = '', signal?: AbortSignal): Promise<Envelope | null> {
  const r = await fetch(`${hub.url}/service/${service}/jobs${query}`, signal ? { signal } : {});
  if (r.status === 204) return null;
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal(r.headers.get('content-type'), 'application/json');
  return (await r.json()) as Envelope;
}

async function answer(hub: HubProc, id: string, body: string, path = ''): Promise<number> {
  const r = await fetch(`${hub.url}/jobs/${id}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const text = await r.text();
  if (r.status === 200) assert.equal(text, '');
  else assert.equal(JSON.parse(text).error.code, 'E_UNKNOWN_JOB');
  return r.status;
}

/** A legacy worker as the original hub's users wrote them: fetch in a loop, nothing else. */
function legacyWorker(hub: HubProc, service: string, stop: { now: boolean }, served: string[]): Promise<void> {
  return (async () => {
    while (!stop.now) {
      const job = await poll(hub, service, '?wait=0.2').catch(() => null);
      if (!job) continue;
      served.push(JSON.stringify(job.originalRequest));
      await answer(hub, job.id, JSON.stringify({ legacy: job.originalRequest }));
    }
  })();
}

describe('legacy HTTP long-poll workers', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'longpoll-wait-ms': 300, 'longpoll-lease-ms': 300, 'default-timeout-ms': 3000, 'max-pollers-per-service': 1500 });
  });
  after(stopAll);

  it('serves callers with a worker that only uses fetch', async () => {
    const stop = { now: false };
    const served: string[] = [];
    const worker = legacyWorker(hub, 'legacy', stop, served);
    await waitUntil(async () => (await stats(hub)).longPoll.waiting === 1, 2000, 'poller waiting');
    for (let i = 0; i < 5; i++) {
      const r = await post(`${hub.url}/service/legacy`, `{"n":${i}}`);
      assert.equal(r.status, 200);
      assert.equal(r.text, `{"legacy":{"n":${i}}}`);
      assert.match(r.headers.get('x-served-by') ?? '', /\/longpoll$/);
    }
    stop.now = true;
    await worker;
    assert.equal(served.length, 5);
  });

  it('answers 204 when the wait ends, and honours ?wait= within the maximum', async () => {
    const t = Date.now();
    assert.equal(await poll(hub, 'idle-service'), null);
    const took = Date.now() - t;
    assert.ok(took >= 280 && took < 1500, `default wait took ${took} ms`);
    const t2 = Date.now();
    assert.equal(await poll(hub, 'idle-service', '?wait=0.1'), null);
    assert.ok(Date.now() - t2 < 280);
    const bad = await fetch(`${hub.url}/service/idle-service/jobs?wait=soon`);
    assert.equal(bad.status, 400);
    // A 204 has no body and no Content-Length (RFC 9110), and the connection stays usable.
    const agent = new Agent({ connections: 1 });
    const empty = await request(`${hub.url}/service/idle-service/jobs?wait=0.05`, { dispatcher: agent });
    await empty.body.text();
    assert.deepEqual([empty.statusCode, empty.headers['content-length']], [204, undefined]);
    const again = await request(`${hub.url}/healthz`, { dispatcher: agent });
    assert.equal(again.statusCode, 200);
    await again.body.text();
    await agent.close();
  });

  it('embeds bodies by type, and base64-encodes them on request', async () => {
    const cases: [string | Buffer, string, unknown, string | undefined][] = [
      ['{"a":[1,2]}', '', { a: [1, 2] }, undefined],
      ['', '', null, undefined],
      ['plain text, not JSON', '', 'plain text, not JSON', undefined],
      [Buffer.from([0xff, 0xfe, 0x00, 0x01]), '', Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64'), 'base64'],
      ['{"a":1}', '?encoding=base64', Buffer.from('{"a":1}').toString('base64'), 'base64'],
    ];
    for (const [body, query, expected, encoding] of cases) {
      const waiting = poll(hub, 'enc', query);
      await waitUntil(async () => (await stats(hub)).longPoll.waiting >= 1, 2000, 'poller waiting');
      const caller = fetch(`${hub.url}/service/enc`, { method: 'POST', body });
      const env = (await waiting)!;
      assert.deepEqual(env.originalRequest, expected);
      assert.equal(env.encoding, encoding);
      assert.match(env.id, /^[A-Za-z0-9_-]{21}\.[A-Za-z0-9._-]{1,64}$/);
      assert.equal(await answer(hub, env.id, '"ok"', '/response'), 200);
      assert.equal(await (await caller).text(), '"ok"');
    }
  });

  it('base64-encodes every body with --longpoll-encoding base64', async () => {
    const b64 = await startHub({ 'longpoll-encoding': 'base64', 'longpoll-wait-ms': 2000 });
    const waiting = poll(b64, 'go');
    await waitUntil(async () => (await stats(b64)).longPoll.waiting === 1, 2000, 'poller waiting');
    const caller = post(`${b64.url}/service/go`, '{"x":1}');
    const env = (await waiting)!;
    assert.equal(env.originalRequest, Buffer.from('{"x":1}').toString('base64'));
    assert.equal(env.encoding, 'base64');
    const viaJson = poll(b64, 'go', '?encoding=json');
    await waitUntil(async () => (await stats(b64)).longPoll.waiting === 1, 2000, 'poller waiting');
    const caller2 = post(`${b64.url}/service/go`, '{"y":2}');
    assert.deepEqual((await viaJson)!.originalRequest, { y: 2 });
    await answer(b64, env.id, '{}');
    await answer(b64, (await viaJson)!.id, '{}');
    await Promise.all([caller, caller2]);
  });

  it('answers 404 for unknown, malformed, answered and expired ids', async () => {
    assert.equal(await answer(hub, 'AAAAAAAAAAAAAAAAAAAAA', '{}'), 404);
    assert.equal(await answer(hub, 'not-an-id', '{}'), 404);
    const waiting = poll(hub, 'once');
    await waitUntil(async () => (await stats(hub)).longPoll.waiting >= 1, 2000, 'poller waiting');
    const caller = post(`${hub.url}/service/once`, '{}');
    const env = (await waiting)!;
    assert.equal(await answer(hub, env.id, '"first"'), 200);
    assert.equal(await answer(hub, env.id, '"second"'), 404);
    assert.equal((await caller).text, '"first"');
    // Expired: the caller's deadline passes while the job is leased.
    const waiting2 = poll(hub, 'once');
    await waitUntil(async () => (await stats(hub)).longPoll.waiting >= 1, 2000, 'poller waiting');
    const caller2 = post(`${hub.url}/service/once`, '{}', { 'x-timeout-ms': '150' });
    const env2 = (await waiting2)!;
    assert.equal((await caller2).status, 504);
    assert.equal(await answer(hub, env2.id, '"late"'), 404);
  });

  it('loses no job when a poller hangs up while waiting', async () => {
    const ac = new AbortController();
    const doomed = poll(hub, 'hangup', '?wait=5', ac.signal).catch((e: Error) => e);
    await waitUntil(async () => (await stats(hub)).longPoll.waiting >= 1, 2000, 'poller waiting');
    ac.abort();
    assert.ok((await doomed) instanceof Error);
    await waitUntil(async () => (await stats(hub)).longPoll.waiting === 0, 2000, 'abandoned poll gone');
    const caller = post(`${hub.url}/service/hangup`, '{"kept":true}');
    const env = (await poll(hub, 'hangup', '?wait=2'))!;
    assert.deepEqual(env.originalRequest, { kept: true });
    await answer(hub, env.id, '"served"');
    assert.equal((await caller).text, '"served"');
  });

  it('redelivers a leased job whose poller never answers, and still takes a reply to the first attempt', async () => {
    const caller = post(`${hub.url}/service/lease`, '{"job":1}', { 'x-timeout-ms': '2500' });
    const first = (await poll(hub, 'lease', '?wait=2'))!;
    // No answer: after the 300 ms lease the job comes back, to the next poll, with a new id.
    const second = (await poll(hub, 'lease', '?wait=2'))!;
    assert.notEqual(second.id, first.id);
    assert.deepEqual(second.originalRequest, { job: 1 });
    const st = await stats(hub);
    assert.equal(st.services.find((s: { name: string }) => s.name === 'lease').longPollLeased, 1);
    assert.equal(await answer(hub, first.id, '"from the first attempt"'), 200);
    assert.equal(await answer(hub, second.id, '"from the second"'), 404);
    assert.equal((await caller).text, '"from the first attempt"');
  });

  it("answers 502 when every attempt's lease runs out", async () => {
    const caller = post(`${hub.url}/service/neglect`, '{}', { 'x-timeout-ms': '2900' });
    for (let attempt = 1; attempt <= 3; attempt++) assert.ok(await poll(hub, 'neglect', '?wait=2'));
    const r = await caller;
    assert.equal(r.status, 502);
    assert.equal(r.json().error.code, 'E_WORKER_GONE');
  });

  it('shares one service fairly between WebSocket and long-poll workers, answering every request once', async () => {
    const ws = await startWorker({ url: hub.url, instanceId: 'mixed-ws', services: [{ name: 'mixed', mode: 'sleep', sleepMs: 5, concurrency: 2 }] });
    const stop = { now: false };
    const served: string[] = [];
    const pollers = Array.from({ length: 4 }, () => legacyWorker(hub, 'mixed', stop, served));
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'mixed')?.longPollWaiting >= 2, 2000, 'pollers waiting');
    const N = 300;
    const results = await Promise.all(Array.from({ length: N }, (_, i) => post(`${hub.url}/service/mixed`, `{"i":${i}}`)));
    stop.now = true;
    await Promise.all(pollers);
    const byWs = results.filter((r) => r.text === `{"i":${results.indexOf(r)}}`).length;
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.ok(r.text === `{"i":${i}}` || r.text === `{"legacy":{"i":${i}}}`, r.text);
    });
    const byPoll = N - byWs;
    assert.equal(byPoll, served.length, 'each long-polled job answered exactly once');
    assert.equal(byWs, ws.events('job').length, 'each WebSocket job answered exactly once');
    assert.ok(byWs > 0 && byPoll > 0, `ws ${byWs}, long-poll ${byPoll}`);
  });

  it('holds 1,000 idle long-polls and releases them cleanly', async () => {
    const agent = new Agent({ connections: 1100 });
    const polls = Array.from({ length: 1000 }, () =>
      request(`${hub.url}/service/crowd/jobs?wait=1.5`, { dispatcher: agent }).then(async (r) => {
        await r.body.dump();
        return r.statusCode;
      }),
    );
    await waitUntil(async () => (await stats(hub)).longPoll.waiting === 1000, 8000, '1000 waiting');
    const codes = await Promise.all(polls);
    assert.ok(codes.every((c) => c === 204));
    assert.equal((await stats(hub)).longPoll.waiting, 0);
    await agent.close();
  });

  it('refuses polls beyond the waiter limit with 503', async () => {
    const small = await startHub({ 'max-pollers-per-service': 2, 'longpoll-wait-ms': 1000 });
    const held = [poll(small, 'tiny'), poll(small, 'tiny')];
    await waitUntil(async () => (await stats(small)).longPoll.waiting === 2, 2000, 'two waiting');
    const r = await fetch(`${small.url}/service/tiny/jobs`);
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'E_OVERLOADED');
    await Promise.all(held);
    await sleep(10);
  });

  it('never locks a worker out of the service table with polls on made-up names', async () => {
    const small = await startHub({ 'max-services': 20, 'longpoll-wait-ms': 200, 'service-linger-ms': 30_000 });
    // 50 polls on names nobody serves, ten at a time, each ending empty: every name lingers, in
    // the polls' own LRU, where the oldest give way.
    const agent = new Agent({ connections: 16 });
    const codes: number[] = [];
    for (let wave = 0; wave < 5; wave++) {
      const names = Array.from({ length: 10 }, (_, i) => `made-up-${wave * 10 + i}`);
      codes.push(
        ...(await Promise.all(
          names.map((n) => request(`${small.url}/service/${n}/jobs`, { dispatcher: agent }).then((r) => r.body.text().then(() => r.statusCode))),
        )),
      );
    }
    await agent.close();
    assert.deepEqual(new Set(codes), new Set([204]));
    const w = await startWorker({ url: small.url, services: [{ name: 'real' }] });
    const r = await post(`${small.url}/service/real`, '{"ok":1}');
    assert.equal(r.status, 200, r.text);
    assert.equal(w.events('protocolError').length, 0);
    const names = (await stats(small)).services.map((s: { name: string }) => s.name);
    assert.ok(names.length <= 21, `${names.length} services kept`);
  });
});
