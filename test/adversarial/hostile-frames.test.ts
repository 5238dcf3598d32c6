/**
 * Hostile frames, beyond test/integration/hostile-frames.test.ts and refused-frames.test.ts (which
 * cover garbage before and after Hello, oversized and deeply nested messages, hub-only ops, unknown
 * and foreign job ids, duplicate replies, unknown ops and the value limit): a wrong type in every
 * field of every op a client sends, extension values where nil is allowed, fragmented messages,
 * and replies that try to break what the hub builds from them. Each case asserts its exact outcome,
 * then that the hub still serves others with its counters back at baseline.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { type Frame, type JobFrame, Op, type ResponseFrame } from '../../client/protocol.js';
import { Ext, encodeValue, type MsgValue } from '../helpers/fuzz.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { servesAgain } from '../helpers/raw-http.js';
import { RawSocket } from '../helpers/raw-socket.js';

const EXT = new Ext(0, new Uint8Array(1));
const HEADERS_65 = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v']));

/** Wrong values for each field type of PROTOCOL.md's tables. */
const WRONG: Record<string, MsgValue[]> = {
  uint: ['1', -1, 1.5, true, null, EXT],
  'uint?': ['1', -1, 1.5, true, EXT],
  str: [1, null, ['a'], EXT],
  'str?': [1, true, { a: 'b' }, EXT],
  status: [199, 600, '200', null, EXT],
  'status?': [600, '500', EXT],
  'headers?': ['a', { a: 1 }, HEADERS_65, EXT],
  bin: [42, true, { a: 'b' }, EXT],
  weight: ['1', null, EXT],
  mode: [3, -1, '0', EXT],
};

/** Every op a client sends after Hello: a valid frame, and the type of each field after the op. */
const CLIENT_FRAMES: [string, MsgValue[], string[]][] = [
  ['Register', [Op.Register, 'hf-svc', 1, 1], ['str', 'uint', 'weight']],
  ['Unregister', [Op.Unregister, 'hf-svc'], ['str']],
  ['Reply', [Op.Reply, 9999, 200, null, null, Buffer.from('x')], ['uint', 'status', 'str?', 'headers?', 'bin']],
  ['Error', [Op.Error, 9999, 500, 'E_X', 'x'], ['uint', 'status?', 'str?', 'str?']],
  ['Cancel', [Op.Cancel, 9999, null], ['uint', 'str?']],
  ['CancelAck', [Op.CancelAck, 9999], ['uint']],
  [
    'Request',
    [Op.Request, 1, 0, 'hf-svc', null, 1000, null, null, null, Buffer.from('x')],
    ['uint', 'mode', 'str', 'str?', 'uint?', 'str?', 'headers?', 'str?', 'bin'],
  ],
  ['Goodbye', [Op.Goodbye, null, 'bye'], ['str?', 'str?']],
];

const HELLO_WRONG: [string, Record<string, MsgValue>][] = [
  ['versions not an array', { versions: 1, role: 'worker' }],
  ['versions empty', { versions: [], role: 'worker' }],
  ['17 versions', { versions: Array.from({ length: 17 }, () => 1), role: 'worker' }],
  ['a version 0', { versions: [0], role: 'worker' }],
  ['a version that is a string', { versions: ['1'], role: 'worker' }],
  ['no role', { versions: [1] }],
  ['an unknown role', { versions: [1], role: 'admin' }],
  ['an instanceId with a space', { versions: [1], role: 'worker', instanceId: 'a b' }],
  ['an instanceId of 129 characters', { versions: [1], role: 'worker', instanceId: 'i'.repeat(129) }],
  ['an instanceId that is a number', { versions: [1], role: 'worker', instanceId: 7 }],
  ['an instanceId that is an extension value', { versions: [1], role: 'worker', instanceId: EXT }],
  ['a token of 4097 characters', { versions: [1], role: 'worker', token: 't'.repeat(4097) }],
  ['a name that is a map', { versions: [1], role: 'worker', name: { a: 'b' } }],
  ['a name of 257 characters', { versions: [1], role: 'worker', name: 'n'.repeat(257) }],
];

describe('hostile frames, field by field', { timeout: 120_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'hub-id': 'hf', 'max-body-bytes': 4096, 'max-frame-bytes': 8192, 'ping-interval-ms': 200, 'pong-timeout-ms': 2000 });
    await startWorker({ url: hub.url, instanceId: 'hf-healthy', services: [{ name: 'healthy' }] });
  });
  after(stopAll);

  async function stillServes(tag: string): Promise<void> {
    await servesAgain(hub, 'healthy', tag);
    // Every hostile session is gone: only the healthy worker is left.
    await waitUntil(async () => (await stats(hub)).workers.length === 1, 3000, 'hostile sessions gone');
  }

  /** Sends `bytes` on a fresh session (after Hello unless `early`) and expects a fatal E_PROTOCOL and close 1002. */
  async function fatal(bytes: Buffer, what: string, early = false): Promise<void> {
    const s = early ? await RawSocket.open(hub.url) : await RawSocket.worker(hub.url, `hf-${Math.random().toString(36).slice(2)}`);
    s.sendRaw(bytes);
    const err = await s.next((f) => f[0] === Op.ProtocolError, 3000).catch(() => null);
    assert.ok(err, `${what}: no ProtocolError`);
    assert.deepEqual([err[1], err[4]], ['E_PROTOCOL', true], what);
    assert.equal(await s.closed, 1002, what);
  }

  it('ends the session with a fatal E_PROTOCOL for a wrong type in any field of any op a client sends', async () => {
    const cases: [string, Buffer][] = [];
    for (const [name, valid, types] of CLIENT_FRAMES) {
      types.forEach((type, i) => {
        for (const wrong of WRONG[type]!) {
          const f = [...valid];
          f[i + 1] = wrong;
          cases.push([`${name} field ${i + 1} (${type}) = ${JSON.stringify(wrong)}`, encodeValue(f)]);
        }
      });
      // One field short.
      if (types.length > 0 && name !== 'Cancel' && name !== 'Goodbye') cases.push([`${name} one field short`, encodeValue(valid.slice(0, -1))]);
    }
    const before = await stats(hub);
    for (let i = 0; i < cases.length; i += 16) await Promise.all(cases.slice(i, i + 16).map(([what, bytes]) => fatal(bytes, what)));
    const after = await stats(hub);
    assert.ok(after.sockets.protocolErrors >= before.sockets.protocolErrors + cases.length, 'each counted');
    assert.ok(!after.services.some((s: { name: string }) => s.name === 'hf-svc'), 'nothing registered');
    await stillServes('wrong types');
  });

  it('ends the session for a Hello that breaks any of its rules, before anything else is read', async () => {
    for (const [what, hello] of HELLO_WRONG) await fatal(encodeValue([Op.Hello, hello]), what, true);
    await stillServes('bad hellos');
  });

  it('fails the job at once with 502 E_BAD_REPLY when its Reply carries an extension value where nil is allowed', async () => {
    const s = await RawSocket.worker(hub.url, 'hf-ext', { 'hf-ext': 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'hf-ext' && x.workers === 1),
      2000,
      'registered',
    );
    const answer = post(`${hub.url}/service/hf-ext`, '{}', { 'x-timeout-ms': '3000' });
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    s.sendRaw(encodeValue([Op.Reply, job[1], 200, EXT, null, Buffer.from('{}')]));
    const r = await answer;
    assert.equal(r.status, 502);
    assert.equal(r.headers.get('x-error-code'), 'E_BAD_REPLY');
    assert.equal(await s.closed, 1002);
    await stillServes('extension in a reply');
  });

  it('reassembles a frame sent in WebSocket fragments, and refuses fragments that add up to more than --max-frame-bytes', async () => {
    const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`);
    ws.on('error', () => {});
    await new Promise((r) => ws.once('open', r));
    const got: Frame[] = [];
    const { decodeFrame } = await import('../../client/protocol.js');
    ws.on('message', (d: Buffer) => got.push(decodeFrame(d, false)));
    const hello = encodeValue([Op.Hello, { versions: [1], role: 'client', instanceId: 'hf-frag' }]);
    // Three fragments, with a ping between two of them (control frames may interleave).
    ws.send(hello.subarray(0, 3), { fin: false });
    ws.ping();
    ws.send(hello.subarray(3, 10), { fin: false });
    ws.send(hello.subarray(10), { fin: true });
    await waitUntil(() => got.some((f) => f[0] === Op.Welcome), 2000, 'welcome');
    const request = encodeValue([Op.Request, 1, 0, 'healthy', null, 2000, 'application/json', null, null, Buffer.from('{"frag":1}')]);
    for (let i = 0; i < request.length; i++) ws.send(request.subarray(i, i + 1), { fin: i === request.length - 1 });
    await waitUntil(() => got.some((f) => f[0] === Op.Response), 2000, 'response');
    const resp = got.find((f) => f[0] === Op.Response) as ResponseFrame;
    assert.deepEqual([resp[1], resp[2], Buffer.from(resp[5]).toString()], [1, 200, '{"frag":1}']);
    // 8 KiB of fragments with no end: the message is over the limit before it is whole.
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    for (let i = 0; i < 9; i++) ws.send(Buffer.alloc(1024, 0xc0), { fin: false });
    const code = await closed;
    assert.ok(code === 1009 || code === 1006, `close ${code}`);
    await stillServes('fragments');
  });

  it('ends the session for a text message sent in fragments', async () => {
    const s = await RawSocket.worker(hub.url, 'hf-textfrag');
    s.ws.send('{"op":', { fin: false, binary: false });
    s.ws.send('1}', { fin: true, binary: false });
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([err[1], err[4]], ['E_PROTOCOL', true]);
    assert.equal(await s.closed, 1002);
    await stillServes('text fragments');
  });

  it('ignores an Unregister of a service the session never registered, a Cancel of a request not in flight, and a second Drain', async () => {
    const s = await RawSocket.worker(hub.url, 'hf-ignored', { 'hf-mine': 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'hf-mine' && x.workers === 1),
      2000,
      'registered',
    );
    s.send([Op.Unregister, 'healthy']);
    s.send([Op.Cancel, 424242, null]);
    s.send([Op.Drain]);
    s.send([Op.Drain]);
    s.send([Op.Register, 'hf-mine', 1, 1]);
    const err = await s.next((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([err[1], err[3], err[4]], ['E_SHUTTING_DOWN', 'hf-mine', false]);
    // Requests still work on a draining session, and the healthy worker kept its registration.
    s.send([Op.Request, 7, 0, 'healthy', null, 2000, null, null, null, Buffer.from('"d"')]);
    const r = (await s.next((f) => f[0] === Op.Response && f[1] === 7)) as ResponseFrame;
    assert.equal(r[2], 200);
    assert.equal(s.frames.filter((f) => f[0] === Op.Response).length, 1, 'no answer to the Cancel');
    assert.equal(s.closeCode, null);
    s.close();
    await stillServes('ignored frames');
  });

  it('answers a repeated request id with a non-fatal E_PROTOCOL naming it, and the first request once', async () => {
    const s = await RawSocket.worker(hub.url, 'hf-repeat');
    s.send([Op.Request, 5, 0, 'healthy', null, 2000, null, null, null, Buffer.from('"one"')]);
    s.send([Op.Request, 5, 0, 'healthy', null, 2000, null, null, null, Buffer.from('"two"')]);
    const first = (await s.next((f) => f[0] === Op.Response && f[1] === 5)) as ResponseFrame;
    const err = s.frames.find((f) => f[0] === Op.ProtocolError);
    assert.deepEqual([err?.[1], err?.[3], err?.[4]], ['E_PROTOCOL', 5, false]);
    assert.equal(Buffer.from(first[5]).toString(), '"one"');
    // Once answered, the id is free again.
    s.send([Op.Request, 5, 0, 'healthy', null, 2000, null, null, null, Buffer.from('"three"')]);
    await waitUntil(() => s.frames.filter((f) => f[0] === Op.Response).length === 2, 2000, 'the reused id answered');
    assert.equal(s.frames.filter((f) => f[0] === Op.Response && f[1] === 5).length, 2);
    s.close();
    await stillServes('repeated ids');
  });

  it('keeps a broadcast answer one valid JSON array when a worker labels a reply JSON that is not', async () => {
    const liar = await RawSocket.worker(hub.url, 'hf-b-liar', { 'hf-bcast': 1 });
    const honest = await RawSocket.worker(hub.url, 'hf-b-zhonest', { 'hf-bcast': 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'hf-bcast' && x.workers === 2),
      2000,
      'both registered',
    );
    const answer = post(`${hub.url}/api/broadcast/hf-bcast/k`, '{}');
    // A body that would close the array early and add elements that look like other workers' replies.
    const forged = '{"a":1}],[{"forged":true},{"forged":true}';
    const j1 = (await liar.next((f) => f[0] === Op.Job)) as JobFrame;
    liar.send([Op.Reply, j1[1], 200, 'application/json', null, Buffer.from(forged)]);
    const j2 = (await honest.next((f) => f[0] === Op.Job)) as JobFrame;
    honest.send([Op.Reply, j2[1], 200, null, null, Buffer.from('{"ok":true}')]);
    const r = await answer;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), [forged, { ok: true }]);
    assert.equal(r.headers.get('x-broadcast-asked'), '2');
    // A single NUL byte, labelled JSON, the case the HTTP fuzzer found.
    const again = post(`${hub.url}/api/broadcast/hf-bcast/k`, '{}');
    const k1 = (await liar.next((f) => f[0] === Op.Job && f[1] !== j1[1])) as JobFrame;
    liar.send([Op.Reply, k1[1], 200, 'application/json', null, Buffer.from([0])]);
    const k2 = (await honest.next((f) => f[0] === Op.Job && f[1] !== j2[1])) as JobFrame;
    honest.send([Op.Reply, k2[1], 200, 'application/problem+json', null, Buffer.from(' 7 ')]);
    assert.deepEqual((await again).json(), ['\u0000', 7]);
    liar.close();
    honest.close();
    await stillServes('broadcast replies');
  });
});
