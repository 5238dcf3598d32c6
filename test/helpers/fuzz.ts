/**
 * Property-based fuzzing with fast-check, bounded in time. Each property runs for FUZZ_MS
 * milliseconds (3 s by default; CI keeps the default, a longer hunt sets more). fast-check
 * prints the seed and path of a failure; FUZZ_SEED (and FUZZ_PATH) replay it.
 */
import fc from 'fast-check';

export function fuzzMs(defaultMs = 3000): number {
  const ms = Number(process.env.FUZZ_MS ?? defaultMs);
  return Number.isFinite(ms) && ms > 0 ? ms : defaultMs;
}

/** fc.assert parameters: runs until the time is up (a success, not a failure), or a failure. */
export function fuzzParams<T>(defaultMs = 3000): fc.Parameters<T> {
  const p: fc.Parameters<T> = {
    numRuns: Number.MAX_SAFE_INTEGER,
    plugins: [fc.interruptAfterTimeLimit(fuzzMs(defaultMs)) as fc.Plugin<T>],
    // A counterexample of a fuzz run is worth its seed more than a long shrink on a shared machine.
    endOnFailure: false,
    // The error a property threw says what went wrong; without this only the input is shown.
    includeErrorInReport: true,
  };
  if (process.env.FUZZ_SEED !== undefined) p.seed = Number(process.env.FUZZ_SEED);
  if (process.env.FUZZ_PATH !== undefined) p.path = process.env.FUZZ_PATH;
  return p;
}

// ---- msgpack values a hostile peer may send ----

/** An extension value: type and payload, written as the fixext/ext family. */
export class Ext {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}
/** Bytes written as they are: a str whose bytes are not UTF-8, or any garbage inside a value. */
export class Raw {
  constructor(readonly bytes: Uint8Array) {}
}
/** A number written as a float 32. */
export class F32 {
  constructor(readonly value: number) {}
}
/** A msgpack map whose keys may be any value (a JS object cannot say that). */
export class MsgMap {
  constructor(readonly entries: [MsgValue, MsgValue][]) {}
}
/** An integer written with a wider encoding than it needs (msgpack allows any). */
export class WideInt {
  constructor(
    readonly value: bigint,
    readonly code: 0xcf | 0xd3 | 0xce | 0xd2,
  ) {}
}

export type MsgValue = null | boolean | number | string | Uint8Array | Ext | Raw | F32 | MsgMap | WideInt | MsgValue[] | { [k: string]: MsgValue };

/**
 * Encodes any MsgValue as msgpack, independently of the codecs under test, so a decoder is
 * fed shapes its own encoder would never write.
 */
export function encodeValue(v: MsgValue): Buffer {
  const out: Buffer[] = [];
  write(out, v);
  return Buffer.concat(out);
}

function write(out: Buffer[], v: MsgValue): void {
  if (v === null) return void out.push(Buffer.from([0xc0]));
  if (v === true || v === false) return void out.push(Buffer.from([v ? 0xc3 : 0xc2]));
  if (typeof v === 'number') return writeNumber(out, v);
  if (typeof v === 'string') return writeStr(out, Buffer.from(v, 'utf8'));
  if (v instanceof Uint8Array) {
    writeHeader(out, v.length, [0xc4, 0xc5, 0xc6], null);
    return void out.push(Buffer.from(v));
  }
  if (v instanceof Raw) return void out.push(Buffer.from(v.bytes));
  if (v instanceof F32) {
    const b = Buffer.alloc(5);
    b[0] = 0xca;
    b.writeFloatBE(v.value, 1);
    return void out.push(b);
  }
  if (v instanceof WideInt) {
    const wide = v.code === 0xcf || v.code === 0xd3;
    const b = Buffer.alloc(wide ? 9 : 5);
    b[0] = v.code;
    if (v.code === 0xcf) b.writeBigUInt64BE(BigInt.asUintN(64, v.value), 1);
    else if (v.code === 0xd3) b.writeBigInt64BE(BigInt.asIntN(64, v.value), 1);
    else if (v.code === 0xce) b.writeUInt32BE(Number(BigInt.asUintN(32, v.value)), 1);
    else b.writeInt32BE(Number(BigInt.asIntN(32, v.value)), 1);
    return void out.push(b);
  }
  if (v instanceof Ext) {
    const n = v.data.length;
    const fix = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[n];
    if (fix !== undefined) out.push(Buffer.from([fix, v.type & 0xff]));
    else {
      writeHeader(out, n, [0xc7, 0xc8, 0xc9], null);
      out.push(Buffer.from([v.type & 0xff]));
    }
    return void out.push(Buffer.from(v.data));
  }
  if (Array.isArray(v)) {
    writeHeader(out, v.length, [null, 0xdc, 0xdd], 0x90);
    for (const x of v) write(out, x);
    return;
  }
  const entries = v instanceof MsgMap ? v.entries : (Object.entries(v) as [MsgValue, MsgValue][]);
  writeHeader(out, entries.length, [null, 0xde, 0xdf], 0x80);
  for (const [k, x] of entries) {
    write(out, k);
    write(out, x);
  }
}

function writeNumber(out: Buffer[], n: number): void {
  if (Number.isSafeInteger(n)) {
    if (n >= 0 && n < 0x80) return void out.push(Buffer.from([n]));
    if (n < 0 && n >= -32) return void out.push(Buffer.from([n & 0xff]));
    const b = Buffer.alloc(9);
    if (n >= 0) {
      b[0] = 0xcf;
      b.writeBigUInt64BE(BigInt(n), 1);
    } else {
      b[0] = 0xd3;
      b.writeBigInt64BE(BigInt(n), 1);
    }
    return void out.push(b);
  }
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(n, 1);
  out.push(b);
}

function writeStr(out: Buffer[], bytes: Buffer): void {
  writeHeader(out, bytes.length, [0xd9, 0xda, 0xdb], 0xa0);
  out.push(bytes);
}

/** A length header: fix form (when `fix` and small enough), else the 8/16/32-bit codes. */
function writeHeader(out: Buffer[], n: number, codes: [number | null, number, number], fix: number | null): void {
  const fixMax = fix === 0xa0 ? 32 : 16;
  if (fix !== null && n < fixMax) return void out.push(Buffer.from([fix | n]));
  if (codes[0] !== null && n < 0x100) return void out.push(Buffer.from([codes[0], n]));
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = codes[1];
    b.writeUInt16BE(n, 1);
    return void out.push(b);
  }
  const b = Buffer.alloc(5);
  b[0] = codes[2];
  b.writeUInt32BE(n, 1);
  out.push(b);
}

/** Strings a decoder treats specially somewhere: names of keys, roles, codes, prototype names. */
export const TRICKY_STRINGS = [
  '',
  'worker',
  'client',
  'versions',
  'role',
  'instanceId',
  'token',
  'name',
  'toString',
  'valueOf',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'E_PROTOCOL',
  'E_NOPE',
  'hrw-murmur3-v1',
  '127.0.0.1:1',
  'echo',
  'a b',
  '..',
  '\u0000',
  'é',
  '\ud800',
];

/** Any msgpack value, nested a few levels, with strings, numbers and extension types that bite. */
export function msgValue(): fc.Arbitrary<MsgValue> {
  const leaf: fc.Arbitrary<MsgValue> = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -40, max: 700 }),
    fc.maxSafeNat(),
    fc.integer(),
    fc.constantFrom(2 ** 53, -(2 ** 53), 2 ** 64, 1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 1e300),
    fc.double(),
    fc.float().map((x) => new F32(x)),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }).map((x) => new WideInt(x, x < 0n ? 0xd3 : 0xcf)),
    fc.constantFrom(...TRICKY_STRINGS),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => new Raw(Uint8Array.from([0xa0 | b.length, ...b]))),
    fc.tuple(fc.integer({ min: -128, max: 127 }), fc.uint8Array({ maxLength: 20 })).map(([t, d]) => new Ext(t, d)),
  );
  const { value } = fc.letrec<{ value: MsgValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 6 }),
      fc.array(fc.tuple(fc.oneof(fc.constantFrom(...TRICKY_STRINGS), fc.string({ maxLength: 12 })), tie('value')), { maxLength: 6 }).map((e) => new MsgMap(e)),
      fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }).map((e) => new MsgMap(e)),
    ),
  }));
  return value;
}
