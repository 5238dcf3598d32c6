/**
 * What a hub refuses, and what the session and its jobs become then: unknown ops (non-fatal),
 * Registers out of range (non-fatal), frames over the value limit (fatal, refused before they
 * are decoded), malformed answers (fatal, and their job fails with 502 E_BAD_REPLY), Request
 * fields refused by name, and the order of frames around a worker's Goodbye.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pack } from 'msgpackr';
import { type Frame, type JobFrame, MAX_FRAME_VALUES, Op, type ResponseFrame } from '../../client/protocol.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

interface ServiceStats {
  name: string;
  workers: number;
}
interface WorkerStats {
  instanceId: string;
  services: { name: string; credit: number; weight: number }[];
}

/** `fields` of a frame of op `op`, then `extra` nils: a msgpack array 32, so any count fits. */
function withTrailingNils(op: number, fields: unknown[], extra: number): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0xdd;
  head.writeUInt32BE(1 + fields.length + extra, 1);
  // pack() of an array is its header and then its elements: drop the header.
  const inner = pack([op, ...fields]);
  const skip = fields.length + 1 < 16 ? 1 : 3;
  return Buffer.concat([head, inner.subarray(skip), Buffer.alloc(extra, 0xc0)]);
}

describe('frames the hub refuses, and what follows', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 4000, 'ping-interval-ms': 200, 'pong-timeout-ms': 2000 });
  });
  after(stopAll);

  async function registered(service: string, workers = 1): Promise<void> {
    await waitUntil(
      async () => (await stats(hub)).services.some((x: ServiceStats) => x.name === service && x.workers === workers),
      2000,
      `${service} registered`,
    );
  }

  /** The session still works: a Request over it gets its Response. */
  async function stillOpen(s: RawSocket, requestId: number): Promise<void> {
    s.send([Op.Request, requestId, 0, 'nobody-serves-this', null, null, null, null, null, Buffer.alloc(0)]);
    const r = (await s.next((f) => f[0] === Op.Response && f[1] === requestId)) as ResponseFrame;
    assert.equal(r[2], 503);
    assert.equal(s.closeCode, null, 'session open');
  }

  async function fatal(s: RawSocket, match?: RegExp): Promise<void> {
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.equal(err[1], 'E_PROTOCOL');
    assert.equal(err[4], true, 'fatal');
    if (match) assert.match(err[2] as string, match);
    assert.equal(await s.closed, 1002);
  }

  it('answers an unknown op with a non-fatal E_PROTOCOL whose ref is the op, and the session goes on', async () => {
    const s = await RawSocket.worker(hub.url, 'unknown-ops', { 'after-unknown': 1 });
    await registered('after-unknown');
    const ops = [15, 31, 99, 1000, 35];
    for (const op of ops) s.sendRaw(pack([op, 1, 'future', { field: true }]));
    for (const op of ops) {
      const err = await s.next((f) => f[0] === Op.ProtocolError && f[3] === op);
      assert.deepEqual([err[1], err[4]], ['E_PROTOCOL', false], `op ${op}`);
    }
    await stillOpen(s, 1);
    const answer = post(`${hub.url}/service/after-unknown`, '{"u":1}');
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    s.send([Op.Reply, job[1], 200, null, null, job[9]]);
    assert.equal((await answer).text, '{"u":1}');
    s.close();
  });

  it('still ends a session for an op that is not a positive integer, or an unknown op before hello', async () => {
    const zero = await RawSocket.worker(hub.url, 'op-zero');
    zero.sendRaw(pack([0, 1]));
    await fatal(zero);
    const early = await RawSocket.open(hub.url);
    early.sendRaw(pack([99, 1]));
    await fatal(early);
  });

  it('refuses a Register out of range with a non-fatal error naming the service, and registers nothing', async () => {
    const s = await RawSocket.worker(hub.url, 'ranges');
    const bad: [string, number, number][] = [
      ['weight-zero', 1, 0],
      ['weight-negative', 1, -1],
      ['weight-nan', 1, Number.NaN],
      ['weight-infinite', 1, Number.POSITIVE_INFINITY],
      ['weight-huge', 1, 1e9],
      ['weight-over', 1, 1_000_000.5],
      ['credit-zero', 0, 1],
      ['credit-over', 100_001, 1],
    ];
    for (const [service, credit, weight] of bad) s.send([Op.Register, service, credit, weight]);
    for (const [service] of bad) {
      const err = await s.next((f) => f[0] === Op.ProtocolError && f[3] === service);
      assert.deepEqual([err[1], err[4]], ['E_PROTOCOL', false], service);
    }
    // The limits themselves are in range.
    s.send([Op.Register, 'edges', 100_000, 1_000_000]);
    await registered('edges');
    const names = (await stats(hub)).services.map((x: ServiceStats) => x.name);
    for (const [service] of bad) assert.ok(!names.includes(service), `${service} not registered`);
    await stillOpen(s, 1);
    s.close();
  });

  it('leaves a registration as it was when a Register for it is refused', async () => {
    const s = await RawSocket.worker(hub.url, 'kept', { kept: 3 });
    await registered('kept');
    s.send([Op.Register, 'kept', 7, Number.NaN]);
    s.send([Op.Register, 'kept', 0, 2]);
    await waitUntil(() => s.frames.filter((f) => f[0] === Op.ProtocolError && f[3] === 'kept' && f[4] === false).length === 2, 2000, 'both refused');
    const me = (await stats(hub)).workers.find((x: WorkerStats) => x.instanceId === 'kept') as WorkerStats;
    assert.deepEqual(
      me.services.map((x) => [x.name, x.credit, x.weight]),
      [['kept', 3, 1]],
    );
    s.close();
  });

  it(`accepts a frame of ${MAX_FRAME_VALUES} msgpack values and refuses one of ${MAX_FRAME_VALUES + 1}, fatally`, async () => {
    const s = await RawSocket.worker(hub.url, 'at-limit');
    const before = (await stats(hub)).jobs.unknownReplies;
    // [6, id, 200, nil, nil, body] is 7 values with the array; the rest are trailing nils.
    const reply = (id: number, extra: number) => withTrailingNils(Op.Reply, [id, 200, null, null, Buffer.from('x')], extra);
    const atLimit = reply(424_242, MAX_FRAME_VALUES - 7);
    assert.ok(atLimit.length > MAX_FRAME_VALUES, 'long enough to be counted');
    s.sendRaw(atLimit);
    await waitUntil(async () => (await stats(hub)).jobs.unknownReplies === before + 1, 2000, 'the reply at the limit read');
    await stillOpen(s, 1);
    s.sendRaw(reply(424_243, MAX_FRAME_VALUES - 6));
    await fatal(s, new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
  });

  it('refuses a frame that announces a million values from its first bytes, before and after hello', async () => {
    // An array 32 header of 2^20 elements, then a megabyte of nils.
    const huge = withTrailingNils(Op.Reply, [1, 200, null, null, null], 1 << 20);
    const early = await RawSocket.open(hub.url);
    early.sendRaw(huge);
    await fatal(early, new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
    const s = await RawSocket.worker(hub.url, 'huge');
    s.sendRaw(huge);
    await fatal(s, new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
    // A Hello whose map holds thousands of unknown keys, which a hub would otherwise ignore.
    const keys = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i]));
    const hello = await RawSocket.open(hub.url);
    hello.sendRaw(pack([Op.Hello, { versions: [1], role: 'worker', ...keys }]));
    await fatal(hello, new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
    // An unknown op is no way around it.
    const future = await RawSocket.worker(hub.url, 'future-huge');
    future.sendRaw(withTrailingNils(77, [1], 5000));
    await fatal(future, new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
  });

  it('fails a job whose Reply is malformed with 502 E_BAD_REPLY at once, and redelivers the session’s other jobs', async () => {
    const s = await RawSocket.worker(hub.url, 'bad-answers', { 'bad-answer': 2 });
    await registered('bad-answer');
    const first = post(`${hub.url}/service/bad-answer`, '{"n":1}');
    const j1 = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    const second = post(`${hub.url}/service/bad-answer`, '{"n":2}');
    await s.next((f) => f[0] === Op.Job && f[1] !== j1[1]);
    const heir = await startWorker({ url: hub.url, instanceId: 'bad-answer-heir', services: [{ name: 'bad-answer' }] });
    await registered('bad-answer', 2);
    const started = Date.now();
    s.send([Op.Reply, j1[1], 99, null, null, Buffer.from('"status 99"')] as unknown as Frame);
    await fatal(s, /status/);
    const r1 = await first;
    assert.equal(r1.status, 502);
    assert.equal(r1.headers.get('x-error-code'), 'E_BAD_REPLY');
    assert.equal(r1.headers.get('x-served-by'), `${(await stats(hub)).hubId}/bad-answers`);
    assert.ok(Date.now() - started < 2000, 'answered at once, not at the deadline');
    // The other job was unanswered: it runs again on the heir.
    const r2 = await second;
    assert.equal(r2.status, 200);
    assert.equal(r2.text, '{"n":2}');
    assert.equal(heir.events('job')[0]?.attempt, 2);
    await waitUntil(async () => (await stats(hub)).jobs.badAnswers === 1, 2000, 'counted');
  });

  it('gives a session whose answer is refused no other job on its way out (a queued job runs on another worker, first attempt)', async () => {
    const s = await RawSocket.worker(hub.url, 'bad-one-slot', { 'one-slot': 1 });
    await registered('one-slot');
    const first = post(`${hub.url}/service/one-slot`, '{"n":1}');
    const j1 = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    // Queued behind the one slot of the bad worker; a healthy worker comes only after it is gone.
    const second = post(`${hub.url}/service/one-slot`, '{"n":2}');
    await waitUntil(async () => (await stats(hub)).services.find((x: { name: string }) => x.name === 'one-slot')?.queued === 1, 2000, 'queued');
    s.send([Op.Reply, j1[1], 99, null, null, Buffer.from('"status 99"')] as unknown as Frame);
    await fatal(s, /status/);
    assert.equal((await first).status, 502);
    const heir = await startWorker({ url: hub.url, instanceId: 'one-slot-heir', services: [{ name: 'one-slot' }] });
    const r2 = await second;
    assert.deepEqual([r2.status, r2.text], [200, '{"n":2}']);
    assert.ok(!s.frames.some((f) => f[0] === Op.Job && f[1] !== j1[1]), 'no second job reached the refused session');
    assert.equal(heir.events('job').find((e) => e.body === '{"n":2}')?.attempt, 1);
  });

  it('fails a job whose Error frame, or whose Reply over the value limit, is refused, with 502 E_BAD_REPLY', async () => {
    const cases: [string, (id: number) => Buffer][] = [
      ['an Error with status 700', (id) => pack([Op.Error, id, 700, 'E_X', 'x'])],
      ['a Reply with headers that are not strings', (id) => pack([Op.Reply, id, 200, null, { a: 1 }, null])],
      ['a Reply over the value limit', (id) => withTrailingNils(Op.Reply, [id, 200, null, null, null], 5000)],
    ];
    for (const [what, frame] of cases) {
      const s = await RawSocket.worker(hub.url, `bad-${cases.findIndex(([w]) => w === what)}`, { 'bad-one': 1 });
      await registered('bad-one');
      const answer = post(`${hub.url}/service/bad-one`, '{}', { 'x-timeout-ms': '3000' });
      const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
      s.sendRaw(frame(job[1]));
      await fatal(s);
      const r = await answer;
      assert.equal(r.status, 502, what);
      assert.equal(r.headers.get('x-error-code'), 'E_BAD_REPLY', what);
    }
  });

  it('names the timeoutMs field, not the HTTP header, when a Request has timeoutMs 0', async () => {
    const s = await RawSocket.worker(hub.url, 'zero-timeout');
    s.send([Op.Request, 1, 0, 'anything', null, 0, null, null, null, Buffer.alloc(0)]);
    s.send([Op.Request, 2, 1, 'anything', '', 1000, null, null, null, Buffer.alloc(0)]);
    const timeout = (await s.next((f) => f[0] === Op.Response && f[1] === 1)) as ResponseFrame;
    assert.equal(timeout[2], 400);
    const body = JSON.parse(Buffer.from(timeout[5]).toString()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'E_BAD_TIMEOUT');
    assert.match(body.error.message, /timeoutMs/);
    assert.doesNotMatch(body.error.message, /X-Timeout-Ms/i);
    const key = (await s.next((f) => f[0] === Op.Response && f[1] === 2)) as ResponseFrame;
    const keyBody = JSON.parse(Buffer.from(key[5]).toString()) as { error: { code: string; message: string } };
    assert.equal(keyBody.error.code, 'E_BAD_KEY');
    assert.doesNotMatch(keyBody.error.message, /URL/);
    s.close();
  });

  it("answers a worker's Goodbye after every frame it had queued, with its own Goodbye last, even when the worker closes at once", async () => {
    const s = await RawSocket.worker(hub.url, 'leaving', { leaving: 1 });
    await registered('leaving');
    const answer = post(`${hub.url}/service/leaving`, '{"left":1}');
    await s.next((f) => f[0] === Op.Job);
    const heir = await startWorker({ url: hub.url, instanceId: 'leaving-heir', services: [{ name: 'leaving' }] });
    await registered('leaving', 2);
    s.send([Op.Request, 1, 0, 'nobody-serves-this', null, null, null, null, null, Buffer.alloc(0)]);
    s.send([Op.Goodbye, null, 'leaving']);
    s.ws.close(1000);
    assert.equal(await s.closed, 1000);
    const ops = s.frames.map((f) => f[0]);
    assert.deepEqual(ops.slice(-2), [Op.Response, Op.Goodbye], `frames ${ops.join(',')}`);
    assert.equal(ops.filter((op) => op === Op.Goodbye).length, 1);
    // Its job was unanswered at the Goodbye: it runs again.
    const r = await answer;
    assert.equal(r.status, 200);
    assert.ok(heir.events('job').some((j) => j.attempt === 2));
  });
});
