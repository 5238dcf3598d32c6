import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '@msgpack/msgpack';
import { Packr, pack } from 'msgpackr';
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  isValidInstanceId,
  isValidKey,
  isValidName,
  MAX_FRAME_VALUES,
  negotiateVersion,
  Op,
  ProtocolError,
  SUPPORTED_VERSIONS,
} from '../../client/protocol.js';
import { EXAMPLE_FRAMES } from '../helpers/example-frames.js';

/** Frames with bodies as hex strings, so Buffer and Uint8Array compare equal. */
const norm = (f: unknown): unknown =>
  f instanceof Uint8Array
    ? `bin:${Buffer.from(f).toString('hex')}`
    : Array.isArray(f)
      ? f.map(norm)
      : f && typeof f === 'object'
        ? Object.fromEntries(Object.entries(f).map(([k, v]) => [k, norm(v)]))
        : f;

/** msgpackr with its own extension types on (Set, Error, RegExp...), to write frames a hub must refuse. */
const withExtensions = new Packr({ useRecords: false, moreTypes: true });

const rejects = (bytes: Uint8Array, what: string): void => {
  for (const borrowed of [true, false]) assert.throws(() => decodeFrame(bytes, borrowed), ProtocolError, what);
};

/** The type of each positional field after the op, as PROTOCOL.md's tables give them. */
type FieldType = 'uint' | 'uint?' | 'str' | 'str?' | 'status' | 'status?' | 'headers?' | 'bin' | 'map' | 'weight' | 'mode' | 'code' | 'ref' | 'bool';
const FIELD_TYPES: Record<string, FieldType[]> = {
  hello: ['map'],
  welcome: ['map'],
  register: ['str', 'uint', 'weight'],
  unregister: ['str'],
  job: ['uint', 'str', 'str?', 'uint', 'uint', 'str?', 'headers?', 'str?', 'bin'],
  reply: ['uint', 'status', 'str?', 'headers?', 'bin'],
  error: ['uint', 'status?', 'str?', 'str?'],
  cancel: ['uint', 'str?'],
  cancelAck: ['uint'],
  request: ['uint', 'mode', 'str', 'str?', 'uint?', 'str?', 'headers?', 'str?', 'bin'],
  response: ['uint', 'status', 'str?', 'headers?', 'bin', 'str?'],
  errorResponse: ['uint', 'status', 'str?', 'headers?', 'bin', 'str?'],
  drain: [],
  goodbye: ['str?', 'str?'],
  protocolError: ['code', 'str', 'ref', 'bool'],
};
/** Values of the wrong type for each field type. */
const WRONG: Record<FieldType, unknown[]> = {
  uint: ['1', -1, 1.5, null, true, 2 ** 53],
  'uint?': ['1', -1, 1.5, true],
  str: [1, null, true, ['a'], Buffer.from('a')],
  'str?': [1, true, ['a'], { a: 'b' }],
  status: [100, 199, 600, '200', null, 200.5],
  'status?': [100, 600, '500'],
  'headers?': ['a', 1, ['a'], { a: 1 }, { a: null }],
  bin: [42, true, ['a'], { a: 'b' }],
  map: ['x', 1, null, ['a']],
  // Only the type is the decoder's: a number out of range is the hub's to refuse, naming the service.
  weight: ['1', null, true],
  mode: [3, -1, '0', null],
  code: ['E_NOPE', 'e_protocol', 1, null],
  ref: [1.5, true, ['a']],
  bool: [0, 1, 'true', null],
};

describe('protocol codec', () => {
  for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
    it(`round-trips a ${name} frame, with borrowed and owned bytes`, () => {
      const bytes = encodeFrame(frame);
      for (const borrowed of [true, false]) assert.deepEqual(norm(decodeFrame(new Uint8Array(bytes), borrowed)), norm(frame));
    });
  }

  it('copies bodies out of borrowed bytes, so reusing the buffer cannot change a decoded frame', () => {
    const bytes = new Uint8Array(encodeFrame([Op.Reply, 1, 200, null, null, Buffer.from('abc')]));
    const f = decodeFrame(bytes, true) as Frame & unknown[];
    bytes.fill(0);
    assert.equal(Buffer.from(f[5] as Uint8Array).toString(), 'abc');
  });

  it('decodes frames written by another msgpack library', () => {
    const f = decodeFrame(encode([Op.Reply, 7, 201, 'text/plain', { 'x-a': 'b' }, new TextEncoder().encode('hi')]), false);
    assert.deepEqual(norm(f), [Op.Reply, 7, 201, 'text/plain', { 'x-a': 'b' }, `bin:${Buffer.from('hi').toString('hex')}`]);
  });

  it('accepts str and nil where a body is bin', () => {
    const text = Buffer.from('text').toString('hex');
    const cases: [unknown[], number][] = [
      [[Op.Job, 1, 's', null, 10, 1, null, null, null, 'text'], 9],
      [[Op.Reply, 1, 200, null, null, 'text'], 5],
      [[Op.Request, 1, 0, 's', null, null, null, null, null, 'text'], 9],
      [[Op.Response, 1, 200, null, null, 'text', null], 5],
    ];
    for (const [frame, at] of cases) {
      const f = decodeFrame(pack(frame), true) as unknown[];
      assert.ok(f[at] instanceof Uint8Array, `op ${String(frame[0])} body is bytes`);
      assert.equal(Buffer.from(f[at] as Uint8Array).toString('hex'), text);
      frame[at] = null;
      assert.equal(((decodeFrame(pack(frame), false) as unknown[])[at] as Uint8Array).length, 0, `op ${String(frame[0])} nil body`);
    }
  });

  it('fills in the optional trailing fields of Cancel and Goodbye, and ignores extra trailing fields', () => {
    assert.deepEqual(decodeFrame(pack([Op.Cancel, 5]), false), [Op.Cancel, 5, null]);
    assert.deepEqual(decodeFrame(pack([Op.Goodbye]), false), [Op.Goodbye, null, null]);
    assert.deepEqual(decodeFrame(pack([Op.Goodbye, 'E_X']), false), [Op.Goodbye, 'E_X', null]);
    assert.deepEqual(decodeFrame(pack([Op.CancelAck, 5, 'future', 1]), false).slice(0, 2), [Op.CancelAck, 5]);
    assert.deepEqual(decodeFrame(pack([Op.Drain, 'future']), false), [Op.Drain]);
  });

  const bad: [string, Uint8Array][] = [
    ['bytes that are not msgpack', Buffer.from([0xc1])],
    ['a truncated message', encodeFrame(EXAMPLE_FRAMES.job!).subarray(0, 20)],
    ['a map instead of an array', pack({ op: 1 })],
    ['a bare integer', pack(5)],
    ['an empty array', pack([])],
    ['op 0', pack([0])],
    ['op 15', pack([15])],
    ['an op that is a string', pack(['1', { versions: [1], role: 'worker' }])],
    ['a 64-bit id beyond 2^53', Buffer.from([0x92, Op.CancelAck, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ['hello without versions', pack([Op.Hello, { role: 'worker' }])],
    ['hello with empty versions', pack([Op.Hello, { versions: [], role: 'worker' }])],
    ['hello with versions that is not an array', pack([Op.Hello, { versions: 1, role: 'worker' }])],
    ['hello with version 0', pack([Op.Hello, { versions: [0], role: 'worker' }])],
    ['hello with 17 versions', pack([Op.Hello, { versions: Array.from({ length: 17 }, (_, i) => i + 1), role: 'worker' }])],
    ['hello without a role', pack([Op.Hello, { versions: [1] }])],
    ['hello with a bad role', pack([Op.Hello, { versions: [1], role: 'boss' }])],
    ['hello with an instanceId with a space', pack([Op.Hello, { versions: [1], role: 'worker', instanceId: 'has space' }])],
    ['hello with a 129-character instanceId', pack([Op.Hello, { versions: [1], role: 'worker', instanceId: 'i'.repeat(129) }])],
    ['hello with a token over 4096 characters', pack([Op.Hello, { versions: [1], role: 'worker', token: 't'.repeat(4097) }])],
    ['hello with a name over 256 characters', pack([Op.Hello, { versions: [1], role: 'worker', name: 'n'.repeat(257) }])],
    ['welcome without pongTimeoutMs', pack([Op.Welcome, { version: 1, hubId: 'h', sessionId: 1, instanceId: 'w', maxFrameBytes: 1, pingIntervalMs: 1 }])],
    ['too many headers', pack([Op.Reply, 1, 200, null, Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v'])), null])],
    // Extension types, which no frame may carry.
    ['a timestamp extension as headers', encode([Op.Reply, 1, 200, null, new Date(0), null])],
    ['an extension as the hello map', withExtensions.pack([Op.Hello, new Set(['versions'])])],
    ['an extension as headers', withExtensions.pack([Op.Reply, 1, 200, null, new Error('x'), null])],
    ['a timestamp extension as a body', encode([Op.Reply, 1, 200, null, null, new Date(0)])],
    ['a timestamp extension as an id', encode([Op.CancelAck, new Date(0)])],
  ];
  for (const [what, bytes] of bad) {
    it(`rejects ${what} with a ProtocolError`, () => rejects(bytes, what));
  }

  it('rejects every frame with one field too few', () => {
    const least: Record<number, number> = { [Op.Cancel]: 2, [Op.Goodbye]: 1, [Op.Drain]: 1 };
    for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
      const need = least[frame[0]] ?? frame.length;
      if (need <= 1) continue;
      rejects(pack(frame.slice(0, need - 1)), `${name} with ${need - 1} elements`);
    }
  });

  it('rejects a value of the wrong type in every field of every frame', () => {
    for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
      const types = FIELD_TYPES[name];
      assert.ok(types, `field types of ${name}`);
      assert.equal(types.length, frame.length - 1, `${name} has ${types.length} fields`);
      types.forEach((type, i) => {
        for (const wrong of WRONG[type]) {
          const f: unknown[] = [...frame];
          f[i + 1] = wrong;
          rejects(pack(f), `${name} field ${i + 1} (${type}) = ${JSON.stringify(wrong)}`);
        }
      });
    }
  });

  it('accepts nil in every nil-able field', () => {
    for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
      const f: unknown[] = [...frame];
      FIELD_TYPES[name]!.forEach((type, i) => {
        if (type.endsWith('?') || type === 'ref') f[i + 1] = null;
      });
      assert.doesNotThrow(() => decodeFrame(pack(f), true), name);
    }
  });

  it('accepts ids and statuses at their limits', () => {
    assert.equal(decodeFrame(pack([Op.CancelAck, 2 ** 53 - 1]), false)[1], 2 ** 53 - 1);
    assert.equal(decodeFrame(pack([Op.CancelAck, 0]), false)[1], 0);
    for (const status of [200, 599]) assert.equal(decodeFrame(pack([Op.Reply, 1, status, null, null, null]), false)[2], status);
    assert.equal(decodeFrame(pack([Op.Register, 's', 1, 0.5]), false)[3], 0.5);
    for (const weight of [0, -1, Number.NaN, 1e9]) assert.ok(Object.is(decodeFrame(pack([Op.Register, 's', 1, weight]), false)[3], weight));
  });

  it('marks an unknown op, and notes the op and id of a refused frame', () => {
    const refusal = (bytes: Uint8Array): ProtocolError => {
      try {
        decodeFrame(bytes, false);
      } catch (err) {
        assert.ok(err instanceof ProtocolError);
        return err;
      }
      assert.fail('decoded');
    };
    const unknown = refusal(pack([99, 1, 'x']));
    assert.deepEqual([unknown.unknownOp, unknown.op, unknown.id], [true, 99, 1]);
    const bad = refusal(pack([Op.Reply, 7, 99, null, null, null]));
    assert.deepEqual([bad.unknownOp, bad.op, bad.id], [false, Op.Reply, 7]);
    const noId = refusal(pack([Op.Error, 'seven', 500, null, null]));
    assert.deepEqual([noId.op, noId.id], [Op.Error, null]);
    const notOp = refusal(pack(['6', 1]));
    assert.deepEqual([notOp.unknownOp, notOp.op], [false, null]);
    assert.equal(refusal(pack([0, 1])).unknownOp, false);
  });
});

describe('the value limit of a frame', () => {
  /** [op, ...fields, nil × extra] as an array 32, so any count fits. */
  const padded = (frame: unknown[], extra: number): Buffer => {
    const head = Buffer.from([0xdd, 0, 0, 0, 0]);
    head.writeUInt32BE(frame.length + extra, 1);
    return Buffer.concat([head, pack(frame).subarray(1), Buffer.alloc(extra, 0xc0)]);
  };
  const cancelAck = (extra: number) => padded([Op.CancelAck, 5], extra);

  it(`counts every value at every depth, and refuses more than ${MAX_FRAME_VALUES}`, () => {
    // The array and its two fields are 3 values.
    assert.equal(decodeFrame(cancelAck(MAX_FRAME_VALUES - 3), false)[1], 5);
    assert.throws(() => decodeFrame(cancelAck(MAX_FRAME_VALUES - 2), false), /at most 1024 msgpack values/);
    // A map entry is two values, a nested array one plus its elements; strings and bins one each.
    const nested = (n: number) => padded([Op.CancelAck, 5, { a: [1, 2], b: 'x'.repeat(2000) }, Buffer.alloc(3000)], n);
    // 3 + map (1 + 2 keys + array 3 + str 1) + bin 1 = 11.
    assert.doesNotThrow(() => decodeFrame(nested(MAX_FRAME_VALUES - 11), true));
    assert.throws(() => decodeFrame(nested(MAX_FRAME_VALUES - 10), true), /at most 1024 msgpack values/);
  });

  it('refuses a frame from the header that announces too many values, without reading the rest', () => {
    const err = (() => {
      try {
        decodeFrame(Buffer.concat([Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff, Op.Reply, 0x09]), Buffer.alloc(2000, 0xc0)]), false);
      } catch (e) {
        return e as ProtocolError;
      }
      return null;
    })();
    assert.ok(err instanceof ProtocolError);
    assert.match(err.message, /at most 1024 msgpack values/);
    assert.deepEqual([err.op, err.id], [Op.Reply, 9]);
    const map = Buffer.concat([Buffer.from([0x92, Op.Hello, 0xdf, 0x00, 0x10, 0x00, 0x00]), Buffer.alloc(2000, 0xc0)]);
    assert.throws(() => decodeFrame(map, false), /at most 1024 msgpack values/);
  });

  it('refuses a long message that ends inside a value, or holds the unused byte 0xc1', () => {
    const long = pack([Op.Reply, 1, 200, null, null, Buffer.alloc(2000)]);
    rejects(long.subarray(0, long.length - 1), 'truncated');
    rejects(Buffer.concat([Buffer.from([0xdc, 0x00, 0x03, Op.CancelAck, 0x01, 0xc1]), Buffer.alloc(2000)]), '0xc1');
  });
});

describe('names, keys, instance ids and versions', () => {
  it('accepts service names of 1-128 allowed characters that are not only dots', () => {
    for (const ok of ['a', 'a'.repeat(128), '.a.', 'A-z_0.9', '-', '_', 'a..b']) assert.ok(isValidName(ok), ok);
    for (const bad of ['', 'a'.repeat(129), '.', '..', '...', 'a/b', 'a b', 'ä', 'a:b', 'a\n']) assert.ok(!isValidName(bad), JSON.stringify(bad));
    for (const notString of [undefined, null, 1, ['a']]) assert.ok(!isValidName(notString));
  });

  it('accepts partition keys of 1-256 UTF-8 bytes, counting multibyte characters by their bytes', () => {
    assert.ok(isValidKey('x'.repeat(256)));
    assert.ok(!isValidKey('x'.repeat(257)));
    assert.ok(isValidKey('é'.repeat(128))); // 2 bytes each: 256
    assert.ok(!isValidKey('é'.repeat(129))); // 258
    assert.ok(isValidKey('€'.repeat(85))); // 3 bytes each: 255
    assert.ok(!isValidKey('€'.repeat(86))); // 258
    assert.ok(isValidKey('😀'.repeat(64))); // 4 bytes each: 256, 128 UTF-16 units
    assert.ok(!isValidKey('😀'.repeat(65))); // 260 bytes in only 130 UTF-16 units
    assert.ok(isValidKey('.'));
    assert.ok(isValidKey(' '));
    assert.ok(!isValidKey(''));
    for (const notString of [undefined, null, 1]) assert.ok(!isValidKey(notString));
  });

  it('accepts instance ids of 1-128 printable ASCII characters without spaces', () => {
    assert.ok(isValidInstanceId('i'.repeat(128)));
    assert.ok(isValidInstanceId('!~'));
    for (const bad of ['', 'i'.repeat(129), 'a b', 'é', 'a\t']) assert.ok(!isValidInstanceId(bad), JSON.stringify(bad));
  });

  it('negotiates the highest version both sides speak, or 0 when there is none', () => {
    assert.deepEqual(SUPPORTED_VERSIONS, [1]);
    assert.equal(negotiateVersion([1]), 1);
    assert.equal(negotiateVersion([3, 2, 1]), 1);
    assert.equal(negotiateVersion([1, 2]), 1);
    assert.equal(negotiateVersion([2]), 0);
    assert.equal(negotiateVersion([]), 0);
  });
});
