import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { Op, type JobFrame } from '../../client/protocol.js';
import { post, startHub, startWorker, stats, stopAll, waitUntil, type HubProc } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

describe('malformed and hostile frames', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'max-body-bytes': 4096, 'max-frame-bytes': 8192 });
    await startWorker({ url: hub.url, services: [{ name: 'healthy' }] });
  });
  after(stopAll);

  async function stillServes(): Promise<void> {
    const r = await post(`${hub.url}/service/healthy`, '{"still":"here"}');
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"still":"here"}');
  }

  const cases: [string, (s: RawSocket) => void, boolean][] = [
    ['a text message', (s) => s.sendRaw('hello', false), true],
    ['bytes that are not msgpack', (s) => s.sendRaw(Buffer.from([0xc1, 0xff, 0x00])), true],
    ['a map instead of an array', (s) => s.sendRaw(pack({ op: 1 })), true],
    ['an unknown op', (s) => s.sendRaw(pack([99, 1, 2])), true],
    ['a frame with the wrong shape', (s) => s.sendRaw(pack([Op.Hello, 'not-a-map'])), true],
  ];
  for (const [what, act] of cases) {
    it(`closes a session that sends ${what} before hello, with a protocol error`, async () => {
      const s = await RawSocket.open(hub.url);
      act(s);
      const err = await s.next((f) => f[0] === Op.ProtocolError);
      assert.equal(err[1], 'E_PROTOCOL');
      assert.equal(err[4], true);
      assert.equal(await s.closed, 1002);
      await stillServes();
    });
  }

  it('closes a worker that sends a hub-only frame or garbage after hello', async () => {
    const s = await RawSocket.worker(hub.url, 'rude-1', { healthy: 1 });
    s.send([Op.Job, 1, 'healthy', null, 100, 1, null, null, null, Buffer.from('x')] as JobFrame);
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.equal(err[1], 'E_PROTOCOL');
    assert.equal(await s.closed, 1002);
    const t = await RawSocket.worker(hub.url, 'rude-2');
    t.sendRaw(pack([Op.Reply, 'one', 200, null, null, null]));
    assert.equal(await t.closed, 1002);
    await stillServes();
  });

  it('closes a socket that sends a frame over the frame limit', async () => {
    const s = await RawSocket.worker(hub.url, 'huge-1');
    s.sendRaw(Buffer.alloc(9000, 1));
    const code = await s.closed;
    assert.ok(code === 1009 || code === 1006, `close code ${code}`);
    await stillServes();
  });

  it('refuses a register with a bad name without closing the session', async () => {
    const s = await RawSocket.worker(hub.url, 'badname-1', { 'bad name': 1 });
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.equal(err[1], 'E_BAD_NAME');
    assert.equal(err[3], 'bad name');
    assert.equal(err[4], false);
    s.send([Op.Register, 'fine-name', 1, 1]);
    await waitUntil(async () => (await stats(hub)).services.some((x: { name: string }) => x.name === 'fine-name'), 2000, 'registered');
    s.close();
  });

  it('ignores and counts a reply to an unknown job id, and drops a duplicate reply', async () => {
    const s = await RawSocket.worker(hub.url, 'dup-1', { dup: 1 });
    await waitUntil(async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'dup' && x.workers === 1), 2000, 'registered');
    const base = (await stats(hub)).jobs;
    s.send([Op.Reply, 424242, 200, null, null, Buffer.from('nobody asked')]);
    const answer = post(`${hub.url}/service/dup`, '{"q":1}');
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"first":true}')]);
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"second":true}')]);
    const r = await answer;
    assert.equal(r.text, '{"first":true}');
    await waitUntil(async () => (await stats(hub)).jobs.unknownReplies === base.unknownReplies + 2, 2000, 'both counted');
    assert.equal(s.closeCode, null, 'the session stays open');
    s.close();
  });

  it('drops and counts a reply that comes after the deadline', async () => {
    const s = await RawSocket.worker(hub.url, 'late-1', { tardy: 1 });
    await waitUntil(async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'tardy' && x.workers === 1), 2000, 'registered');
    const base = (await stats(hub)).jobs.lateReplies;
    const answer = post(`${hub.url}/service/tardy`, '{}', { 'x-timeout-ms': '150' });
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    const cancel = await s.next((f) => f[0] === Op.Cancel);
    assert.equal(cancel[1], job[1]);
    assert.equal(cancel[2], 'E_DEADLINE');
    assert.equal((await answer).status, 504);
    s.send([Op.Reply, job[1], 200, null, null, Buffer.from('"too late"')]);
    await waitUntil(async () => (await stats(hub)).jobs.lateReplies === base + 1, 2000, 'late reply counted');
    // The late reply returned the credit: the next job is delivered.
    const next = post(`${hub.url}/service/tardy`, '{}');
    const job2 = (await s.next((f) => f[0] === Op.Job && f[1] !== job[1])) as JobFrame;
    s.send([Op.Reply, job2[1], 200, null, null, Buffer.from('"ok"')]);
    assert.equal((await next).text, '"ok"');
    s.close();
  });
});
