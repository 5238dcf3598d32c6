/**
 * Limits on one WebSocket session: the time to say Hello (--hello-timeout-ms), refused frames
 * before it is closed (--max-protocol-errors) and services it registers
 * (--max-services-per-session).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pack } from 'msgpackr';
import { CloseCode, Op } from '../../client/protocol.js';
import { type HubProc, startHub, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

interface WorkerStats {
  instanceId: string;
  services: { name: string; credit: number }[];
}

describe('session limits', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    // A pong timeout far longer than the hello timeout: the close must come from the latter.
    hub = await startHub({
      'hello-timeout-ms': 300,
      'ping-interval-ms': 5000,
      'pong-timeout-ms': 20_000,
      'max-protocol-errors': 5,
      'max-services-per-session': 3,
    });
  });
  after(stopAll);

  it('closes a socket that says no hello within --hello-timeout-ms with 1002, not after the pong timeout', async () => {
    const started = Date.now();
    const silent = await RawSocket.open(hub.url);
    assert.equal(await silent.closed, CloseCode.Protocol);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 3000, `closed after ${took} ms`);
    assert.equal(silent.frames.length, 0);
    // One that says hello in time stays.
    const s = await RawSocket.worker(hub.url, 'in-time');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(s.closeCode, null);
    s.close();
  });

  it('closes a session with 1008 after --max-protocol-errors refused frames, each refusal sent first', async () => {
    const s = await RawSocket.worker(hub.url, 'refused-often');
    for (let i = 0; i < 8; i++) s.sendRaw(pack([100 + i, 'future']));
    assert.equal(await s.closed, CloseCode.Policy);
    const errors = s.frames.filter((f) => f[0] === Op.ProtocolError);
    assert.deepEqual(
      errors.slice(0, 5).map((f) => [f[3], f[4]]),
      [100, 101, 102, 103, 104].map((op) => [op, false]),
    );
    assert.equal(errors.length, 6, 'five refusals, then the one that ends the session');
    assert.deepEqual([errors[5]![1], errors[5]![3], errors[5]![4]], ['E_PROTOCOL', null, true]);
    assert.match(errors[5]![2] as string, /5 frames refused/);
  });

  it('refuses a Register past --max-services-per-session with a non-fatal E_OVERLOADED, and still updates those it has', async () => {
    const s = await RawSocket.worker(hub.url, 'many-services', { a: 1, b: 1, c: 1, d: 1 });
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([err[1], err[3], err[4]], ['E_OVERLOADED', 'd', false]);
    assert.match(err[2] as string, /at most 3 services/);
    s.send([Op.Register, 'a', 7, 1]);
    const me = async () => (await stats(hub)).workers.find((w: WorkerStats) => w.instanceId === 'many-services') as WorkerStats;
    await waitUntil(async () => (await me()).services.find((x) => x.name === 'a')?.credit === 7, 2000, 'a updated');
    assert.deepEqual((await me()).services.map((x) => x.name).sort(), ['a', 'b', 'c']);
    // Unregistering one makes room.
    s.send([Op.Unregister, 'b']);
    s.send([Op.Register, 'd', 1, 1]);
    await waitUntil(async () => (await me()).services.some((x) => x.name === 'd'), 2000, 'd registered');
    assert.equal(s.closeCode, null);
    s.close();
  });
});
