/**
 * One example of every frame type, as PROTOCOL.md shows them byte for byte. The doc test
 * checks that PROTOCOL.md's hex dumps are what encodeFrame produces for these.
 */
import { Op, RequestMode, type Frame } from '../../client/protocol.js';

export const EXAMPLE_FRAMES: Record<string, Frame> = {
  hello: [Op.Hello, { versions: [1], role: 'worker', instanceId: 'w1' }],
  welcome: [Op.Welcome, { version: 1, hubId: 'h1', sessionId: 7, instanceId: 'w1', maxFrameBytes: 1114112, pingIntervalMs: 10000, pongTimeoutMs: 20000 }],
  register: [Op.Register, 'echo', 16, 1],
  unregister: [Op.Unregister, 'echo'],
  job: [Op.Job, 1, 'echo', 'k1', 30000, 1, 'application/json', null, null, Buffer.from('{"a":1}')],
  reply: [Op.Reply, 1, 200, 'application/json', null, Buffer.from('{"ok":1}')],
  error: [Op.Error, 1, 500, 'E_HANDLER', 'boom'],
  cancel: [Op.Cancel, 1, 'E_DEADLINE'],
  cancelAck: [Op.CancelAck, 1],
  request: [Op.Request, 3, RequestMode.Keyed, 'echo', 'k1', 5000, 'application/json', { 'x-request-id': 'r1' }, null, Buffer.from('{}')],
  response: [Op.Response, 3, 200, 'application/json', null, Buffer.from('{"ok":1}'), 'h1/w1'],
  drain: [Op.Drain],
  goodbye: [Op.Goodbye, null, 'bye'],
  protocolError: [Op.ProtocolError, 'E_BAD_NAME', 'bad name', 'a b', false],
};

/** Hex of a buffer as PROTOCOL.md prints it: lower-case byte pairs, 16 per line. */
export function hexDump(bytes: Uint8Array): string {
  const pairs = [...bytes].map((b) => b.toString(16).padStart(2, '0'));
  const lines: string[] = [];
  for (let i = 0; i < pairs.length; i += 16) lines.push(pairs.slice(i, i + 16).join(' '));
  return lines.join('\n');
}
