/**
 * Property-based fuzzing of the two frame decoders (the worker protocol's decodeFrame, both
 * directions, and the peer protocol's decodePeerFrame, during and after the handshake). Whatever
 * the bytes, a decoder either returns a frame of the shape PROTOCOL.md documents or throws the
 * project's ProtocolError; and a frame it returns, encoded again, decodes to the same frame.
 *
 * The shapes below are written from PROTOCOL.md's tables, not from the decoders, so a decoder
 * that lets through what the document forbids fails here. Bounded in time: FUZZ_MS per property
 * (see test/helpers/fuzz.ts); a failure prints the seed that replays it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ERRORS } from '../../client/errors.js';
import { decodeFrame, encodeFrame, type Frame, MAX_FRAME_VALUES, Op, ProtocolError } from '../../client/protocol.js';
import {
  CHALLENGE_BYTES,
  decodePeerFrame,
  encodePeerFrame,
  MAX_MEMBERS_PER_FRAME,
  MAX_PEERS_PER_FRAME,
  type PeerFrame,
  PeerOp,
} from '../../server/mesh/peer-protocol.js';
import { EXAMPLE_FRAMES, PEER_EXAMPLE_FRAMES } from '../helpers/example-frames.js';
import { Ext, encodeValue, F32, fuzzParams, MsgMap, type MsgValue, msgValue, Raw, TRICKY_STRINGS, WideInt } from '../helpers/fuzz.js';

// ---- the documented shapes (PROTOCOL.md, "Frames and field types", "Frame reference", "Peer frame reference") ----

const isUint = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStatus = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 200 && v <= 599;
const isStr = (v: unknown) => typeof v === 'string';
const isOptStr = (v: unknown) => v === null || typeof v === 'string';
const isBin = (v: unknown) => v instanceof Uint8Array;
const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;
const isHeaders = (v: unknown) => v === null || (isMap(v) && Object.keys(v).length <= 64 && Object.values(v).every(isStr));
const absentOr = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || v === null || ok(v);
const PRINTABLE_ID = /^[\x21-\x7e]{1,128}$/;

type Check = (v: unknown) => boolean;
/** Each op's fields after the op, in order. */
const WORKER_FIELDS: Record<number, Check[]> = {
  [Op.Hello]: [
    (h) =>
      isMap(h) &&
      Array.isArray(h.versions) &&
      h.versions.length >= 1 &&
      h.versions.length <= 16 &&
      h.versions.every((v) => isUint(v) && v > 0) &&
      (h.role === 'worker' || h.role === 'client') &&
      absentOr(h.instanceId, (v) => isStr(v) && PRINTABLE_ID.test(v as string)) &&
      absentOr(h.token, (v) => isStr(v) && (v as string).length <= 4096) &&
      absentOr(h.name, (v) => isStr(v) && (v as string).length <= 256),
  ],
  [Op.Welcome]: [
    (w) =>
      isMap(w) &&
      isUint(w.version) &&
      isStr(w.hubId) &&
      isUint(w.sessionId) &&
      isStr(w.instanceId) &&
      isUint(w.maxFrameBytes) &&
      isUint(w.pingIntervalMs) &&
      isUint(w.pongTimeoutMs),
  ],
  // A weight out of range is the hub's to refuse (non-fatally), not the decoder's: only its type.
  [Op.Register]: [isStr, isUint, (v) => typeof v === 'number'],
  [Op.Unregister]: [isStr],
  [Op.Job]: [isUint, isStr, isOptStr, isUint, isUint, isOptStr, isHeaders, isOptStr, isBin],
  [Op.Reply]: [isUint, isStatus, isOptStr, isHeaders, isBin],
  [Op.Error]: [isUint, (v) => v === null || isStatus(v), isOptStr, isOptStr],
  [Op.Cancel]: [isUint, isOptStr],
  [Op.CancelAck]: [isUint],
  [Op.Request]: [isUint, (v) => v === 0 || v === 1 || v === 2, isStr, isOptStr, (v) => v === null || isUint(v), isOptStr, isHeaders, isOptStr, isBin],
  [Op.Response]: [isUint, isStatus, isOptStr, isHeaders, isBin, isOptStr],
  [Op.Drain]: [],
  [Op.Goodbye]: [isOptStr, isOptStr],
  [Op.ProtocolError]: [
    (v) => isStr(v) && Object.hasOwn(ERRORS, v as string),
    isStr,
    (v) => v === null || isStr(v) || Number.isSafeInteger(v),
    (v) => typeof v === 'boolean',
  ],
};

const isHubId = (v: unknown) => isStr(v) && /^[A-Za-z0-9._-]{1,64}$/.test(v as string);
const isAddress = (v: unknown) =>
  isStr(v) &&
  ((/^wss?:\/\//.test(v as string) && URL.canParse(v as string)) ||
    (/^([A-Za-z0-9._-]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(v as string) && Number((v as string).slice((v as string).lastIndexOf(':') + 1)) <= 65535));
const isWeight = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const listOf = (max: number, each: (t: unknown[]) => boolean) => (v: unknown) =>
  Array.isArray(v) && v.length <= max && v.every((t) => Array.isArray(t) && each(t));
const challengeShape = (c: Record<string, unknown>) =>
  isHubId(c.hubId) &&
  isStr(c.bootNonce) &&
  Array.isArray(c.versions) &&
  c.versions.every((v) => Number.isInteger(v)) &&
  isStr(c.ring) &&
  c.challenge instanceof Uint8Array &&
  c.challenge.length === CHALLENGE_BYTES;
const proofShape = (p: unknown) => p === null || isBin(p);

const PEER_FIELDS: Record<number, Check[]> = {
  [PeerOp.Challenge]: [(c) => isMap(c) && challengeShape(c)],
  [PeerOp.PeerHello]: [(h) => isMap(h) && challengeShape(h) && isAddress(h.advertise) && proofShape(h.proof)],
  [PeerOp.PeerWelcome]: [(w) => isMap(w) && isAddress(w.advertise) && proofShape(w.proof)],
  [PeerOp.Members]: [isUint, listOf(MAX_MEMBERS_PER_FRAME, (m) => isStr(m[0]) && isStr(m[1]) && isWeight(m[2]))],
  [PeerOp.MembersDelta]: [isUint, listOf(MAX_MEMBERS_PER_FRAME, (m) => isStr(m[0]) && isStr(m[1]) && isWeight(m[2]))],
  [PeerOp.Forward]: [isUint, (v) => v === 0 || v === 1 || v === 2, isStr, isOptStr, isStr, isUint, isUint, isOptStr, isHeaders, isOptStr, isBin, isUint],
  [PeerOp.ForwardReply]: [isUint, isStatus, isOptStr, isHeaders, isBin, isStr],
  [PeerOp.ForwardError]: [isUint, isStatus, isStr, isStr, isOptStr],
  [PeerOp.ForwardCancel]: [isUint, isStr],
  [PeerOp.HandBack]: [isUint, (v) => typeof v === 'boolean'],
  [PeerOp.SnapshotRequest]: [],
  [PeerOp.Peers]: [listOf(MAX_PEERS_PER_FRAME, (p) => isHubId(p[0]) && isAddress(p[1]))],
  [PeerOp.Claim]: [isStr, isOptStr],
  [PeerOp.Grants]: [listOf(MAX_MEMBERS_PER_FRAME, (g) => isStr(g[0]) && isUint(g[1]))],
  [PeerOp.LeaseReply]: [isUint, isStr, isOptStr, isBin, isOptStr],
  [PeerOp.LeaseAnswer]: [isUint, (v) => typeof v === 'boolean', isOptStr],
  [PeerOp.Leaving]: [],
};

/** Whether `f` is a frame of the documented shape; returns what is wrong, or null. */
function shapeProblem(f: unknown, fields: Record<number, Check[]>): string | null {
  if (!Array.isArray(f) || f.length === 0) return 'not a non-empty array';
  if (fields === PEER_FIELDS && f[0] === PeerOp.Batch) return batchProblem(f);
  const checks = fields[f[0] as number];
  if (!checks) return `op ${String(f[0])} is not documented`;
  for (let i = 0; i < checks.length; i++) if (!checks[i]!(f[i + 1])) return `field ${i + 1} of op ${f[0]} is not of its documented type`;
  return null;
}

/** A Batch holds one or more frames of the ops 35-48, each of its documented shape. */
function batchProblem(f: unknown[]): string | null {
  if (f.length < 2) return 'an empty batch';
  for (const inner of f.slice(1)) {
    const op = Array.isArray(inner) ? inner[0] : undefined;
    if (typeof op !== 'number' || op < PeerOp.Members || op >= PeerOp.Batch) return `a batch holds op ${String(op)}`;
    const problem = shapeProblem(inner, PEER_FIELDS);
    if (problem) return `in a batch: ${problem}`;
  }
  return null;
}

/**
 * The documented fields of a frame: trailing elements a receiver ignores, and unknown keys of
 * map frames, are left out (the hub never passes them on, and they may hold values that have no
 * frame encoding, such as an extension type).
 */
function documented(f: unknown[], fields: Record<number, Check[]>, mapKeys: Record<number, string[]>): unknown[] {
  if (fields === PEER_FIELDS && f[0] === PeerOp.Batch) return [f[0], ...f.slice(1).map((inner) => documented(inner as unknown[], fields, mapKeys))];
  const n = fields[f[0] as number]!.length;
  const out = f.slice(0, n + 1);
  const keys = mapKeys[f[0] as number];
  if (keys)
    out[1] = Object.fromEntries(keys.filter((k) => (f[1] as Record<string, unknown>)[k] !== undefined).map((k) => [k, (f[1] as Record<string, unknown>)[k]]));
  return out;
}
const WORKER_MAP_KEYS: Record<number, string[]> = {
  [Op.Hello]: ['versions', 'role', 'instanceId', 'token', 'name'],
  [Op.Welcome]: ['version', 'hubId', 'sessionId', 'instanceId', 'maxFrameBytes', 'pingIntervalMs', 'pongTimeoutMs'],
};
const CHALLENGE_KEYS = ['hubId', 'bootNonce', 'versions', 'ring', 'challenge'];
const PEER_MAP_KEYS: Record<number, string[]> = {
  [PeerOp.Challenge]: CHALLENGE_KEYS,
  [PeerOp.PeerHello]: [...CHALLENGE_KEYS, 'advertise', 'proof'],
  [PeerOp.PeerWelcome]: ['advertise', 'proof'],
};

/** Bodies as hex, so a Buffer and a Uint8Array of the same bytes compare equal. */
const norm = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? `bin:${Buffer.from(v).toString('hex')}`
    : Array.isArray(v)
      ? v.map(norm)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]))
        : v;

interface Decoder {
  name: string;
  decode: (bytes: Uint8Array, borrowed: boolean) => unknown;
  encode: (f: unknown[]) => Buffer;
  fields: Record<number, Check[]>;
  mapKeys: Record<number, string[]>;
}
const DECODERS: Decoder[] = [
  { name: 'decodeFrame', decode: decodeFrame, encode: (f) => encodeFrame(f as Frame), fields: WORKER_FIELDS, mapKeys: WORKER_MAP_KEYS },
  {
    name: 'decodePeerFrame',
    decode: (b, borrowed) => decodePeerFrame(b, borrowed),
    encode: (f) => encodePeerFrame(f as PeerFrame),
    fields: PEER_FIELDS,
    mapKeys: PEER_MAP_KEYS,
  },
  {
    name: 'decodePeerFrame during the handshake',
    decode: (b, borrowed) => decodePeerFrame(b, borrowed, true),
    encode: (f) => encodePeerFrame(f as PeerFrame),
    fields: PEER_FIELDS,
    mapKeys: PEER_MAP_KEYS,
  },
];

/**
 * The property every input must satisfy: ProtocolError, or a documented frame that survives
 * encoding again. An unknown op of the worker protocol is a ProtocolError that says so.
 */
function holds(d: Decoder, bytes: Uint8Array): void {
  for (const borrowed of [false, true]) {
    let f: unknown;
    try {
      f = d.decode(new Uint8Array(bytes), borrowed);
    } catch (err) {
      if (err instanceof ProtocolError) continue;
      throw new Error(
        `${d.name} threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} for ${Buffer.from(bytes).toString('hex').slice(0, 400)}`,
      );
    }
    const problem = shapeProblem(f, d.fields);
    if (problem)
      throw new Error(`${d.name} returned a frame outside the documented shapes (${problem}) for ${Buffer.from(bytes).toString('hex').slice(0, 400)}`);
    const doc = documented(f as unknown[], d.fields, d.mapKeys);
    const again = d.decode(d.encode(doc), false);
    assert.deepStrictEqual(
      norm(documented(again as unknown[], d.fields, d.mapKeys)),
      norm(doc),
      `${d.name}: a decoded frame encoded again decodes to another frame`,
    );
  }
}

// ---- frames near the documented shapes, so the checks behind the first field are reached ----

const anyValue = msgValue();
const uintish = fc.oneof(fc.nat(1000), fc.maxSafeNat(), fc.constantFrom(2 ** 53, -1, 1.5, 0));
const str = fc.oneof(fc.constantFrom(...TRICKY_STRINGS), fc.string({ maxLength: 30 }), fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/));
const optStr = fc.oneof(fc.constant(null), str);
const headers = fc.oneof(fc.constant(null), fc.dictionary(str, fc.oneof(str, anyValue), { maxKeys: 70, noNullPrototype: true }) as fc.Arbitrary<MsgValue>);
const body = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constant(null), str);
const status = fc.oneof(fc.integer({ min: 200, max: 599 }), fc.constantFrom(0, 199, 600, 200.5));
const versions = fc.array(fc.oneof(fc.integer({ min: 1, max: 3 }), anyValue), { maxLength: 17 });
/** Each field of a frame: usually a value of its type, sometimes anything at all. */
const field = (valid: fc.Arbitrary<MsgValue>) => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: anyValue });
const record = (r: Record<string, fc.Arbitrary<MsgValue>>) => fc.record(r, { requiredKeys: [] }) as fc.Arbitrary<MsgValue>;
const addr = fc.oneof(fc.constantFrom('127.0.0.1:1', '[::1]:3000', 'ws://h:1/x', 'wss://[', 'a b:1', 'h:99999', 'h:65535'), str);
const challengeMap = {
  hubId: field(fc.stringMatching(/^[A-Za-z0-9._-]{1,70}$/)),
  bootNonce: field(str),
  versions: field(versions),
  ring: field(fc.constantFrom('hrw-murmur3-v1', 'ketama')),
  challenge: field(fc.uint8Array({ minLength: 15, maxLength: 17 })),
};
const member = fc.tuple(field(str), field(str), field(fc.oneof(fc.double(), fc.nat(3)))) as fc.Arbitrary<MsgValue>;

const WORKER_SHAPES: Record<number, fc.Arbitrary<MsgValue>[]> = {
  [Op.Hello]: [
    record({
      versions: field(versions),
      role: field(fc.constantFrom('worker', 'client', 'admin')),
      instanceId: field(optStr),
      token: field(optStr),
      name: field(optStr),
      extra: anyValue,
    }),
  ],
  [Op.Welcome]: [
    record({
      version: field(uintish),
      hubId: field(str),
      sessionId: field(uintish),
      instanceId: field(str),
      maxFrameBytes: field(uintish),
      pingIntervalMs: field(uintish),
      pongTimeoutMs: field(uintish),
    }),
  ],
  [Op.Register]: [field(str), field(uintish), field(fc.oneof(fc.double(), fc.nat(10)))],
  [Op.Unregister]: [field(str)],
  [Op.Job]: [field(uintish), field(str), field(optStr), field(uintish), field(uintish), field(optStr), field(headers), field(optStr), field(body)],
  [Op.Reply]: [field(uintish), field(status), field(optStr), field(headers), field(body)],
  [Op.Error]: [field(uintish), field(fc.oneof(fc.constant(null), status)), field(optStr), field(optStr)],
  [Op.Cancel]: [field(uintish), field(optStr)],
  [Op.CancelAck]: [field(uintish)],
  [Op.Request]: [
    field(uintish),
    field(fc.constantFrom(0, 1, 2, 3)),
    field(str),
    field(optStr),
    field(fc.oneof(fc.constant(null), uintish)),
    field(optStr),
    field(headers),
    field(optStr),
    field(body),
  ],
  [Op.Response]: [field(uintish), field(status), field(optStr), field(headers), field(body), field(optStr)],
  [Op.Drain]: [],
  [Op.Goodbye]: [field(optStr), field(optStr)],
  [Op.ProtocolError]: [field(fc.constantFrom(...Object.keys(ERRORS), 'E_NOPE')), field(str), field(fc.oneof(optStr, uintish)), field(fc.boolean())],
};
const PEER_SHAPES: Record<number, fc.Arbitrary<MsgValue>[]> = {
  [PeerOp.Challenge]: [record(challengeMap)],
  [PeerOp.PeerHello]: [record({ ...challengeMap, advertise: field(addr), proof: field(fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 32 }))) })],
  [PeerOp.PeerWelcome]: [record({ advertise: field(addr), proof: field(fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 32 }))) })],
  [PeerOp.Members]: [field(uintish), field(fc.array(member, { maxLength: 5 }))],
  [PeerOp.MembersDelta]: [field(uintish), field(fc.array(member, { maxLength: 5 }))],
  [PeerOp.Forward]: [
    field(uintish),
    field(fc.constantFrom(0, 1, 2, 3)),
    field(str),
    field(optStr),
    field(str),
    field(uintish),
    field(uintish),
    field(optStr),
    field(headers),
    field(optStr),
    field(body),
    field(uintish),
  ],
  [PeerOp.ForwardReply]: [field(uintish), field(status), field(optStr), field(headers), field(body), field(str)],
  [PeerOp.ForwardError]: [field(uintish), field(status), field(str), field(str), field(optStr)],
  [PeerOp.ForwardCancel]: [field(uintish), field(str)],
  [PeerOp.HandBack]: [field(uintish), field(fc.boolean())],
  [PeerOp.SnapshotRequest]: [],
  [PeerOp.Peers]: [field(fc.array(fc.tuple(field(fc.stringMatching(/^[A-Za-z0-9._-]{1,8}$/)), field(addr)) as fc.Arbitrary<MsgValue>, { maxLength: 4 }))],
  [PeerOp.Claim]: [field(str), field(optStr)],
  [PeerOp.Grants]: [field(fc.array(fc.tuple(field(str), field(uintish)) as fc.Arbitrary<MsgValue>, { maxLength: 4 }))],
  [PeerOp.LeaseReply]: [field(uintish), field(str), field(optStr), field(body), field(optStr)],
  [PeerOp.LeaseAnswer]: [field(uintish), field(fc.boolean()), field(optStr)],
  [PeerOp.Leaving]: [],
};

/** A frame of one of `shapes`' ops: its fields, perhaps one short, perhaps with trailing values. */
function nearFrame(shapes: Record<number, fc.Arbitrary<MsgValue>[]>): fc.Arbitrary<MsgValue[]> {
  const ops = Object.keys(shapes).map(Number);
  return fc
    .constantFrom(...ops)
    .chain((op) =>
      fc.tuple(fc.constant(op as MsgValue), fc.tuple(...shapes[op]!), fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.integer({ min: -1, max: 3 }))),
    )
    .chain(([op, fields, extra]) =>
      extra < 0 ? fc.constant([op, ...fields.slice(0, -1)]) : fc.array(anyValue, { minLength: extra, maxLength: extra }).map((t) => [op, ...fields, ...t]),
    );
}

/** An op of either protocol, or a value that is no op at all. */
const anyOp = fc.oneof(fc.integer({ min: 0, max: 60 }), anyValue);

describe('fuzzing the frame decoders', { timeout: 60_000 }, () => {
  for (const d of DECODERS) {
    it(`${d.name}: arbitrary bytes are a documented frame or a ProtocolError`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (b) => holds(d, b)),
        fuzzParams(2000),
      );
    });

    it(`${d.name}: arbitrary msgpack values are a documented frame or a ProtocolError`, () => {
      fc.assert(
        fc.property(
          fc.oneof(
            anyValue,
            fc.tuple(anyOp, fc.array(anyValue, { maxLength: 12 })).map(([op, rest]) => [op, ...rest]),
          ),
          (v) => holds(d, encodeValue(v as MsgValue)),
        ),
        fuzzParams(2000),
      );
    });

    it(`${d.name}: frames near the documented shapes are a documented frame or a ProtocolError, and re-encode to themselves`, () => {
      fc.assert(
        fc.property(fc.oneof(nearFrame(WORKER_SHAPES), nearFrame(PEER_SHAPES)), (f) => holds(d, encodeValue(f))),
        fuzzParams(2000),
      );
    });

    it(`${d.name}: a documented frame cut short anywhere, or with a byte changed, is still a frame or a ProtocolError`, () => {
      const examples = [...Object.values(EXAMPLE_FRAMES).map((f) => encodeFrame(f)), ...Object.values(PEER_EXAMPLE_FRAMES).map((f) => encodePeerFrame(f))];
      fc.assert(
        fc.property(fc.constantFrom(...examples), fc.nat(), fc.nat(255), fc.boolean(), (bytes, at, byte, cut) => {
          const b = Buffer.from(bytes);
          const i = at % b.length;
          if (cut) return holds(d, b.subarray(0, i));
          b[i] = byte;
          holds(d, b);
        }),
        fuzzParams(2000),
      );
    });
  }

  it('never spends long on a message of many values: the value limit refuses it from its headers', () => {
    // Deep nesting and wide arrays that announce more values than they hold.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.constantFrom(0x91, 0x81, 0xdc), (n, head) => {
        const deep = head === 0xdc ? Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]) : Buffer.alloc(Math.min(n, 50_000), head);
        const bytes = Buffer.concat([Buffer.from([0x92, 0x06]), deep, Buffer.from([0xc0])]);
        for (const d of DECODERS) {
          const t0 = performance.now();
          holds(d, bytes);
          assert.ok(performance.now() - t0 < 500, `${d.name} took ${performance.now() - t0} ms on ${bytes.length} bytes`);
        }
      }),
      fuzzParams(1500),
    );
    assert.ok(MAX_FRAME_VALUES > 0);
  });

  it('refuses what the fuzzers found: a map op whose own toString is not a function, an extension type 0 where a field or a Hello key is nil', () => {
    const found: MsgValue[] = [
      [new MsgMap([['toString', '']])],
      [Op.ProtocolError, new MsgMap([['toString', new MsgMap([])]]), 'A', null, false],
      [PeerOp.Claim + 100, new MsgMap([['valueOf', 0]])],
      // msgpackr reads extension type 0 as `undefined`, which a nil check let through.
      [Op.Job, 0, '', '', 0, 0, new Ext(0, new Uint8Array(0)), null, null, null],
      [Op.Reply, 1, 200, null, new Ext(0, new Uint8Array(1)), null],
      [Op.Reply, 1, 200, null, null, new Ext(0, new Uint8Array(1))],
      [Op.Request, 1, 0, 's', null, new Ext(0, new Uint8Array(1)), null, null, null, null],
      [Op.Error, 1, new Ext(0, new Uint8Array(1)), null, null],
      [Op.Cancel, 1, new Ext(0, new Uint8Array(1))],
      [Op.Goodbye, new Ext(0, new Uint8Array(1))],
      [Op.Hello, { versions: [1], role: 'worker', instanceId: new Ext(0, new Uint8Array(1)) }],
      [PeerOp.ForwardError, 1, 500, 'E_X', 'x', new Ext(0, new Uint8Array(1))],
    ];
    for (const v of found) {
      const bytes = encodeValue(v);
      for (const d of DECODERS) assert.throws(() => d.decode(bytes, false), ProtocolError, `${d.name}: ${bytes.toString('hex')}`);
    }
  });

  it('encodes the extension and wide-int values the fuzzers use as standard msgpack', () => {
    // The fuzzers' own encoder, checked against a few known encodings.
    assert.deepEqual(
      [...encodeValue([new Ext(-1, new Uint8Array(4)), new F32(1), new WideInt(1n, 0xcf), new Raw(Uint8Array.of(0xc1))])],
      [0x94, 0xd6, 0xff, 0, 0, 0, 0, 0xca, 0x3f, 0x80, 0, 0, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xc1],
    );
  });
});
