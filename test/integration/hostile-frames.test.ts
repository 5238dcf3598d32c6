import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pack } from 'msgpackr';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { type Frame, type JobFrame, Op } from '../../client/protocol.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { servesAgain } from '../helpers/raw-http.js';
import { RawSocket } from '../helpers/raw-socket.js';

/** msgpack ext type 0x74 with a Float64Array payload: msgpackr decodes it to a typed array, not bin. */
function typedArrayExt(): Buffer {
  const payload = Buffer.concat([Buffer.from([8]), Buffer.alloc(8)]); // 8: Float64Array in msgpackr's table
  return Buffer.concat([Buffer.from([0xc7, payload.length, 0x74]), payload]);
}

/** [5, [[[[ … ]]]]]: an array nested far deeper than any frame, to exhaust a recursive decoder. */
function deeplyNested(depth: number): Buffer {
  return Buffer.concat([Buffer.from([0x92, 0x06]), Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
}

/** Each is fatal before hello and after it; an unknown op, fatal only before hello, is in refused-frames.test.ts. */
const GARBAGE: [string, (s: RawSocket) => void][] = [
  ['a text message', (s) => s.sendRaw('{"op":1}', false)],
  ['bytes that are not msgpack', (s) => s.sendRaw(Buffer.from([0xc1, 0xff, 0x00, 0x13]))],
  ['a truncated msgpack array', (s) => s.sendRaw(Buffer.from([0x93, 0x06, 0x01]))],
  ['a msgpack map instead of an array', (s) => s.sendRaw(pack({ op: Op.Hello, versions: [1] }))],
  ['an empty array', (s) => s.sendRaw(pack([]))],
  ['an op that is a string', (s) => s.sendRaw(pack(['6', 1, 200, null, null, null]))],
  ['a hello that is not a map', (s) => s.sendRaw(pack([Op.Hello, 'not-a-map']))],
  ['a deeply nested array', (s) => s.sendRaw(deeplyNested(8000))],
];

describe('malformed and hostile frames from a raw WebSocket', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'max-body-bytes': 4096, 'max-frame-bytes': 8192, 'ping-interval-ms': 100, 'pong-timeout-ms': 300, 'hello-timeout-ms': 1000 });
    await startWorker({ url: hub.url, instanceId: 'healthy', services: [{ name: 'healthy' }] });
  });
  after(stopAll);

  /** The hub still serves HTTP callers through a normal worker. */
  const stillServes = (tag: string) => servesAgain(hub, 'healthy', tag, false);

  async function refused(s: RawSocket, code = 'E_PROTOCOL'): Promise<void> {
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.equal(err[1], code);
    assert.equal(typeof err[2], 'string');
    assert.equal(err[4], true, 'fatal');
    assert.equal(await s.closed, 1002);
  }

  for (const [what, act] of GARBAGE) {
    it(`answers ${what} before hello with a protocol error and a close`, { timeout: 8000 }, async () => {
      const before = (await stats(hub)).sockets.protocolErrors;
      const s = await RawSocket.open(hub.url);
      act(s);
      await refused(s);
      assert.ok((await stats(hub)).sockets.protocolErrors > before, 'counted');
      await stillServes(`before hello: ${what}`);
    });
    it(`answers ${what} after hello with a protocol error and a close`, { timeout: 8000 }, async () => {
      const s = await RawSocket.worker(hub.url, `garbage-${GARBAGE.findIndex(([w]) => w === what)}`, { 'garbage-svc': 4 });
      act(s);
      await refused(s);
      await stillServes(`after hello: ${what}`);
    });
  }

  const WRONG_FRAMES: [string, Frame | Buffer][] = [
    ['a Job frame', [Op.Job, 1, 'healthy', null, 100, 1, null, null, null, Buffer.from('x')] as JobFrame],
    ['a Welcome frame', [Op.Welcome, { version: 1, hubId: 'h', sessionId: 1, instanceId: 'i', maxFrameBytes: 1, pingIntervalMs: 1, pongTimeoutMs: 1 }]],
    ['a Response frame', [Op.Response, 1, 200, null, null, Buffer.from('x'), null]],
    ['a ProtocolError frame', [Op.ProtocolError, 'E_PROTOCOL', 'you', null, true]],
    ['a second Hello', [Op.Hello, { versions: [1], role: 'worker' }]],
    ['a Reply with a string job id', pack([Op.Reply, 'one', 200, null, null, null])],
    ['a Reply with status 99', pack([Op.Reply, 1, 99, null, null, null])],
    ['a Reply whose body is an extension type', Buffer.concat([Buffer.from([0x96, Op.Reply, 0x01, 0xcc, 200, 0xc0, 0xc0]), typedArrayExt()])],
    ['a Register with a non-numeric concurrency', pack([Op.Register, 'healthy', 'lots', 1])],
  ];
  for (const [what, frame] of WRONG_FRAMES) {
    it(`closes a worker that sends ${what} to the hub`, { timeout: 8000 }, async () => {
      const s = await RawSocket.worker(hub.url, `wrong-${WRONG_FRAMES.findIndex(([w]) => w === what)}`);
      if (Buffer.isBuffer(frame)) s.sendRaw(frame);
      else s.send(frame);
      await refused(s);
      await stillServes(what);
    });
  }

  it('refuses any frame before hello, and a hello without a common version', { timeout: 8000 }, async () => {
    const early = await RawSocket.open(hub.url);
    early.send([Op.Register, 'healthy', 1, 1]);
    await refused(early);
    const replyFirst = await RawSocket.open(hub.url);
    replyFirst.send([Op.Reply, 1, 200, null, null, Buffer.from('x')]);
    await refused(replyFirst);
    const future = await RawSocket.open(hub.url);
    future.send([Op.Hello, { versions: [99], role: 'worker' }]);
    await refused(future, 'E_VERSION');
    assert.ok(
      !(await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'healthy' && x.workers > 1),
      'an early register took effect',
    );
    await stillServes('early frames');
  });

  it('closes a socket that never says hello within the hello timeout', { timeout: 8000 }, async () => {
    const silent = await RawSocket.open(hub.url);
    assert.equal(await silent.closed, 1002);
    assert.equal(silent.frames.length, 0);
    await stillServes('silent socket');
  });

  it('closes a socket that sends a frame over --max-frame-bytes, before and after hello', { timeout: 8000 }, async () => {
    for (const hello of [false, true]) {
      const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`, { maxPayload: 1 << 20 });
      ws.on('error', () => {});
      await new Promise((r) => ws.once('open', r));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      if (hello) ws.send(pack([Op.Hello, { versions: [1], role: 'worker', instanceId: 'oversize' }]));
      ws.send(Buffer.concat([Buffer.from([0x92, Op.Reply]), Buffer.alloc(9000, 0x01)]));
      const code = await closed;
      // Not 1002: that would mean the hub decoded the frame instead of refusing its size.
      assert.ok(code === 1009 || code === 1006, `close code ${code}`);
      await stillServes(`oversized frame, hello ${hello}`);
    }
    await waitUntil(async () => !(await stats(hub)).workers.some((x: { instanceId: string }) => x.instanceId === 'oversize'), 2000, 'oversized session gone');
  });

  it('refuses a register with a bad name without closing the session, which can still register', { timeout: 8000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'badname', { 'bad name': 1 });
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.equal(err[1], 'E_BAD_NAME');
    assert.equal(err[3], 'bad name');
    assert.equal(err[4], false, 'not fatal');
    s.send([Op.Register, 'fine-name', 1, 1]);
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'fine-name' && x.workers === 1),
      2000,
      'registered',
    );
    assert.equal(s.closeCode, null);
    s.close();
  });

  it('redelivers the job held by a worker closed for a malformed frame', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'rude-holder', { held: 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'held' && x.workers === 1),
      2000,
      'registered',
    );
    const answer = post(`${hub.url}/service/held`, '{"held":1}');
    await s.next((f) => f[0] === Op.Job);
    const heir = await startWorker({ url: hub.url, instanceId: 'held-heir', services: [{ name: 'held' }] });
    s.sendRaw(Buffer.from([0xc1]));
    await refused(s);
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"held":1}');
    assert.equal(heir.events('job')[0]?.attempt, 2);
  });

  it('ignores and counts replies, errors and cancel acks for unknown job ids without closing the session', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'unknown-ids', { unknowns: 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'unknowns' && x.workers === 1),
      2000,
      'registered',
    );
    const base = (await stats(hub)).jobs;
    s.send([Op.Reply, 424242, 200, null, null, Buffer.from('"nobody asked"')]);
    s.send([Op.Error, 424243, 500, 'E_NOPE', 'nobody asked']);
    s.send([Op.CancelAck, 424244]);
    await waitUntil(async () => (await stats(hub)).jobs.unknownReplies === base.unknownReplies + 3, 2000, 'three unknown ids counted');
    // The session is open and keeps working.
    const answer = post(`${hub.url}/service/unknowns`, '{"u":1}');
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"known":true}')]);
    assert.equal((await answer).text, '{"known":true}');
    assert.equal(s.closeCode, null);
    const after = (await stats(hub)).jobs;
    assert.equal(after.replied, base.replied + 1);
    assert.equal(after.errorReplies, base.errorReplies);
    s.close();
  });

  it('delivers the first reply to a job and drops a duplicate, counting it', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'dup', { dup: 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'dup' && x.workers === 1),
      2000,
      'registered',
    );
    const base = (await stats(hub)).jobs;
    const answer = post(`${hub.url}/service/dup`, '{"d":1}');
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"first":true}')]);
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"second":true}')]);
    s.send([Op.Error, job[1], 500, 'E_THIRD', 'third']);
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"first":true}');
    await waitUntil(async () => (await stats(hub)).jobs.unknownReplies === base.unknownReplies + 2, 2000, 'duplicates counted');
    const after = (await stats(hub)).jobs;
    assert.equal(after.replied, base.replied + 1);
    assert.equal(after.errorReplies, base.errorReplies);
    // One credit, given back once: a second job is delivered and a third waits for it.
    const second = post(`${hub.url}/service/dup`, '{"d":2}');
    const job2 = (await s.next((f) => f[0] === Op.Job && f[1] !== job[1])) as JobFrame;
    assert.equal((await stats(hub)).workers.find((x: { instanceId: string }) => x.instanceId === 'dup').inflight, 1);
    s.send([Op.Reply, job2[1], 200, 'application/json', null, Buffer.from('{"d":2}')]);
    assert.equal((await second).text, '{"d":2}');
    assert.equal(s.closeCode, null);
    s.close();
  });

  it("never lets a reply's content type or headers split the HTTP answer", { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'splitter', { split: 4 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'split' && x.workers === 1),
      2000,
      'registered',
    );
    // One keep-alive connection, two requests in turn: each must get exactly its own answer.
    const tcp = net.connect(hub.port, '127.0.0.1');
    await new Promise((r) => tcp.once('connect', r));
    let out = '';
    tcp.setEncoding('utf8');
    tcp.on('data', (d: string) => (out += d));
    const ask = (body: string) =>
      tcp.write(`POST /service/split HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    ask('{"n":1}');
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    const injected = 'text/plain\r\nx-error-code: E_FORGED\r\nContent-Length: 5\r\n\r\nHELLOHTTP/1.1 200 OK\r\nx-injected: 1';
    s.send([Op.Reply, job[1], 200, injected, { 'x-fine': 'yes', 'x-bad': 'a\r\nx-injected: 2' }, Buffer.from('real-1')]);
    await waitUntil(() => out.endsWith('real-1'), 2000, 'first answer');
    ask('{"n":2}');
    const job2 = (await s.next((f) => f[0] === Op.Job && f[1] !== job[1])) as JobFrame;
    s.send([Op.Reply, job2[1], 200, 'text/plain', null, Buffer.from('real-2')]);
    await waitUntil(() => out.endsWith('real-2'), 2000, 'second answer');
    tcp.destroy();
    const answers = out.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, `expected two answers on the connection, got:\n${out}`);
    assert.doesNotMatch(out, /x-injected|E_FORGED|HELLO/i);
    assert.match(answers[0]!, /\r\nx-fine: yes\r\n/);
    assert.match(answers[0]!, /\r\ncontent-type: application\/json\r\n/);
    assert.ok(answers[0]!.endsWith('\r\n\r\nreal-1'));
    assert.match(answers[1]!, /\r\ncontent-type: text\/plain\r\n/);
    s.close();
  });

  it("drops the body of a 204 or 304 reply, so the caller's connection keeps working", { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'nobody', { bodiless: 4 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'bodiless' && x.workers === 1),
      2000,
      'registered',
    );
    const seen = new Set<number>();
    s.ws.on('message', () =>
      setImmediate(() => {
        for (const f of s.frames) {
          if (f[0] !== Op.Job || seen.has(f[1])) continue;
          seen.add(f[1]);
          const want = JSON.parse(Buffer.from(f[9]).toString()) as { status: number };
          // A handler that returns json(null, 204) sends the body "null"; a hostile one sends an answer.
          const body = want.status === 200 ? '"plain"' : 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged';
          s.send([Op.Reply, f[1], want.status, 'application/json', null, Buffer.from(body)]);
        }
      }),
    );
    const agent = new Agent({ connections: 1 });
    try {
      for (const status of [204, 200, 304, 200, 204]) {
        const r = await request(`${hub.url}/service/bodiless`, {
          method: 'POST',
          body: JSON.stringify({ status }),
          headers: { 'content-type': 'application/json' },
          dispatcher: agent,
        });
        const text = await r.body.text();
        assert.equal(r.statusCode, status);
        assert.equal(text, status === 200 ? '"plain"' : '');
      }
    } finally {
      await agent.close();
      s.close();
    }
  });

  it('never lets one session answer a job held by another', { timeout: 10_000 }, async () => {
    const a = await RawSocket.worker(hub.url, 'iso-a', { iso: 1 });
    const b = await RawSocket.worker(hub.url, 'iso-b', { iso: 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'iso' && x.workers === 2),
      2000,
      'both registered',
    );
    const base = (await stats(hub)).jobs.unknownReplies;
    const answer = post(`${hub.url}/service/iso`, '{"iso":1}');
    const holder = await Promise.race([a, b].map((s) => s.next((f) => f[0] === Op.Job).then((f) => ({ s, f: f as JobFrame }))));
    const other = holder.s === a ? b : a;
    // The other session guesses the holder's job id (ids are per session, so it is a small integer).
    other.send([Op.Reply, holder.f[1], 200, 'application/json', null, Buffer.from('{"forged":true}')]);
    await waitUntil(async () => (await stats(hub)).jobs.unknownReplies === base + 1, 2000, 'forged reply counted');
    holder.s.send([Op.Reply, holder.f[1], 200, 'application/json', null, Buffer.from('{"genuine":true}')]);
    assert.equal((await answer).text, '{"genuine":true}');
    a.close();
    b.close();
  });
});
