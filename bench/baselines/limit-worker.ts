/**
 * LIMIT baseline worker: echoes every [id, body] frame back, replies batched per loop turn
 * into one socket write. usage: node limit-worker.js ws://127.0.0.1:PORT/ws
 */
import type { Socket } from 'node:net';
import { pack, unpack } from 'msgpackr';
import WebSocket from 'ws';

const ws = new WebSocket(process.argv[2]!, { perMessageDeflate: false, maxPayload: 2 * 1024 * 1024 });
let out: Buffer[] = [];
let scheduled = false;
function flush(): void {
  scheduled = false;
  const frames = out;
  out = [];
  const socket = (ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const f of frames) ws.send(f);
  socket.uncork();
}
ws.on('open', () => console.log(JSON.stringify({ event: 'ready' })));
ws.on('message', (data: Buffer) => {
  const [id, body] = unpack(data) as [number, Uint8Array];
  out.push(pack([id, body]));
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
ws.on('close', () => process.exit(0));
