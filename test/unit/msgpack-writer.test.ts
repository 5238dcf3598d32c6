import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode, encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { pack } from '../../client/msgpack-writer.js';

/** The values a frame can hold: what the writer must encode exactly like a reference encoder. */
const frameValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true }),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 20 }),
    fc.dictionary(fc.string({ maxLength: 40 }), tie('value'), { maxKeys: 20 }),
  ),
})).value;

describe('msgpack writer', () => {
  it('writes the same bytes as a reference encoder for every frame value', () => {
    fc.assert(
      fc.property(frameValue, (v) => {
        // Integers beyond 32 bits: the reference writes them as uint64/int64 only when told to.
        const expected = Buffer.from(encode(v, { forceIntegerToFloat: false, useBigInt64: false }));
        assert.deepEqual(pack(v).toString('hex'), expected.toString('hex'));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips through a strict decoder', () => {
    fc.assert(
      fc.property(frameValue, (v) => {
        // The reference decoder refuses a "__proto__" key outright; the byte test above covers it.
        fc.pre(!hasProtoKey(v));
        const back = decode(pack(v));
        assert.deepEqual(normalize(back), normalize(v));
      }),
      { numRuns: 1000 },
    );
  });

  it('picks the shortest header at every size boundary', () => {
    const cases: [unknown, string][] = [
      [127, '7f'],
      [128, 'cc80'],
      [255, 'ccff'],
      [256, 'cd0100'],
      [65535, 'cdffff'],
      [65536, 'ce00010000'],
      [2 ** 32 - 1, 'ceffffffff'],
      [2 ** 32, 'cf0000000100000000'],
      [-1, 'ff'],
      [-32, 'e0'],
      [-33, 'd0df'],
      [-128, 'd080'],
      [-129, 'd1ff7f'],
      [-32768, 'd18000'],
      [-32769, 'd2ffff7fff'],
      [1.5, 'cb3ff8000000000000'],
      ['', 'a0'],
      ['a'.repeat(31), `bf${'61'.repeat(31)}`],
      ['a'.repeat(32), `d920${'61'.repeat(32)}`],
      ['é', 'a2c3a9'],
      [new Uint8Array([1, 2]), 'c4020102'],
      [[], '90'],
      [{}, '80'],
      [null, 'c0'],
      [undefined, 'c0'],
      [true, 'c3'],
      [false, 'c2'],
    ];
    for (const [v, hex] of cases) assert.equal(pack(v).toString('hex'), hex, `encoding of ${String(v)}`);
    assert.equal(pack('x'.repeat(256)).subarray(0, 3).toString('hex'), 'da0100');
    assert.equal(pack(new Uint8Array(70_000)).subarray(0, 5).toString('hex'), 'c600011170');
    assert.equal(pack(new Array(16).fill(0)).subarray(0, 3).toString('hex'), 'dc0010');
  });

  it('refuses what a frame never holds instead of inventing an encoding', () => {
    for (const v of [new Map(), new Date(0), () => 1, Symbol('s'), 10n, new (class X {})()]) {
      assert.throws(() => pack([1, v]), TypeError);
    }
  });
});

/** True when `v` holds an object with an own "__proto__" key, as fast-check's dictionaries sometimes do. */
function hasProtoKey(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasProtoKey);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.entries(v).some(([k, x]) => k === '__proto__' || hasProtoKey(x));
  return false;
}

function normalize(v: unknown): unknown {
  if (v === undefined) return null;
  if (Object.is(v, -0)) return 0; // an integer zero on the wire, like any msgpack encoder writes it
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}
