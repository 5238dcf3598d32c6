/**
 * Auth bypass attempts against a hub with an auth file: no token, a wrong one, serving or
 * requesting outside one's rights, answering a job of a foreign service, a poller replying to
 * a job of a service it may not serve, another token taking a worker's instanceId, /stats
 * without the monitor right, a token over its connection limit; then SIGHUP reloads the file.
 * Every refusal is exact, and the hub keeps serving the others.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CloseCode, Op } from '../../client/protocol.js';
import { hashToken } from '../../server/auth/auth.js';
import { converged, startMesh } from '../helpers/mesh.js';
import { type HubProc, post, sleep, spawnHub, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

const T = {
  caller: 'caller-token-0123456789abcdefghij',
  worker: 'worker-token-0123456789abcdefghij',
  poller: 'poller-token-0123456789abcdefghij',
  stranger: 'stranger-token-0123456789abcdefgh',
  ops: 'ops-token-0123456789abcdefghijklmn',
  limited: 'limited-token-0123456789abcdefghi',
};

function authDoc(overrides: Record<string, unknown> = {}) {
  const tokens: Record<string, unknown>[] = [
    { name: 'caller', sha256: hashToken(T.caller), request: { allow: ['echo', 'calc.>', 'legacy'], deny: ['calc.admin'] } },
    { name: 'worker', sha256: hashToken(T.worker), serve: ['echo', 'calc.>'] },
    { name: 'poller', sha256: hashToken(T.poller), serve: ['legacy'] },
    { name: 'stranger', sha256: hashToken(T.stranger), serve: ['elsewhere'], request: ['elsewhere'] },
    { name: 'ops', sha256: hashToken(T.ops), monitor: true },
    { name: 'limited', sha256: hashToken(T.limited), serve: ['echo'], maxConnections: 1 },
  ];
  return { tokens: tokens.map((t) => ({ ...t, ...((overrides[t.name as string] as object) ?? {}) })).filter((t) => !(t as { gone?: boolean }).gone) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function hello(hub: HubProc, token: string | undefined, instanceId = `raw-${Math.random().toString(36).slice(2)}`): Promise<RawSocket> {
  const s = await RawSocket.open(hub.url);
  s.send([Op.Hello, { versions: [1], role: 'worker', instanceId, ...(token ? { token } : {}) }]);
  return s;
}

describe('auth: bypass attempts', { timeout: 60_000 }, () => {
  let hub: HubProc;
  let file: string;
  const st = () => stats(hub, T.ops);
  before(async () => {
    file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-auth-')), 'auth.json');
    writeFileSync(file, JSON.stringify(authDoc()));
    hub = await startHub({ 'auth-file': file, 'longpoll-wait-ms': 2000 });
    await startWorker({
      url: hub.url,
      instanceId: 'echo-w',
      token: T.worker,
      statsToken: T.ops,
      services: [{ name: 'echo' }, { name: 'calc.add' }, { name: 'calc.admin' }],
    });
  });
  after(stopAll);

  it('answers HTTP callers without a valid token 401 with WWW-Authenticate, and outside their rights 403', async () => {
    const cases: [Record<string, string>, string, number, string][] = [
      [{}, '/service/echo', 401, 'E_UNAUTHORIZED'],
      [bearer('not-a-token'), '/service/echo', 401, 'E_UNAUTHORIZED'],
      [{ authorization: `Basic ${Buffer.from(`x:${T.caller}`).toString('base64')}` }, '/service/echo', 401, 'E_UNAUTHORIZED'],
      [{ authorization: T.caller }, '/service/echo', 401, 'E_UNAUTHORIZED'],
      [bearer(`${T.caller}x`), '/service/echo', 401, 'E_UNAUTHORIZED'],
      [bearer(T.caller), '/service/payments', 403, 'E_FORBIDDEN'],
      [bearer(T.caller), '/api/calc.admin/k', 403, 'E_FORBIDDEN'],
      [bearer(T.caller), '/api/broadcast/calc.admin/k', 403, 'E_FORBIDDEN'],
      [bearer(T.worker), '/service/echo', 403, 'E_FORBIDDEN'],
      [bearer(T.ops), '/service/echo', 403, 'E_FORBIDDEN'],
    ];
    for (const [headers, route, status, code] of cases) {
      const r = await post(`${hub.url}${route}`, '{"x":1}', headers);
      assert.deepEqual([r.status, r.headers.get('x-error-code')], [status, code], `${route} with ${JSON.stringify(headers)}`);
      if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="astromesh"');
    }
    const ok = await post(`${hub.url}/service/echo`, '{"x":1}', bearer(T.caller));
    assert.deepEqual([ok.status, ok.text], [200, '{"x":1}']);
    const keyed = await post(`${hub.url}/api/calc.add/k1`, '{"y":2}', bearer(T.caller));
    assert.equal(keyed.status, 200);
    const s = await st();
    assert.ok(s.auth.unauthorized >= 5 && s.auth.forbidden >= 5, JSON.stringify(s.auth));
    assert.deepEqual([s.openJobs, s.http.unanswered], [0, 0]);
  });

  it('guards /stats and /api/services with the monitor right, and leaves /healthz, /readyz and /api/health open', async () => {
    for (const route of ['/stats', '/api/services']) {
      assert.equal((await fetch(`${hub.url}${route}`)).status, 401, route);
      assert.equal((await fetch(`${hub.url}${route}`, { headers: bearer(T.caller) })).status, 403, route);
      assert.equal((await fetch(`${hub.url}${route}`, { headers: bearer(T.ops) })).status, 200, route);
    }
    const services = await (await fetch(`${hub.url}/api/services`, { headers: bearer(T.ops) })).json();
    assert.deepEqual(
      (services as { id: string }[]).map((x) => x.id),
      Array(3).fill(`${(await st()).hubId}/echo-w`),
    );
    assert.equal((await fetch(`${hub.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);
    assert.equal(await (await fetch(`${hub.url}/api/health`)).text(), '{"status":"up"}');
  });

  it('closes a WebSocket whose Hello has no valid token with E_UNAUTHORIZED and 1008, before anything else', async () => {
    for (const token of [undefined, 'wrong', `${T.worker} `]) {
      const s = await hello(hub, token);
      const e = await s.next((f) => f[0] === Op.ProtocolError);
      assert.deepEqual([e[1], e[4]], ['E_UNAUTHORIZED', true]);
      assert.equal(await s.closed, CloseCode.Policy);
      assert.ok(!s.frames.some((f) => f[0] === Op.Welcome));
    }
  });

  it("refuses a Register outside the token's rights (non-fatal, naming the service) and a Request outside them (403)", async () => {
    const s = await hello(hub, T.worker, 'reg-w');
    await s.next((f) => f[0] === Op.Welcome);
    s.send([Op.Register, 'payments', 4, 1]);
    const e = await s.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([e[1], e[3], e[4]], ['E_FORBIDDEN', 'payments', false]);
    s.send([Op.Register, 'calc.mul', 4, 1]);
    s.send([Op.Request, 1, 0, 'echo', null, 2000, 'application/json', null, null, Buffer.from('{}')]);
    const res = await s.next((f) => f[0] === Op.Response);
    assert.deepEqual([res[2], (res[4] as Record<string, string>)['x-error-code']], [403, 'E_FORBIDDEN']);
    // The permitted registration works: a caller's request reaches this session.
    const call = post(`${hub.url}/api/calc.mul/k`, '{"m":1}', bearer(T.caller));
    const job = await s.next((f) => f[0] === Op.Job);
    assert.equal(job[2], 'calc.mul');
    s.send([Op.Reply, job[1] as number, 200, 'application/json', null, Buffer.from('{"ok":true}')]);
    assert.equal((await call).text, '{"ok":true}');
    assert.ok(!(await st()).services.some((x: { name: string }) => x.name === 'payments'), 'a refused Register creates no service');
    s.close();
  });

  it("ignores answers to jobs the session was not given (a foreign service's job stays with its worker)", async () => {
    const thief = await hello(hub, T.stranger, 'thief');
    await thief.next((f) => f[0] === Op.Welcome);
    const before = (await st()).jobs.unknownReplies;
    const call = post(`${hub.url}/service/echo`, '{"real":1}', bearer(T.caller));
    for (let id = 1; id < 20; id++) thief.send([Op.Reply, id, 200, 'application/json', null, Buffer.from('{"forged":1}')]);
    const r = await call;
    assert.equal(r.text, '{"real":1}');
    assert.ok((await st()).jobs.unknownReplies >= before + 19);
    thief.close();
  });

  it("refuses another token's Hello with a worker's instanceId, and the worker keeps its session", async () => {
    const s = await hello(hub, T.stranger, 'echo-w');
    const e = await s.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([e[1], e[4]], ['E_FORBIDDEN', true]);
    assert.equal(await s.closed, CloseCode.Policy);
    const w = (await st()).workers.find((x: { instanceId: string }) => x.instanceId === 'echo-w');
    assert.equal(w?.state, 'open');
    assert.equal(w?.token, 'worker');
    assert.equal((await post(`${hub.url}/service/echo`, '{"still":1}', bearer(T.caller))).status, 200);
  });

  it('holds a token to its own connection limit', async () => {
    const first = await hello(hub, T.limited, 'lim-1');
    await first.next((f) => f[0] === Op.Welcome);
    const second = await hello(hub, T.limited, 'lim-2');
    const e = await second.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([e[1], e[4]], ['E_OVERLOADED', true]);
    assert.equal(await second.closed, CloseCode.Policy);
    first.close();
    await first.closed;
    // Its slot is free again once the first session has gone.
    await waitUntil(async () => !(await st()).workers.some((x: { instanceId: string }) => x.instanceId === 'lim-1'), 3000, 'the first session gone');
    const third = await hello(hub, T.limited, 'lim-3');
    await third.next((f) => f[0] === Op.Welcome);
    third.close();
  });

  it('lets a legacy worker poll and answer only the services its token may serve', async () => {
    assert.equal((await fetch(`${hub.url}/service/legacy/jobs?wait=0.1`)).status, 401);
    assert.equal((await fetch(`${hub.url}/service/legacy/jobs?wait=0.1`, { headers: bearer(T.stranger) })).status, 403);
    const polling = fetch(`${hub.url}/service/legacy/jobs`, { headers: bearer(T.poller) });
    await waitUntil(async () => (await st()).longPoll.waiting === 1, 3000, 'the poll waiting');
    const call = post(`${hub.url}/service/legacy`, '{"l":1}', bearer(T.caller));
    const polled = await polling;
    assert.equal(polled.status, 200);
    const { id } = (await polled.json()) as { id: string };
    const reply = (token?: string) =>
      fetch(`${hub.url}/jobs/${id}`, {
        method: 'POST',
        body: '{"from":"poller"}',
        headers: { 'content-type': 'application/json', ...(token ? bearer(token) : {}) },
      });
    assert.equal((await reply()).status, 401);
    const foreign = await reply(T.stranger);
    assert.deepEqual([foreign.status, foreign.headers.get('x-error-code')], [403, 'E_FORBIDDEN']);
    assert.equal((await reply(T.poller)).status, 200);
    assert.equal((await call).text, '{"from":"poller"}');
  });

  it("reloads the file on SIGHUP: revoked tokens' sessions close, lost rights are unregistered, the rest keeps running", async () => {
    const callerWs = await hello(hub, T.caller, 'caller-ws');
    await callerWs.next((f) => f[0] === Op.Welcome);
    const w = await hello(hub, T.worker, 'reload-w');
    await w.next((f) => f[0] === Op.Welcome);
    w.send([Op.Register, 'echo', 1, 1]);
    w.send([Op.Register, 'calc.sub', 1, 1]);
    await waitUntil(
      async () => (await st()).workers.find((x: { instanceId: string }) => x.instanceId === 'reload-w')?.services.length === 2,
      3000,
      'two registrations',
    );
    // A broken file changes nothing.
    writeFileSync(file, '{"tokens": [');
    hub.kill('SIGHUP');
    await hub.waitFor((l) => /auth file not reloaded/.test(String(l.msg)), 3000, 'the reload error');
    assert.equal((await post(`${hub.url}/service/echo`, '{}', bearer(T.caller))).status, 200);
    // The caller's token is revoked; the worker may serve echo only.
    writeFileSync(file, JSON.stringify(authDoc({ caller: { gone: true }, worker: { serve: ['echo'] } })));
    hub.kill('SIGHUP');
    assert.equal(await callerWs.closed, CloseCode.Policy);
    const e = await w.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([e[1], e[3], e[4]], ['E_FORBIDDEN', 'calc.sub', false]);
    const kept = (await st()).workers.find((x: { instanceId: string }) => x.instanceId === 'reload-w');
    assert.deepEqual(
      kept.services.map((x: { name: string }) => x.name),
      ['echo'],
    );
    assert.equal((await post(`${hub.url}/service/echo`, '{}', bearer(T.caller))).status, 401);
    w.close();
    writeFileSync(file, JSON.stringify(authDoc()));
    hub.kill('SIGHUP');
    await waitUntil(async () => (await post(`${hub.url}/service/echo`, '{}', bearer(T.caller))).status === 200, 3000, 'the caller back');
  });

  it('never writes a token to its log, even the ones it refused', async () => {
    const logged = JSON.stringify([...hub.lines, ...hub.stderr]);
    assert.ok(hub.lines.length > 3, 'the hub logged its events');
    for (const [name, token] of Object.entries(T)) assert.ok(!logged.includes(token), `the ${name} token is in the log`);
    assert.ok(!logged.includes('not-a-token'));
    // One line per session opened and closed, naming its token; one per refused Hello.
    const msgs = hub.lines as { msg?: string; token?: string; instanceId?: string; code?: string }[];
    assert.ok(msgs.some((l) => l.msg === 'session opened' && l.instanceId === 'echo-w' && l.token === 'worker'));
    assert.ok(msgs.some((l) => l.msg === 'session closed' && l.instanceId === 'reg-w'));
    assert.ok(msgs.some((l) => l.msg === 'session refused' && l.code === 'E_UNAUTHORIZED'));
    assert.ok(!msgs.some((l) => /request|job/i.test(String(l.msg))), 'no line per request');
  });
});

describe('auth in a mesh', { timeout: 60_000 }, () => {
  after(stopAll);

  it("checks a long-poll reply posted to another hub against the job's service where the job is, and keeps instances to their tokens across hubs", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-auth-')), 'auth.json');
    writeFileSync(file, JSON.stringify(authDoc()));
    const hubs = await startMesh(['auth-a', 'auth-b'], { 'auth-file': file, 'cluster-secret': 'mesh-secret', 'longpoll-wait-ms': 3000 }, T.ops);
    const [a, b] = hubs as [HubProc, HubProc];
    const polling = fetch(`${a.url}/service/legacy/jobs`, { headers: bearer(T.poller) });
    await waitUntil(async () => (await stats(a, T.ops)).longPoll.waiting === 1, 3000, 'the poll waiting at a');
    // The caller enters at b; the job runs on a's poller (b forwards it within a's grant).
    await waitUntil(async () => (await stats(b, T.ops)).mesh.peers[0]?.granted.legacy === 1, 3000, "a's grant at b");
    const call = post(`${b.url}/service/legacy`, '{"via":"b"}', bearer(T.caller));
    const polled = await polling;
    assert.equal(polled.status, 200);
    const { id } = (await polled.json()) as { id: string };
    assert.ok(id.endsWith('.auth-a'), id);
    const reply = (token: string) =>
      fetch(`${b.url}/jobs/${id}`, { method: 'POST', body: '{"answered":"at b"}', headers: { 'content-type': 'application/json', ...bearer(token) } });
    const foreign = await reply(T.stranger);
    assert.deepEqual([foreign.status, foreign.headers.get('x-error-code')], [403, 'E_FORBIDDEN']);
    assert.equal((await reply(T.poller)).status, 200);
    assert.equal((await call).text, '{"answered":"at b"}');
    // A worker's instance on a; another token's Hello with it on b does not close it on a.
    await startWorker({ url: a.url, instanceId: 'mesh-w', token: T.worker, statsToken: T.ops, services: [{ name: 'echo' }] });
    await converged(hubs, 'echo', 1, T.ops);
    const s = await hello(b, T.stranger, 'mesh-w');
    await s.next((f) => f[0] === Op.Welcome);
    await sleep(300);
    const w = (await stats(a, T.ops)).workers.find((x: { instanceId: string }) => x.instanceId === 'mesh-w');
    assert.equal(w?.state, 'open');
    s.close();
    const r = await post(`${b.url}/api/echo/k`, '{"k":1}', bearer(T.caller));
    assert.deepEqual([r.status, r.headers.get('x-served-by')], [200, 'auth-a/mesh-w']);
    for (const h of hubs) assert.ok(!JSON.stringify([...h.lines, ...h.stderr]).includes('mesh-secret'), 'the cluster secret is in a log');
  });
});

describe('auth: configuration', { timeout: 30_000 }, () => {
  after(stopAll);

  it("does not count registrations a reload removes against the session's refusal budget", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-auth-')), 'auth.json');
    writeFileSync(file, JSON.stringify(authDoc({ worker: { serve: ['calc.>'] } })));
    const hub = await startHub({ 'auth-file': file, 'max-protocol-errors': 2 });
    const w = await hello(hub, T.worker, 'budget-w');
    await w.next((f) => f[0] === Op.Welcome);
    for (const name of ['calc.a', 'calc.b', 'calc.c', 'calc.keep']) w.send([Op.Register, name, 1, 1]);
    await waitUntil(
      async () => (await stats(hub, T.ops)).workers.find((x: { instanceId: string }) => x.instanceId === 'budget-w')?.services.length === 4,
      3000,
      'four',
    );
    writeFileSync(file, JSON.stringify(authDoc({ worker: { serve: ['calc.keep'] } })));
    hub.kill('SIGHUP');
    for (const name of ['calc.a', 'calc.b', 'calc.c']) await w.next((f) => f[0] === Op.ProtocolError && f[3] === name);
    await sleep(200);
    assert.equal(w.closeCode, null, 'the session stays open');
    const kept = (await stats(hub, T.ops)).workers.find((x: { instanceId: string }) => x.instanceId === 'budget-w');
    assert.deepEqual(
      kept.services.map((x: { name: string }) => x.name),
      ['calc.keep'],
    );
    assert.equal((await stats(hub, T.ops)).sockets.protocolErrors, 0, 'the hub refused no frame the worker sent');
    w.close();
  });

  it('refuses to start with auth on and peers but no cluster secret, and names a bad auth file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'astromesh-auth-'));
    const good = path.join(dir, 'auth.json');
    writeFileSync(good, JSON.stringify(authDoc()));
    const meshed = spawnHub(0, { 'auth-file': good, peers: '127.0.0.1:1' });
    const exit = await meshed.exited;
    assert.equal(exit.code, 2);
    assert.match(meshed.stderr.join('\n'), /auth is on and peers are configured, but there is no cluster secret/);
    const bad = path.join(dir, 'bad.json');
    for (const [doc, why] of [
      [{ tokens: [{ name: 'x', sha256: 'abc' }] }, /tokens\[0\]\.sha256 must be the 64 lower-case hex digits/],
      [{ tokens: [{ name: 'x', sha256: hashToken('a'), serve: ['a.>.b'] }] }, /tokens\[0\]\.serve\[0\] must be a service pattern/],
      [{ tokens: [{ name: 'x', sha256: hashToken('a'), serv: [] }] }, /tokens\[0\]\.serv is not known/],
      [{ users: [] }, /must be an object with a "tokens" array/],
    ] as const) {
      writeFileSync(bad, JSON.stringify(doc));
      const p = spawnHub(0, { 'auth-file': bad });
      assert.equal((await p.exited).code, 2);
      assert.match(p.stderr.join('\n'), why);
    }
  });

  it('warns loudly when auth is off', async () => {
    const hub = await startHub();
    await hub.waitFor((l) => /AUTH IS OFF/.test(String(l.msg)), 3000, 'the warning');
    await sleep(10);
  });
});
