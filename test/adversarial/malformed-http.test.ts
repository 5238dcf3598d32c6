/**
 * Malformed HTTP, written byte by byte over TCP: what the hub answers (or how it drops the
 * connection, as README "HTTP API" documents), and that it then still serves a normal request
 * with every counter back at baseline. Bad names, keys and timeouts of well-formed requests are
 * in test/integration/queue-limits.test.ts; random ones in test/integration/fuzz-http.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { atBaseline, errorAnswerProblem, exchange, HttpConnection, servesAgain } from '../helpers/raw-http.js';

const H = 'Host: x\r\n';
const postOf = (path: string, body: string, extra = '') => `POST ${path} HTTP/1.1\r\n${H}${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const getOf = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\n${H}${extra}\r\n`;

describe('malformed HTTP', { timeout: 120_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'hub-id': 'mh', 'max-body-bytes': 4096, 'default-timeout-ms': 3000, 'body-linger-ms': 500 });
    await startWorker({ url: hub.url, instanceId: 'mh-w', services: [{ name: 'echo' }, { name: 'slow', mode: 'sleep', sleepMs: 400 }] });
  });
  after(stopAll);

  /** A normal request still works, and the hub holds nothing for anyone. */
  const stillServes = (tag: string) => servesAgain(hub, 'echo', tag);

  it('closes the connection at once, answering nothing, on what its parser refuses outright', async () => {
    const cases: Record<string, string> = {
      'an unknown method': `FOO /healthz HTTP/1.1\r\n${H}\r\n`,
      'a method uWS does not route (PROPFIND)': `PROPFIND /healthz HTTP/1.1\r\n${H}\r\n`,
      'a lower-case method': `get /healthz HTTP/1.1\r\n${H}\r\n`,
      'a negative Content-Length': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n{}`,
      'a Content-Length past 2^64': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n{}`,
      'a hexadecimal Content-Length': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: 0x2\r\n\r\n{}`,
      'a Content-Length with a sign': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: +2\r\n\r\n{}`,
      'a Content-Length of two numbers': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: 2 2\r\n\r\n{}`,
      'a Content-Length list': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: 2, 2\r\n\r\n{}`,
      'Content-Length with Transfer-Encoding': `POST /service/echo HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      'a Transfer-Encoding other than chunked': `POST /service/echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n{}`,
      'a chunk size that is not hex': `POST /service/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
      'a chunk size past 2^64': `POST /service/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n`,
      'a negative chunk size': `POST /service/echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n`,
      'a URL of 300 KiB': `GET /healthz?${'a'.repeat(300 * 1024)} HTTP/1.1\r\n${H}\r\n`,
      'a header of 300 KiB': `GET /healthz HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(300 * 1024)}\r\n\r\n`,
    };
    const before = await stats(hub);
    const results = await Promise.all(Object.entries(cases).map(async ([what, bytes]) => [what, await exchange(hub.port, [bytes], { waitMs: 5000 })] as const));
    for (const [what, x] of results) {
      assert.equal(x.responses.length, 0, `${what}: answered ${x.responses[0]?.status}`);
      assert.equal(x.rest.length, 0, `${what}: bytes came back`);
      assert.ok(x.closed && x.ms < 3000, `${what}: closed ${x.closed} after ${x.ms} ms`);
    }
    // Some reach a route before the parser gives up on their body; none becomes a job.
    const st = await atBaseline(hub);
    assert.equal(st.jobs.accepted, before.jobs.accepted);
    await stillServes('refused outright');
  });

  it('answers nothing to what it cannot parse, or to headers and bodies that never end, and closes the connection within about 12 s', async () => {
    const cases: Record<string, (string | number)[]> = {
      'a request line that is not one': ['GARBAGE\r\n\r\n'],
      'a request line without a version': ['GET /healthz\r\n\r\n'],
      'an HTTP/1.0 request': ['GET /healthz HTTP/1.0\r\n\r\n'],
      'an HTTP/1.0 request with a Host': [`GET /healthz HTTP/1.0\r\n${H}\r\n`],
      'an HTTP/1.1 request without Host': ['GET /healthz HTTP/1.1\r\n\r\n'],
      'an absolute-form target': [`GET http://x/healthz HTTP/1.1\r\n${H}\r\n`],
      'an asterisk-form target': [`OPTIONS * HTTP/1.1\r\n${H}\r\n`],
      'a control character in the method': [`G\x01T /healthz HTTP/1.1\r\n${H}\r\n`],
      'a header line without a colon': [`GET /healthz HTTP/1.1\r\n${H}Badheader\r\n\r\n`],
      'lines ended by LF alone': ['GET /healthz HTTP/1.1\nHost: x\n\n'],
      'a bare CR inside a header value': [`GET /healthz HTTP/1.1\r\n${H}X-Request-Id: a\rb\r\n\r\n`],
      'a bare LF inside a header value (an injected header)': [`GET /healthz HTTP/1.1\r\n${H}X-Request-Id: a\nX-Injected: 1\r\n\r\n`],
      'a NUL inside a header value': [`GET /healthz HTTP/1.1\r\n${H}X-Request-Id: a\x00b\r\n\r\n`],
      'a folded header line': [`GET /healthz HTTP/1.1\r\n${H}X-Request-Id: a\r\n  folded\r\n\r\n`],
      'more than 50 headers': [`GET /healthz HTTP/1.1\r\n${H}${Array.from({ length: 60 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
      'headers that stop half way': ['GET /healthz HTTP/1.1\r\nHo'],
      'headers trickled a byte a second (slowloris)': ['GET /healthz HTTP/1.1\r\nX-A: ', ...Array.from({ length: 14 }, () => [1000, 'a']).flat()],
      'a body trickled a byte a second': [
        postOf('/service/slow', '').replace('Content-Length: 0', 'Content-Length: 100'),
        ...Array.from({ length: 14 }, () => [1000, 'a']).flat(),
      ],
    };
    const pending = Promise.all(Object.entries(cases).map(async ([what, parts]) => [what, await exchange(hub.port, parts, { waitMs: 16_000 })] as const));
    // Meanwhile the hub serves everyone else.
    const r = await post(`${hub.url}/service/echo`, '{"meanwhile":1}');
    assert.equal(r.status, 200);
    for (const [what, x] of await pending) {
      assert.equal(x.responses.length, 0, `${what}: answered ${x.responses[0]?.status}`);
      assert.equal(x.rest.length, 0, `${what}: bytes came back`);
      assert.ok(x.closed && x.ms >= 8000 && x.ms < 15_000, `${what}: closed ${x.closed} after ${x.ms} ms`);
    }
    await stillServes('never-ending requests');
  });

  it('reads the body a refused request declared, so the next request on the connection gets its own answer', async () => {
    const conn = await HttpConnection.open(hub.port);
    try {
      // Each body is a whole request: were it read as one, its answer would come instead.
      const smuggled = getOf('/stats');
      const refusals: [string, string, string][] = [
        ['/service/a%20b', '', 'E_BAD_NAME'],
        ['/api/echo/%FF', '', 'E_BAD_KEY'],
        ['/service/echo', 'X-Timeout-Ms: 0\r\n', 'E_BAD_TIMEOUT'],
        ['/service/ghost', '', 'E_NO_WORKERS'],
        ['/nope', '', 'E_NOT_FOUND'],
        ['/jobs/unknown', '', 'E_UNKNOWN_JOB'],
      ];
      for (const [path, extra, code] of refusals) {
        const a = await conn.ask(postOf(path, smuggled, extra));
        assert.equal(a?.headers['x-error-code'], code, path);
        assert.equal(errorAnswerProblem(a!), null, path);
        const next = await conn.ask(getOf('/healthz'));
        assert.equal(next?.status, 200, `after ${path}`);
        assert.equal(JSON.parse(next!.body.toString()).ok, true, `after ${path}`);
      }
      // A body that holds a request is the worker's body, byte for byte.
      const echoed = await conn.ask(postOf('/service/echo', smuggled));
      assert.equal(echoed?.status, 200);
      assert.equal(echoed?.body.toString(), smuggled);
      assert.equal(conn.closed, false);
    } finally {
      conn.close();
    }
    await stillServes('refused bodies');
  });

  it('refuses two Content-Length headers with 400 and closes the connection (a proxy might frame the body by the other one)', async () => {
    const conn = await HttpConnection.open(hub.port);
    try {
      const a = await conn.ask(`POST /service/echo HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 2\r\n\r\n{"a"}`);
      assert.equal(a?.status, 400);
      assert.equal(JSON.parse(a!.body.toString()).error.code, 'E_BAD_REQUEST');
      await waitUntil(() => conn.closed, 3000, 'the connection closed');
    } finally {
      conn.close();
    }
    await stillServes('two content lengths');
  });

  it('refuses names and keys whose percent-encoding is broken or decodes to what a name or key may not hold', async () => {
    const cases: [string, string][] = [
      ['/service/%00', 'E_BAD_NAME'],
      ['/service/ec%2Fho', 'E_BAD_NAME'],
      ['/service/ec%C0%AFho', 'E_BAD_NAME'],
      ['/service/%E2%80%AEecho', 'E_BAD_NAME'],
      ['/service/echo%', 'E_BAD_NAME'],
      ['/service/%%34%31', 'E_BAD_NAME'],
      ['/api/echo/%ED%A0%80', 'E_BAD_KEY'],
      ['/api/echo/%F4%90%80%80', 'E_BAD_KEY'],
      ['/api/echo/%C0%80', 'E_BAD_KEY'],
      ['/api/echo/k%E0%A4', 'E_BAD_KEY'],
      ['/api/broadcast/echo/%', 'E_BAD_KEY'],
      ['/api/broadcast/%2E%2E/k', 'E_BAD_NAME'],
    ];
    const before = await stats(hub);
    for (const [path, code] of cases) {
      const x = await exchange(hub.port, [postOf(path, '{}')]);
      const a = x.responses[0];
      assert.equal(a?.status, 400, path);
      assert.equal(a?.headers['x-error-code'], code, path);
      assert.equal(errorAnswerProblem(a!), null, path);
    }
    const st = await stats(hub);
    assert.equal(st.jobs.accepted, before.jobs.accepted, 'no job for a bad name or key');
    assert.deepEqual(
      st.services.map((s: { name: string }) => s.name),
      before.services.map((s: { name: string }) => s.name),
    );
    // What decodes to a valid key is one: a key may hold any UTF-8, a slash or a NUL included.
    for (const key of ['%2F', '%00', '%E2%80%AE', 'a%20b']) {
      const x = await exchange(hub.port, [postOf(`/api/echo/${key}`, '{"k":1}')]);
      assert.equal(x.responses[0]?.status, 200, key);
    }
    await stillServes('percent-encodings');
  });

  it('answers pipelined requests it can answer at once in order, and drops a connection that pipelines behind a request waiting for a worker', async () => {
    const sync = await exchange(hub.port, [getOf('/healthz') + postOf('/service/ghost', '{}') + getOf('/nope')], { expect: 3 });
    assert.deepEqual(
      sync.responses.map((r) => r.status),
      [200, 503, 404],
    );
    const before = await stats(hub);
    const x = await exchange(hub.port, [postOf('/service/slow', '{"p":1}') + postOf('/service/slow', '{"p":2}') + postOf('/service/slow', '{"p":3}')], {
      waitMs: 3000,
    });
    // README: pipelining is not supported. The connection closes with no answer; the first
    // request, the only one read, is cancelled (its worker gets a Cancel), not left open.
    assert.equal(x.responses.length, 0);
    assert.ok(x.closed && x.ms < 2000, `closed ${x.closed} after ${x.ms} ms`);
    const st = await atBaseline(hub);
    assert.equal(st.http.callerRequests, before.http.callerRequests + 1);
    assert.equal(st.jobs.cancelled, before.jobs.cancelled + 1);
    await stillServes('pipelining');
  });

  it('answers the methods uWS knows on routes that do not take them, and plain GETs of the WebSocket paths, with a JSON 404', async () => {
    const cases = [
      `TRACE /healthz HTTP/1.1\r\n${H}\r\n`,
      `CONNECT /service/echo HTTP/1.1\r\n${H}\r\n`,
      getOf('/ws'),
      getOf('/peer'),
      getOf('/ws', 'Upgrade: websocket\r\nConnection: Upgrade\r\n'),
      postOf('/peer', '{}'),
      // Under 4 KiB: a longer head that reaches the hub in pieces is closed unanswered by uWS (README, Limits).
      getOf(`/${'n'.repeat(3 * 1024)}`),
    ];
    for (const bytes of cases) {
      const x = await exchange(hub.port, [bytes]);
      const a = x.responses[0];
      assert.equal(a?.status, 404, bytes.slice(0, 40));
      assert.equal(errorAnswerProblem(a!), null, bytes.slice(0, 40));
    }
    await stillServes('404s');
  });

  it('answers Expect: 100-continue with 100 Continue, then the answer', async () => {
    const conn = await HttpConnection.open(hub.port);
    try {
      const cont = await conn.ask(`POST /service/echo HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 7\r\n\r\n`);
      assert.equal(cont?.status, 100);
      const a = await conn.ask('{"c":1}');
      assert.equal(a?.status, 200);
      assert.equal(a?.body.toString(), '{"c":1}');
    } finally {
      conn.close();
    }
    await stillServes('100-continue');
  });
});
