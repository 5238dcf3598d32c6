/**
 * LIMIT baseline: the smallest hub of astromesh's shape. Each HTTP POST body goes over one
 * WebSocket to one worker as a msgpack frame [id, body]; the worker's [id, body] completes the
 * HTTP response. A Map of pending ids, 503 without a worker, aborts handled, answers deferred
 * and corked. `--unbatched` sends one frame per job at once instead of one cork per loop turn.
 *
 * usage: node limit-hub.js [--unbatched]   (prints {"port": N})
 */

import type { HttpResponse, WebSocket } from 'uWebSockets.js';
import uWS from 'uWebSockets.js';
import { pack, unpack } from 'msgpackr';

const batched = !process.argv.includes('--unbatched');
const pending = new Map<number, HttpResponse>();
let nextId = 1;
let worker: WebSocket<unknown> | null = null;
let outFrames: Buffer[] = [];
let outScheduled = false;
let answers: [number, Uint8Array][] = [];
let answersScheduled = false;

function flushFrames(): void {
  outScheduled = false;
  const frames = outFrames;
  outFrames = [];
  if (!worker) return;
  const ws = worker;
  ws.cork(() => {
    for (const f of frames) ws.send(f, true);
  });
}

function flushAnswers(): void {
  answersScheduled = false;
  const batch = answers;
  answers = [];
  for (const [id, body] of batch) {
    // Still pending means not aborted: an aborted response must never be touched.
    const res = pending.get(id);
    if (!res) continue;
    pending.delete(id);
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(body);
    });
  }
}

const app = uWS.App();
app.ws('/ws', {
  maxPayloadLength: 2 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  open: (ws) => {
    worker = ws;
  },
  message: (_ws, msg) => {
    const [id, body] = unpack(Buffer.from(msg)) as [number, Uint8Array];
    if (!pending.has(id)) return;
    answers.push([id, Buffer.from(body)]);
    if (!answersScheduled) {
      answersScheduled = true;
      setImmediate(flushAnswers);
    }
  },
  close: (ws) => {
    if (worker === ws) worker = null;
  },
});
app.post('/*', (res) => {
  if (!worker) {
    res.writeStatus('503 Service Unavailable').end('{"error":"no worker"}');
    return;
  }
  const id = nextId++;
  res.onAborted(() => {
    pending.delete(id);
  });
  let chunks: Buffer[] = [];
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!isLast) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    chunks = [];
    pending.set(id, res);
    const frame = pack([id, body]);
    if (!batched) {
      worker?.send(frame, true);
      return;
    }
    outFrames.push(frame);
    if (!outScheduled) {
      outScheduled = true;
      setImmediate(flushFrames);
    }
  });
});
app.listen('127.0.0.1', 0, (s) => {
  if (!s) process.exit(1);
  console.log(JSON.stringify({ port: uWS.us_socket_local_port(s) }));
});
process.on('SIGTERM', () => process.exit(0));
