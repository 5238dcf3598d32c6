/**
 * A small msgpack encoder for protocol frames: exactly the types a frame holds (nil, boolean,
 * number, string, bin, array, map of plain objects), always the shortest standard encoding,
 * no extension types. Frames are small arrays of short strings and one body; a general
 * encoder spends more on its own bookkeeping than on those bytes, and this is on every job.
 *
 * The size is bounded first, then one buffer is filled: small frames come from Node's shared
 * pool (one slice, no allocation of their own), a body is copied exactly once.
 */

type Value = null | undefined | boolean | number | string | Uint8Array | readonly Value[] | { readonly [k: string]: Value };

/** Strings shorter than this are measured and written in JS; longer ones natively. */
const SHORT_STRING = 64;

/** Encodes `value` as one msgpack message. Throws TypeError on a type frames never hold. */
export function pack(value: unknown): Buffer {
  const buf = Buffer.allocUnsafe(bound(value as Value));
  const end = write(buf, 0, value as Value);
  return end === buf.length ? buf : buf.subarray(0, end);
}

/** An upper bound of the encoded size. */
function bound(v: Value): number {
  if (v === null || v === undefined || typeof v === 'boolean') return 1;
  if (typeof v === 'number') return 9;
  if (typeof v === 'string') return 5 + v.length * 3;
  if (v instanceof Uint8Array) return 5 + v.byteLength;
  if (Array.isArray(v)) {
    let n = 5;
    for (let i = 0; i < v.length; i++) n += bound(v[i] as Value);
    return n;
  }
  if (isPlainObject(v)) {
    let n = 5;
    const o = v as { readonly [k: string]: Value };
    for (const k in o) n += 5 + k.length * 3 + bound(o[k]);
    return n;
  }
  throw new TypeError(`cannot encode ${typeof v} in a frame`);
}

function write(buf: Buffer, pos: number, v: Value): number {
  if (v === null || v === undefined) {
    buf[pos] = 0xc0;
    return pos + 1;
  }
  switch (typeof v) {
    case 'boolean':
      buf[pos] = v ? 0xc3 : 0xc2;
      return pos + 1;
    case 'number':
      return writeNumber(buf, pos, v);
    case 'string':
      return writeString(buf, pos, v);
  }
  if (v instanceof Uint8Array) {
    pos = writeSized(buf, pos, v.byteLength, 0xc4);
    buf.set(v, pos);
    return pos + v.byteLength;
  }
  if (Array.isArray(v)) {
    pos = writeLength(buf, pos, v.length, 0x90, 0xdc);
    for (let i = 0; i < v.length; i++) pos = write(buf, pos, v[i] as Value);
    return pos;
  }
  const o = v as { readonly [k: string]: Value };
  let count = 0;
  for (const _ in o) count++;
  pos = writeLength(buf, pos, count, 0x80, 0xde);
  for (const k in o) {
    pos = writeString(buf, pos, k);
    pos = write(buf, pos, o[k]);
  }
  return pos;
}

/** Array (0x90 / 0xdc) and map (0x80 / 0xde) headers. */
function writeLength(buf: Buffer, pos: number, n: number, fix: number, wide: number): number {
  if (n < 16) {
    buf[pos] = fix | n;
    return pos + 1;
  }
  if (n < 0x10000) {
    buf[pos] = wide;
    buf.writeUInt16BE(n, pos + 1);
    return pos + 3;
  }
  buf[pos] = wide + 1;
  buf.writeUInt32BE(n, pos + 1);
  return pos + 5;
}

function writeNumber(buf: Buffer, pos: number, n: number): number {
  if (Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) {
    if (n >= 0) {
      if (n < 0x80) {
        buf[pos] = n;
        return pos + 1;
      }
      if (n < 0x100000000) return writeSized(buf, pos, n, 0xcc);
      buf[pos] = 0xcf;
      buf.writeUInt32BE(Math.floor(n / 0x100000000), pos + 1);
      buf.writeUInt32BE(n >>> 0, pos + 5);
      return pos + 9;
    }
    if (n >= -32) {
      buf[pos] = n & 0xff;
      return pos + 1;
    }
    if (n >= -0x80) {
      buf[pos] = 0xd0;
      buf.writeInt8(n, pos + 1);
      return pos + 2;
    }
    if (n >= -0x8000) {
      buf[pos] = 0xd1;
      buf.writeInt16BE(n, pos + 1);
      return pos + 3;
    }
    if (n >= -0x80000000) {
      buf[pos] = 0xd2;
      buf.writeInt32BE(n, pos + 1);
      return pos + 5;
    }
    buf[pos] = 0xd3;
    buf.writeBigInt64BE(BigInt(n), pos + 1);
    return pos + 9;
  }
  buf[pos] = 0xcb;
  buf.writeDoubleBE(n, pos + 1);
  return pos + 9;
}

function writeString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  if (n < SHORT_STRING) {
    // Most frame strings are short ASCII (names, content types): write them in one pass,
    // assuming ASCII, and start over natively at the first character that is not.
    const start = writeStringHeader(buf, pos, n);
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      buf[start + i] = c;
    }
    if (i === n) return start + n;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  pos = writeStringHeader(buf, pos, bytes);
  return pos + buf.write(s, pos, bytes, 'utf8');
}

function writeStringHeader(buf: Buffer, pos: number, n: number): number {
  if (n < 32) {
    buf[pos] = 0xa0 | n;
    return pos + 1;
  }
  return writeSized(buf, pos, n, 0xd9);
}

/**
 * `code8` with a uint8, `code8 + 1` with a uint16, `code8 + 2` with a uint32: the layout msgpack
 * shares for uint (0xcc), str (0xd9) and bin (0xc4) headers.
 */
function writeSized(buf: Buffer, pos: number, n: number, code8: number): number {
  if (n < 0x100) {
    buf[pos] = code8;
    buf[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x10000) {
    buf[pos] = code8 + 1;
    buf.writeUInt16BE(n, pos + 1);
    return pos + 3;
  }
  buf[pos] = code8 + 2;
  buf.writeUInt32BE(n, pos + 1);
  return pos + 5;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
