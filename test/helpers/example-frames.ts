/**
 * One example of every frame type, and the annotated byte listings PROTOCOL.md shows for them.
 * The doc test regenerates every listing from encodeFrame and compares it with PROTOCOL.md, so
 * a change to the encoder that moves a byte fails the test. Run this file to print the listings:
 *
 *   node dist/test/helpers/example-frames.js
 */
import { fileURLToPath } from 'node:url';
import { encodeFrame, type Frame, Op, RequestMode } from '../../client/protocol.js';
import { encodePeerFrame, type PeerFrame, PeerOp, RING_ALGORITHM } from '../../server/mesh/peer-protocol.js';

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
  errorResponse: [
    Op.Response,
    4,
    503,
    'application/json',
    { 'x-error-code': 'E_NO_WORKERS', 'retry-after': '1' },
    Buffer.from('{"error":{"code":"E_NO_WORKERS","message":"no workers"}}'),
    'h1',
  ],
  drain: [Op.Drain],
  goodbye: [Op.Goodbye, null, 'bye'],
  protocolError: [Op.ProtocolError, 'E_BAD_NAME', 'bad name', 'a b', false],
};

/** Challenges in the examples: 16 bytes that are easy to spot. */
const CHALLENGE_A = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const CHALLENGE_B = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');

/** One example of every peer frame (PROTOCOL.md, "Peer links"). */
export const PEER_EXAMPLE_FRAMES: Record<string, PeerFrame> = {
  challenge: [PeerOp.Challenge, { hubId: 'hub-b', bootNonce: 'n2', versions: [1, 2], ring: RING_ALGORITHM, challenge: CHALLENGE_B }],
  peerHello: [
    PeerOp.PeerHello,
    { hubId: 'hub-a', bootNonce: 'n1', versions: [1, 2], ring: RING_ALGORITHM, challenge: CHALLENGE_A, advertise: '10.0.0.1:3000', proof: null },
  ],
  peerWelcome: [PeerOp.PeerWelcome, { advertise: '10.0.0.2:3000', proof: null }],
  members: [
    PeerOp.Members,
    7,
    [
      ['echo', 'w1', 1],
      ['echo', 'w2', 2],
    ],
  ],
  membersDelta: [PeerOp.MembersDelta, 8, [['echo', 'w2', 0]]],
  forward: [PeerOp.Forward, 1, RequestMode.Keyed, 'echo', 'k1', 'w1', 29998, 1, 'application/json', null, null, Buffer.from('{"a":1}'), 1],
  forwardReply: [PeerOp.ForwardReply, 1, 200, 'application/json', null, Buffer.from('{"ok":1}'), 'hub-b/w1'],
  forwardError: [PeerOp.ForwardError, 1, 500, 'E_HANDLER', 'boom', 'hub-b/w1'],
  forwardCancel: [PeerOp.ForwardCancel, 1, 'E_CANCELLED'],
  handBack: [PeerOp.HandBack, 1, false],
  snapshotRequest: [PeerOp.SnapshotRequest],
  peers: [PeerOp.Peers, [['hub-c', '10.0.0.3:3000']]],
  claim: [PeerOp.Claim, 'w1', null],
  grants: [
    PeerOp.Grants,
    [
      ['billing', 32],
      ['old-service', 0],
    ],
  ],
  leaseReply: [PeerOp.LeaseReply, 1, 'V1StGXR8_Z5jdHi6B-myT.hub-a', 'application/json', Buffer.from('{"ok":1}'), 'legacy-workers'],
  leaseAnswer: [PeerOp.LeaseAnswer, 1, true, null],
  leaving: [PeerOp.Leaving],
  batch: [PeerOp.Batch, [PeerOp.ForwardReply, 1, 200, 'application/json', null, Buffer.from('{"ok":1}'), 'hub-b/w1'], [PeerOp.HandBack, 2, false]],
};

/** Names of each op's positional fields, as PROTOCOL.md's tables call them. */
export const FIELD_NAMES: Record<number, readonly string[]> = {
  [Op.Hello]: ['op', 'hello'],
  [Op.Welcome]: ['op', 'welcome'],
  [Op.Register]: ['op', 'service', 'concurrency', 'weight'],
  [Op.Unregister]: ['op', 'service'],
  [Op.Job]: ['op', 'jobId', 'service', 'key', 'remainingMs', 'attempt', 'contentType', 'headers', 'query', 'body'],
  [Op.Reply]: ['op', 'jobId', 'status', 'contentType', 'headers', 'body'],
  [Op.Error]: ['op', 'jobId', 'status', 'code', 'message'],
  [Op.Cancel]: ['op', 'id', 'code'],
  [Op.CancelAck]: ['op', 'jobId'],
  [Op.Request]: ['op', 'requestId', 'mode', 'service', 'key', 'timeoutMs', 'contentType', 'headers', 'query', 'body'],
  [Op.Response]: ['op', 'requestId', 'status', 'contentType', 'headers', 'body', 'servedBy'],
  [Op.Drain]: ['op'],
  [Op.Goodbye]: ['op', 'code', 'message'],
  [Op.ProtocolError]: ['op', 'code', 'message', 'ref', 'fatal'],
  [PeerOp.Challenge]: ['op', 'challenge'],
  [PeerOp.PeerHello]: ['op', 'hello'],
  [PeerOp.PeerWelcome]: ['op', 'welcome'],
  [PeerOp.Members]: ['op', 'seq', 'members'],
  [PeerOp.MembersDelta]: ['op', 'seq', 'changes'],
  [PeerOp.Forward]: ['op', 'forwardId', 'mode', 'service', 'key', 'instanceId', 'remainingMs', 'attempt', 'contentType', 'headers', 'query', 'body', 'hops'],
  [PeerOp.ForwardReply]: ['op', 'forwardId', 'status', 'contentType', 'headers', 'body', 'servedBy'],
  [PeerOp.ForwardError]: ['op', 'forwardId', 'status', 'code', 'message', 'servedBy'],
  [PeerOp.ForwardCancel]: ['op', 'forwardId', 'code'],
  [PeerOp.HandBack]: ['op', 'forwardId', 'ran'],
  [PeerOp.SnapshotRequest]: ['op'],
  [PeerOp.Peers]: ['op', 'peers'],
  [PeerOp.Claim]: ['op', 'instanceId', 'token'],
  [PeerOp.Grants]: ['op', 'grants'],
  [PeerOp.LeaseReply]: ['op', 'replyId', 'leaseId', 'contentType', 'body', 'poster'],
  [PeerOp.LeaseAnswer]: ['op', 'replyId', 'accepted', 'code'],
  [PeerOp.Leaving]: ['op'],
  [PeerOp.Batch]: ['op', 'frame', 'frame'],
};

const OP_NAMES = new Map<number, string>([...Object.entries(Op), ...Object.entries(PeerOp)].map(([name, op]) => [op, name]));

/** Bytes per line of a listing. */
const WIDTH = 12;

/**
 * An annotated listing of one encoded frame: each msgpack item on its own line, hex on the
 * left, what it is on the right. Knows the msgpack types frames use and throws on any other,
 * so an encoder that starts writing, say, an extension type fails the doc test loudly.
 */
export function annotate(bytes: Uint8Array): string {
  const lines: string[] = [];
  let pos = 0;
  const hex = (from: number, to: number): string => [...bytes.subarray(from, to)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const emit = (from: number, to: number, text: string, depth: number): void => {
    // Long items: the first line carries the text, the rest continue the bytes.
    for (let at = from; at < to || at === from; at += WIDTH) {
      const end = Math.min(at + WIDTH, to);
      lines.push((hex(at, end).padEnd(WIDTH * 3) + (at === from ? '  '.repeat(depth) + text : '')).trimEnd());
    }
  };
  const u = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + bytes[pos + i]!;
    pos += n;
    return v;
  };

  /** Reads one item; `label` says where it sits. Returns the decoded value. */
  const item = (label: string, depth: number, describeValue?: (v: unknown) => string): unknown => {
    const start = pos;
    const b = bytes[pos++]!;
    const scalar = (v: unknown, type: string): unknown => {
      const shown = describeValue ? describeValue(v) : typeof v === 'string' ? JSON.stringify(v) : v === null ? 'nil' : String(v);
      emit(start, pos, shown === type ? `${label} = ${shown}` : `${label} = ${shown} (${type})`, depth);
      return v;
    };
    const text = (n: number, type: string): unknown => {
      const s = Buffer.from(bytes.subarray(pos, pos + n)).toString('utf8');
      pos += n;
      return scalar(s, `${type}, ${plural(n)}`);
    };
    const bin = (n: number, type: string): unknown => {
      const v = bytes.subarray(pos, pos + n);
      pos += n;
      const printable = v.every((c) => c >= 0x20 && c < 0x7f);
      emit(start, pos, `${label} = ${printable ? `'${Buffer.from(v).toString('latin1')}'` : 'binary'} (${type}, ${plural(n)})`, depth);
      return v;
    };
    const array = (n: number, type: string): unknown => {
      emit(start, pos, `${label}: ${type} of ${n}`, depth);
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(item(`[${i}]`, depth + 1));
      return out;
    };
    const map = (n: number, type: string): unknown => {
      emit(start, pos, `${label}: ${type} of ${n}`, depth);
      for (let i = 0; i < n; i++) {
        const key = item('key', depth + 1);
        item(String(key), depth + 2);
      }
      return null;
    };
    if (b <= 0x7f) return scalar(b, 'positive fixint');
    if (b >= 0x80 && b <= 0x8f) return map(b & 0x0f, 'fixmap');
    if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f, 'fixarray');
    if (b >= 0xa0 && b <= 0xbf) return text(b & 0x1f, 'fixstr');
    switch (b) {
      case 0xc0:
        return scalar(null, 'nil');
      case 0xc2:
        return scalar(false, 'false');
      case 0xc3:
        return scalar(true, 'true');
      case 0xc4:
        return bin(u(1), 'bin 8');
      case 0xc5:
        return bin(u(2), 'bin 16');
      case 0xcb: {
        const v = Buffer.from(bytes.subarray(pos, pos + 8)).readDoubleBE(0);
        pos += 8;
        return scalar(v, 'float 64');
      }
      case 0xcc:
        return scalar(u(1), 'uint 8');
      case 0xcd:
        return scalar(u(2), 'uint 16');
      case 0xce:
        return scalar(u(4), 'uint 32');
      case 0xd9:
        return text(u(1), 'str 8');
      case 0xda:
        return text(u(2), 'str 16');
      case 0xdc:
        return array(u(2), 'array 16');
      case 0xde:
        return map(u(2), 'map 16');
      default:
        throw new Error(`byte 0x${b.toString(16)} at ${start}: not a msgpack type frames use`);
    }
  };

  const b0 = bytes[0]!;
  const n = b0 >= 0x90 && b0 <= 0x9f ? b0 & 0x0f : -1;
  if (n < 1) throw new Error('a frame is a fixarray');
  pos = 1;
  emit(0, 1, `frame: fixarray of ${n}`, 0);
  const op = bytes[1]!;
  const names = FIELD_NAMES[op] ?? [];
  for (let i = 0; i < n; i++) {
    const name = names[i] ?? `field ${i}`;
    if (i === 0) item(`[0] op`, 1, (v) => `${String(v)}, ${OP_NAMES.get(v as number) ?? 'unknown'}`);
    else item(`[${i}] ${name}`, 1);
  }
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} bytes left over`);
  return lines.join('\n');
}

function plural(n: number): string {
  return n === 1 ? '1 byte' : `${n} bytes`;
}

/** The listing of every example, as PROTOCOL.md holds it. */
export function exampleListing(name: string): string {
  return annotate(exampleBytes(name));
}

/** The encoded bytes of the example `name`, worker or peer frame. */
export function exampleBytes(name: string): Uint8Array {
  const frame = EXAMPLE_FRAMES[name];
  if (frame) return encodeFrame(frame);
  const peer = PEER_EXAMPLE_FRAMES[name];
  if (!peer) throw new Error(`no example ${name}`);
  return encodePeerFrame(peer);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const name of [...Object.keys(EXAMPLE_FRAMES), ...Object.keys(PEER_EXAMPLE_FRAMES)]) {
    process.stdout.write(`<!-- frame:${name} -->\n\`\`\`text\n${exampleListing(name)}\n\`\`\`\n\n`);
  }
}
