/**
 * The session logic over the `ws` adapter (the one outgoing links use): a session the hub
 * dials speaks the same frames, keeps the same credit and stops and resumes for backpressure.
 * The far end is a real `ws` server playing the worker; hub-side components run in-process.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeFrame, encodeFrame, type Frame, Op, RequestMode } from '../../client/protocol.js';
import { Auth } from '../../server/auth/auth.js';
import { Counters } from '../../server/counters.js';
import { Dispatcher } from '../../server/dispatcher.js';
import { Job, type JobWaiter } from '../../server/job.js';
import { createLogger } from '../../server/log.js';
import { resolveHubOptions } from '../../server/options.js';
import { now } from '../../server/timer-wheel.js';
import { WorkerSession } from '../../server/worker-session.js';
import { WsSessionSocket } from '../../server/ws-session-socket.js';

class Waiter implements JobWaiter {
  readonly done: Job[] = [];
  settled(job: Job): void {
    this.done.push(job);
  }
}

/** A worker at the far end of a dialled link: collects frames, can stop reading. */
async function farWorker() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const frames: Frame[] = [];
  let peer: WebSocket | null = null;
  let raw: Socket | null = null;
  const connected = new Promise<void>((resolve) => {
    wss.on('connection', (ws, req) => {
      peer = ws;
      raw = req.socket as Socket;
      ws.on('message', (data: Buffer) => frames.push(decodeFrame(data, false)));
      resolve();
    });
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    frames,
    connected,
    send: (f: Frame) => peer!.send(encodeFrame(f)),
    pause: () => raw!.pause(),
    resume: () => raw!.resume(),
    close: () => new Promise<void>((r) => wss.close(() => r())),
  };
}

async function until(pred: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function hubSide(maxBackpressureBytes = 0) {
  const options = resolveHubOptions({ maxBodyBytes: 64 * 1024, ...(maxBackpressureBytes ? { maxBackpressureBytes } : {}) });
  const counters = new Counters();
  const dispatcher = new Dispatcher(options, counters);
  const host = {
    options,
    dispatcher,
    hubId: 'hub-test',
    counters,
    claimInstance: () => true,
    auth: new Auth(''),
    admitToken: () => true,
    log: createLogger('silent'),
  };
  return { options, dispatcher, counters, session: new WorkerSession(host, 1, 'test') };
}

function job(waiter: JobWaiter, body: Uint8Array, timeoutMs = 5000): Job {
  return new Job('svc', RequestMode.Any, null, body, null, null, null, now() + timeoutMs, waiter);
}

describe('a session over the ws adapter', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('says Welcome, takes a Register, delivers a job within credit and settles it with the Reply', async () => {
    const far = await farWorker();
    cleanups.push(far.close);
    const { session, dispatcher } = hubSide();
    const ws = new WebSocket(far.url);
    session.attach(new WsSessionSocket(ws, session));
    cleanups.push(() => ws.terminate());
    await once(ws, 'open');
    await far.connected;
    far.send([Op.Hello, { versions: [1], role: 'worker', instanceId: 'far-1' }]);
    await until(() => far.frames.some((f) => f[0] === Op.Welcome), 3000, 'welcome');
    far.send([Op.Register, 'svc', 1, 1]);
    await until(() => dispatcher.services.get('svc')?.regs.length === 1, 3000, 'registration');

    const waiter = new Waiter();
    assert.equal(dispatcher.submit(job(waiter, Buffer.from('one'))), true);
    assert.equal(dispatcher.submit(job(waiter, Buffer.from('two'))), true);
    await until(() => far.frames.some((f) => f[0] === Op.Job), 3000, 'first job');
    // Credit 1: the second job waits in the hub until the first is answered.
    await new Promise((r) => setTimeout(r, 50));
    const jobs = () => far.frames.filter((f) => f[0] === Op.Job) as Extract<Frame, { 0: typeof Op.Job }>[];
    assert.equal(jobs().length, 1);
    const first = jobs()[0]!;
    assert.equal(Buffer.from(first[9]).toString(), 'one');
    far.send([Op.Reply, first[1], 200, 'text/plain', null, Buffer.from('ONE')]);
    await until(() => jobs().length === 2, 3000, 'second job after the reply');
    const second = jobs()[1]!;
    far.send([Op.Reply, second[1], 201, null, null, Buffer.from('TWO')]);
    await until(() => waiter.done.length === 2, 3000, 'both settled');
    assert.deepEqual(
      waiter.done.map((j) => [j.status, Buffer.from(j.replyBody!).toString(), j.servedBy]),
      [
        [200, 'ONE', 'hub-test/far-1'],
        [201, 'TWO', 'hub-test/far-1'],
      ],
    );
  });

  it('keeps frames queued before the socket opened and sends them once it does', async () => {
    const far = await farWorker();
    cleanups.push(far.close);
    const { session, counters } = hubSide();
    const ws = new WebSocket(far.url);
    // Attached while still connecting: a frame queued now must not be counted as sent and lost.
    session.attach(new WsSessionSocket(ws, session));
    cleanups.push(() => ws.terminate());
    session.sendDrain();
    session.flush();
    assert.equal(counters.sockets.framesOut, 0);
    await until(() => far.frames.some((f) => f[0] === Op.Drain), 3000, 'the drain frame');
    assert.equal(counters.sockets.framesOut, 1);
  });

  it('stops sending while the far end does not read, and sends the rest once it drains', async () => {
    const far = await farWorker();
    cleanups.push(far.close);
    const { session, dispatcher, options } = hubSide(256 * 1024);
    cleanups.push(() => dispatcher.wheel.stop());
    const ws = new WebSocket(far.url);
    session.attach(new WsSessionSocket(ws, session));
    cleanups.push(() => ws.terminate());
    await once(ws, 'open');
    await far.connected;
    far.send([Op.Hello, { versions: [1], role: 'worker', instanceId: 'far-2' }]);
    far.send([Op.Register, 'svc', 1000, 1]);
    await until(() => dispatcher.services.get('svc')?.regs.length === 1, 3000, 'registration');
    far.pause();
    const waiter = new Waiter();
    const body = Buffer.alloc(60 * 1024, 7);
    const n = 300; // 18 MB: far beyond what the kernel buffers
    for (let i = 0; i < n / 2; i++) assert.equal(dispatcher.submit(job(waiter, body, 20_000)), true);
    await until(() => session.blocked, 5000, 'the session to block');
    // Blocked: later jobs wait in the hub's queue, not in the socket.
    for (let i = n / 2; i < n; i++) assert.equal(dispatcher.submit(job(waiter, body, 20_000)), true);
    assert.equal(dispatcher.services.get('svc')!.queued, n / 2, 'jobs wait in the hub queue');
    assert.ok(ws.bufferedAmount < options.maxBackpressureBytes * 2 + options.maxFrameBytes);
    far.resume();
    await until(() => far.frames.filter((f) => f[0] === Op.Job).length === n, 15_000, 'every job delivered');
    assert.equal(session.blocked, false);
    assert.equal(new Set(far.frames.filter((f) => f[0] === Op.Job).map((f) => f[1])).size, n);
  });
});
