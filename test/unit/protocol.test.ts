import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { decodeFrame, encodeFrame, isValidKey, isValidName, negotiateVersion, Op, ProtocolError, type Frame } from '../../client/protocol.js';
import { EXAMPLE_FRAMES } from '../helpers/example-frames.js';

/** Frames with bodies as hex strings, so Buffer and Uint8Array compare equal. */
const norm = (f: unknown): unknown =>
  f instanceof Uint8Array ? `bin:${Buffer.from(f).toString('hex')}`
    : Array.isArray(f) ? f.map(norm)
      : f && typeof f === 'object' ? Object.fromEntries(Object.entries(f).map(([k, v]) => [k, norm(v)])) : f;

describe('protocol codec', () => {
  for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
    it(`round-trips a ${name} frame, borrowed and owned`, () => {
      const bytes = encodeFrame(frame);
      for (const borrowed of [true, false]) assert.deepEqual(norm(decodeFrame(new Uint8Array(bytes), borrowed)), norm(frame));
    });
  }

  it('copies bodies out of borrowed bytes', () => {
    const bytes = new Uint8Array(encodeFrame([Op.Reply, 1, 200, null, null, Buffer.from('abc')]));
    const f = decodeFrame(bytes, true) as Frame & unknown[];
    bytes.fill(0);
    assert.equal(Buffer.from(f[5] as Uint8Array).toString(), 'abc');
  });

  it('accepts str and nil bodies and missing optional trailing fields', () => {
    const r = decodeFrame(pack([Op.Reply, 1, 200, null, null, 'text']), false);
    assert.equal(Buffer.from(r[5] as Uint8Array).toString(), 'text');
    const n = decodeFrame(pack([Op.Reply, 1, 200, null, null, null]), false);
    assert.equal((n[5] as Uint8Array).length, 0);
    assert.deepEqual(decodeFrame(pack([Op.Cancel, 5]), false), [Op.Cancel, 5, null]);
    assert.deepEqual(decodeFrame(pack([Op.Goodbye]), false), [Op.Goodbye, null, null]);
  });

  const bad: [string, unknown][] = [
    ['not msgpack', Buffer.from([0xc1])],
    ['not an array', pack({ op: 1 })],
    ['an empty array', pack([])],
    ['an unknown op', pack([77])],
    ['a short reply', pack([Op.Reply, 1, 200])],
    ['a string id', pack([Op.Reply, 'x', 200, null, null, null])],
    ['a negative id', pack([Op.Reply, -1, 200, null, null, null])],
    ['a fractional id', pack([Op.CancelAck, 1.5])],
    ['status 100', pack([Op.Reply, 1, 100, null, null, null])],
    ['status 600', pack([Op.Reply, 1, 600, null, null, null])],
    ['headers that are not a map', pack([Op.Reply, 1, 200, null, ['a'], null])],
    ['a header value that is not a string', pack([Op.Reply, 1, 200, null, { a: 1 }, null])],
    ['too many headers', pack([Op.Reply, 1, 200, null, Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v'])), null])],
    ['a numeric body', pack([Op.Reply, 1, 200, null, null, 42])],
    ['hello without versions', pack([Op.Hello, { role: 'worker' }])],
    ['hello with a bad role', pack([Op.Hello, { versions: [1], role: 'boss' }])],
    ['hello with a bad instanceId', pack([Op.Hello, { versions: [1], role: 'worker', instanceId: 'has space' }])],
    ['register with weight 0', pack([Op.Register, 'a', 1, 0])],
    ['a request with mode 3', pack([Op.Request, 1, 3, 'a', null, null, null, null, null, null])],
    ['a protocol error with an unknown code', pack([Op.ProtocolError, 'E_NOPE', 'x', null, true])],
    ['a 64-bit id beyond 2^53', Buffer.from([0x92, Op.CancelAck, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
  ];
  for (const [what, bytes] of bad) {
    it(`rejects ${what} with a ProtocolError`, () => {
      assert.throws(() => decodeFrame(bytes as Uint8Array, true), ProtocolError);
    });
  }

  it('validates names and keys at their limits', () => {
    assert.ok(isValidName('a'.repeat(128)));
    assert.ok(!isValidName('a'.repeat(129)));
    assert.ok(!isValidName(''));
    assert.ok(!isValidName('...'));
    assert.ok(isValidName('.a.'));
    assert.ok(isValidName('A-z_0.9'));
    assert.ok(!isValidName('a/b'));
    assert.ok(!isValidName('ä'));
    assert.ok(isValidKey('é'.repeat(128))); // 256 bytes
    assert.ok(!isValidKey('é'.repeat(129))); // 258 bytes
    assert.ok(isValidKey('x'.repeat(256)));
    assert.ok(!isValidKey('x'.repeat(257)));
    assert.ok(!isValidKey(''));
  });

  it('negotiates the highest shared version', () => {
    assert.equal(negotiateVersion([1]), 1);
    assert.equal(negotiateVersion([3, 2, 1]), 1);
    assert.equal(negotiateVersion([2]), 0);
  });
});
