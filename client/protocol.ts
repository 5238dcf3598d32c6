/**
 * The astromesh wire protocol, version 1: the one definition of every frame, shared by the
 * hub and the client library. PROTOCOL.md is the normative description of the same thing.
 *
 * One WebSocket binary message carries one frame: a msgpack array whose first element is the
 * op code. Standard msgpack only (no extension types), bodies as `bin`, so a worker in any
 * language with any msgpack library can speak it. Decoding validates the shape in place and
 * returns the decoded array itself, so the hot path allocates no frame objects.
 */
import { Unpackr } from 'msgpackr';
import { ownCopy } from './bytes.js';
import { type ErrorCode, isErrorCode } from './errors.js';
import { pack } from './msgpack-writer.js';

/** The protocol version this build speaks best. */
export const PROTOCOL_VERSION = 1;
/** Every version this build can speak, newest first. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];

/** Frame op codes: the first element of every frame. */
export const Op = {
  Hello: 1,
  Welcome: 2,
  Register: 3,
  Unregister: 4,
  Job: 5,
  Reply: 6,
  Error: 7,
  Cancel: 8,
  CancelAck: 9,
  Request: 10,
  Response: 11,
  Drain: 12,
  Goodbye: 13,
  ProtocolError: 14,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** The largest concurrency (credit) a Register may give a service. */
export const MAX_CONCURRENCY = 100_000;
/** The largest weight a Register may give; a weight must also be more than 0. */
export const MAX_WEIGHT = 1_000_000;

/** How a Request frame is routed. */
export const RequestMode = { Any: 0, Keyed: 1, Broadcast: 2 } as const;
export type RequestModeCode = (typeof RequestMode)[keyof typeof RequestMode];

/** WebSocket close codes the hub uses. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  Protocol: 1002,
  Policy: 1008,
  TooBig: 1009,
  Replaced: 4001,
  Unresponsive: 4002,
  /** A session that did not read its frames: over its unsent-bytes cap for too long, or far over it. */
  SlowConsumer: 4003,
  /** Peer links: a second link between the same two hubs; the other one stays. Not a failure. */
  DuplicateLink: 4010,
  /** Peer links: the other hub could not prove it knows the cluster secret. */
  PeerUnauthorized: 4011,
  /** Peer links: no shared peer protocol version or ring algorithm, or a hub id in use. */
  PeerRefused: 4012,
} as const;

/** Header name → value, names in lower case. */
export type Headers = Record<string, string>;

export interface HelloOptions {
  /** Versions the client speaks; the hub picks the highest it shares. */
  versions: number[];
  role: 'worker' | 'client';
  /** Stable identity of a worker, kept across reconnects so its partition keys do not move. */
  instanceId?: string;
  token?: string;
  name?: string;
}
export interface WelcomeInfo {
  version: number;
  hubId: string;
  sessionId: number;
  instanceId: string;
  maxFrameBytes: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
}

export type HelloFrame = [typeof Op.Hello, HelloOptions];
export type WelcomeFrame = [typeof Op.Welcome, WelcomeInfo];
export type RegisterFrame = [typeof Op.Register, string, number, number];
export type UnregisterFrame = [typeof Op.Unregister, string];
/** [op, jobId, service, key, remainingMs, attempt, contentType, headers, query, body] */
export type JobFrame = [typeof Op.Job, number, string, string | null, number, number, string | null, Headers | null, string | null, Uint8Array];
/** [op, jobId, status, contentType, headers, body] */
export type ReplyFrame = [typeof Op.Reply, number, number, string | null, Headers | null, Uint8Array];
/** [op, jobId, status, code, message] */
export type ErrorFrame = [typeof Op.Error, number, number | null, string | null, string | null];
/** [op, id, code]: hub → worker cancels a job; client → hub cancels its own request. */
export type CancelFrame = [typeof Op.Cancel, number, string | null];
export type CancelAckFrame = [typeof Op.CancelAck, number];
/** [op, requestId, mode, service, key, timeoutMs, contentType, headers, query, body] */
export type RequestFrame = [
  typeof Op.Request,
  number,
  RequestModeCode,
  string,
  string | null,
  number | null,
  string | null,
  Headers | null,
  string | null,
  Uint8Array,
];
/** [op, requestId, status, contentType, headers, body, servedBy] */
export type ResponseFrame = [typeof Op.Response, number, number, string | null, Headers | null, Uint8Array, string | null];
export type DrainFrame = [typeof Op.Drain];
export type GoodbyeFrame = [typeof Op.Goodbye, string | null, string | null];
/** [op, code, message, ref, fatal] */
export type ProtocolErrorFrame = [typeof Op.ProtocolError, ErrorCode, string, string | number | null, boolean];

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | RegisterFrame
  | UnregisterFrame
  | JobFrame
  | ReplyFrame
  | ErrorFrame
  | CancelFrame
  | CancelAckFrame
  | RequestFrame
  | ResponseFrame
  | DrainFrame
  | GoodbyeFrame
  | ProtocolErrorFrame;

/** A frame that does not follow the protocol. */
export class ProtocolError extends Error {
  /** The refused frame's op, when it could be read: a positive integer. */
  op: number | null = null;
  /** The refused frame's second element, when it could be read as a uint (a Reply's or an Error's jobId). */
  id: number | null = null;
  constructor(
    message: string,
    /** A well-formed frame of an op this build does not know: new ops may come within a version, so this need not end a session. */
    readonly unknownOp = false,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * The most msgpack values one frame of the worker protocol may hold, counting the frame array
 * and every value inside it at any depth (a map entry is two: key and value). The largest
 * frame of this version holds about 140 (a Request with 64 headers); the rest is room for
 * trailing fields. Decoding costs per value, not per byte, so without this a message of
 * `maxFrameBytes` nils would decode to a million-element array.
 */
export const MAX_FRAME_VALUES = 1024;

const EMPTY = new Uint8Array(0);

/** `bytes` as a Buffer: itself when it is one, else a view over the same memory (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a frame as one msgpack message. */
export function encodeFrame(frame: Frame): Buffer {
  return pack(frame);
}

/** Bodies decode as views into the message they came in, never copies of their own. */
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: false, int64AsType: 'number' });

/**
 * Decodes and validates one frame. Throws ProtocolError on anything that is not a valid frame
 * of this version. `borrowed` says the bytes will be reused after this call returns.
 */
export function decodeFrame(bytes: Uint8Array, borrowed: boolean): Frame {
  const f = decodeArray(bytes, borrowed, frameValueLimit);
  try {
    return checkFrame(f);
  } catch (err) {
    throw located(err, f[0], f[1]);
  }
}

const frameValueLimit = (): number => MAX_FRAME_VALUES;

function checkFrame(f: unknown[]): Frame {
  switch (f[0]) {
    case Op.Job:
      return checkJob(f);
    case Op.Reply:
      return checkReply(f);
    case Op.Request:
      return checkRequest(f);
    case Op.Response:
      return checkResponse(f);
    case Op.Error:
      return checkError(f);
    case Op.Cancel:
      return checkCancel(f);
    case Op.CancelAck:
      return checkCancelAck(f);
    case Op.Hello:
      return checkHello(f);
    case Op.Welcome:
      return checkWelcome(f);
    case Op.Register:
      return checkRegister(f);
    case Op.Unregister:
      return checkUnregister(f);
    case Op.Drain:
      return [Op.Drain];
    case Op.Goodbye:
      return checkGoodbye(f);
    case Op.ProtocolError:
      return checkProtocolError(f);
    default:
      if (isUint(f[0]) && f[0] > 0) throw new ProtocolError(`unknown op ${f[0]}`, true);
      throw new ProtocolError(`op must be a positive integer, not ${describe(f[0])}`);
  }
}

/** Notes on `err` the op and id of the frame it refused, where they are uints. */
function located(err: unknown, op: unknown, id: unknown): unknown {
  if (!(err instanceof ProtocolError)) return err;
  if (isUint(op) && op > 0) err.op = op;
  if (isUint(id)) err.id = id;
  return err;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkJob(f: unknown[]): JobFrame {
  arity(f, 10, 'job');
  uint(f[1], 'job id');
  str(f[2], 'service');
  optStr(f[3], 'key');
  uint(f[4], 'remainingMs');
  uint(f[5], 'attempt');
  optStr(f[6], 'contentType');
  optHeaders(f[7]);
  optStr(f[8], 'query');
  f[9] = body(f[9]);
  return f as JobFrame;
}

function checkReply(f: unknown[]): ReplyFrame {
  arity(f, 6, 'reply');
  uint(f[1], 'job id');
  status(f[2]);
  optStr(f[3], 'contentType');
  optHeaders(f[4]);
  f[5] = body(f[5]);
  return f as ReplyFrame;
}

function checkRequest(f: unknown[]): RequestFrame {
  arity(f, 10, 'request');
  uint(f[1], 'request id');
  if (f[2] !== RequestMode.Any && f[2] !== RequestMode.Keyed && f[2] !== RequestMode.Broadcast)
    throw new ProtocolError(`request mode must be 0, 1 or 2, not ${describe(f[2])}`);
  str(f[3], 'service');
  optStr(f[4], 'key');
  if (f[5] !== null) uint(f[5], 'timeoutMs');
  optStr(f[6], 'contentType');
  optHeaders(f[7]);
  optStr(f[8], 'query');
  f[9] = body(f[9]);
  return f as RequestFrame;
}

function checkResponse(f: unknown[]): ResponseFrame {
  arity(f, 7, 'response');
  uint(f[1], 'request id');
  status(f[2]);
  optStr(f[3], 'contentType');
  optHeaders(f[4]);
  f[5] = body(f[5]);
  optStr(f[6], 'servedBy');
  return f as ResponseFrame;
}

function checkError(f: unknown[]): ErrorFrame {
  arity(f, 5, 'error');
  uint(f[1], 'job id');
  if (f[2] !== null) status(f[2]);
  optStr(f[3], 'code');
  optStr(f[4], 'message');
  return f as ErrorFrame;
}

function checkCancel(f: unknown[]): CancelFrame {
  arity(f, 2, 'cancel');
  uint(f[1], 'id');
  if (f.length > 2) optStr(f[2], 'code');
  else f[2] = null;
  return f as CancelFrame;
}

function checkCancelAck(f: unknown[]): CancelAckFrame {
  arity(f, 2, 'cancel ack');
  uint(f[1], 'job id');
  return f as CancelAckFrame;
}

function checkHello(f: unknown[]): HelloFrame {
  arity(f, 2, 'hello');
  const o = map(f[1], 'hello');
  if (!Array.isArray(o.versions) || o.versions.length === 0 || o.versions.length > 16 || !o.versions.every((v) => Number.isSafeInteger(v) && v > 0)) {
    throw new ProtocolError('hello.versions must be a non-empty array of positive integers');
  }
  if (o.role !== 'worker' && o.role !== 'client') throw new ProtocolError('hello.role must be "worker" or "client"');
  if (!nilOrAbsent(o, 'instanceId') && !isValidInstanceId(o.instanceId)) throw new ProtocolError('hello.instanceId must be 1-128 printable ASCII characters');
  if (!nilOrAbsent(o, 'token') && (typeof o.token !== 'string' || o.token.length > MAX_TOKEN_LENGTH)) throw new ProtocolError('hello.token must be a string');
  if (!nilOrAbsent(o, 'name') && (typeof o.name !== 'string' || o.name.length > 256)) throw new ProtocolError('hello.name must be a short string');
  return f as HelloFrame;
}

/** A key that is absent or nil; a key present as `undefined` held extension type 0, which is neither. */
function nilOrAbsent(o: Record<string, unknown>, key: string): boolean {
  return o[key] === null || (o[key] === undefined && !Object.hasOwn(o, key));
}

function checkWelcome(f: unknown[]): WelcomeFrame {
  arity(f, 2, 'welcome');
  const o = map(f[1], 'welcome');
  uint(o.version, 'welcome.version');
  str(o.hubId, 'welcome.hubId');
  uint(o.sessionId, 'welcome.sessionId');
  str(o.instanceId, 'welcome.instanceId');
  uint(o.maxFrameBytes, 'welcome.maxFrameBytes');
  uint(o.pingIntervalMs, 'welcome.pingIntervalMs');
  uint(o.pongTimeoutMs, 'welcome.pongTimeoutMs');
  return f as WelcomeFrame;
}

function checkRegister(f: unknown[]): RegisterFrame {
  arity(f, 4, 'register');
  str(f[1], 'service');
  uint(f[2], 'concurrency');
  // Only the type: a weight out of range is the hub's to refuse, naming the service.
  if (typeof f[3] !== 'number') throw new ProtocolError('register weight must be a number');
  return f as RegisterFrame;
}

function checkUnregister(f: unknown[]): UnregisterFrame {
  arity(f, 2, 'unregister');
  str(f[1], 'service');
  return f as UnregisterFrame;
}

function checkGoodbye(f: unknown[]): GoodbyeFrame {
  for (let i = f.length; i < 3; i++) f[i] = null;
  optStr(f[1], 'code');
  optStr(f[2], 'message');
  return f as GoodbyeFrame;
}

function checkProtocolError(f: unknown[]): ProtocolErrorFrame {
  arity(f, 5, 'protocol error');
  if (!isErrorCode(f[1])) throw new ProtocolError(`unknown error code ${describe(f[1])}`);
  str(f[2], 'message');
  if (f[3] !== null && typeof f[3] !== 'string' && !Number.isSafeInteger(f[3]))
    throw new ProtocolError('protocol error ref must be a string, an integer or nil');
  bool(f[4], 'protocol error "fatal"');
  return f as ProtocolErrorFrame;
}

/**
 * Decodes one message that must be a non-empty msgpack array (every frame of every protocol
 * here) of at most `valueLimit(op)` values; a message over it is refused before it is decoded.
 */
export function decodeArray(bytes: Uint8Array, borrowed: boolean, valueLimit: (op: number) => number): unknown[] {
  // A value takes at least one byte: only a longer message can hold more values than any limit
  // this small, so frames on the hot path skip the count.
  if (bytes.length > MAX_FRAME_VALUES) countValues(bytes, valueLimit);
  let msg: unknown;
  // One copy of a whole borrowed message costs less than a buffer of its own per body.
  if (borrowed) bytes = ownCopy(bytes);
  try {
    msg = unpackr.unpack(bytes);
  } catch (err) {
    throw new ProtocolError(`not a msgpack message: ${(err as Error).message}`);
  }
  if (!Array.isArray(msg) || msg.length === 0) throw new ProtocolError('a frame must be a non-empty msgpack array');
  return msg as unknown[];
}

/**
 * Counts the values of the msgpack array in `b` from their headers alone (strings, binaries
 * and extensions are skipped whole) and throws when they exceed `valueLimit(op)`, as soon as
 * the headers read so far announce more: a huge array is refused at its first bytes.
 */
function countValues(b: Uint8Array, valueLimit: (op: number) => number): void {
  const first = b[0]!;
  const n = first >= 0x90 && first <= 0x9f ? first & 0x0f : first === 0xdc ? be(b, 1, 2) : first === 0xdd ? be(b, 1, 4) : 0;
  if (n === 0) throw new ProtocolError('a frame must be a non-empty msgpack array');
  const head = first <= 0x9f ? 1 : first === 0xdc ? 3 : 5;
  const op = peekUint(b, head);
  const limit = valueLimit(op === null ? 0 : op.value);
  let pos = 0;
  let pending = 1;
  let count = 0;
  while (pending > 0) {
    if (pos >= b.length) throw new ProtocolError('not a msgpack message: it ends inside a value');
    const t = b[pos]!;
    count++;
    pending--;
    if (t <= 0x7f || t >= 0xe0) pos += 1;
    else if (t <= 0x8f) {
      pending += 2 * (t & 0x0f);
      pos += 1;
    } else if (t <= 0x9f) {
      pending += t & 0x0f;
      pos += 1;
    } else if (t <= 0xbf) pos += 1 + (t & 0x1f);
    else {
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          pos += 1;
          break;
        case 0xc4:
        case 0xd9:
          pos += 2 + be(b, pos + 1, 1);
          break;
        case 0xc5:
        case 0xda:
          pos += 3 + be(b, pos + 1, 2);
          break;
        case 0xc6:
        case 0xdb:
          pos += 5 + be(b, pos + 1, 4);
          break;
        case 0xc7:
          pos += 3 + be(b, pos + 1, 1);
          break;
        case 0xc8:
          pos += 4 + be(b, pos + 1, 2);
          break;
        case 0xc9:
          pos += 6 + be(b, pos + 1, 4);
          break;
        case 0xcc:
        case 0xd0:
          pos += 2;
          break;
        case 0xcd:
        case 0xd1:
        case 0xd4:
          pos += 3;
          break;
        case 0xd5:
          pos += 4;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += 5;
          break;
        case 0xd6:
          pos += 6;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += 9;
          break;
        case 0xd7:
          pos += 10;
          break;
        case 0xd8:
          pos += 18;
          break;
        case 0xdc:
          pending += be(b, pos + 1, 2);
          pos += 3;
          break;
        case 0xdd:
          pending += be(b, pos + 1, 4);
          pos += 5;
          break;
        case 0xde:
          pending += 2 * be(b, pos + 1, 2);
          pos += 3;
          break;
        case 0xdf:
          pending += 2 * be(b, pos + 1, 4);
          pos += 5;
          break;
        default:
          throw new ProtocolError('not a msgpack message: byte 0xc1 is never used');
      }
    }
    if (count + pending > limit) {
      const err = new ProtocolError(`a frame holds at most ${limit} msgpack values; this one has ${count + pending} or more`);
      throw located(err, op?.value, op ? peekUint(b, head + op.size)?.value : null);
    }
  }
}

/** The big-endian unsigned integer of `size` bytes at `at`; throws past the end of `b`. */
function be(b: Uint8Array, at: number, size: number): number {
  if (at + size > b.length) throw new ProtocolError('not a msgpack message: it ends inside a value');
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + b[at + i]!;
  return v;
}

/** The msgpack unsigned integer at `at` and its size in bytes, or null for any other value. */
function peekUint(b: Uint8Array, at: number): { value: number; size: number } | null {
  const t = b[at];
  if (t === undefined) return null;
  if (t <= 0x7f) return { value: t, size: 1 };
  const size = t === 0xcc ? 1 : t === 0xcd ? 2 : t === 0xce ? 4 : t === 0xcf ? 8 : 0;
  if (size === 0 || at + 1 + size > b.length) return null;
  const value = be(b, at + 1, size);
  return Number.isSafeInteger(value) ? { value, size: 1 + size } : null;
}

/** The shape checks frames are validated with; the peer protocol uses the same ones. */
export const check = { arity, uint, status, str, optStr, bool, map, optHeaders, body };

function arity(f: unknown[], n: number, what: string): void {
  if (f.length < n) throw new ProtocolError(`${what} frame needs ${n} elements, got ${f.length}`);
}
function uint(v: unknown, what: string): void {
  // -0 is a float on the wire, never an id or a count: written back it would be 0, another value.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || Object.is(v, -0)) throw new ProtocolError(`${what} must be a non-negative integer`);
}
/** The statuses a Reply or Error may carry. */
export function isValidStatus(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 200 && v <= 599;
}

function status(v: unknown): void {
  if (!isValidStatus(v)) throw new ProtocolError('status must be an integer from 200 to 599');
}
function str(v: unknown, what: string): void {
  if (typeof v !== 'string') throw new ProtocolError(`${what} must be a string`);
}
function bool(v: unknown, what: string): void {
  if (typeof v !== 'boolean') throw new ProtocolError(`${what} must be a boolean`);
}
/**
 * Positional fields. A field a frame leaves off fails its arity check first, so an `undefined`
 * here is what msgpackr makes of extension type 0, which frames never carry: not nil.
 */
function optStr(v: unknown, what: string): void {
  if (v !== null && typeof v !== 'string') throw new ProtocolError(`${what} must be a string or nil`);
}
/**
 * A msgpack map decodes to a plain object. msgpackr also turns some extension types into
 * objects (timestamp → Date, its own Error, Set and RegExp types); checking the prototype
 * refuses those, since frames carry no extension types.
 */
function map(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) throw new ProtocolError(`${what} must be a map`);
  return v as Record<string, unknown>;
}
function optHeaders(v: unknown): void {
  if (v === null) return;
  const o = map(v, 'headers');
  let n = 0;
  for (const k in o) {
    if (typeof o[k] !== 'string') throw new ProtocolError('header values must be strings');
    if (++n > 64) throw new ProtocolError('at most 64 headers');
  }
}
function body(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v === null) return EMPTY;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw new ProtocolError('body must be bin, str or nil');
}
/** A value from the wire, for a message. Never String() of a decoded map: its own `toString` key would make that throw. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 32));
  if (v === null || typeof v !== 'object') return String(v).slice(0, 32);
  return Array.isArray(v) ? 'an array' : v instanceof Uint8Array ? 'bin' : 'a map';
}

const NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;
const DOTS_RE = /^\.+$/;
/** Service (stream) names: 1-128 of A-Z a-z 0-9 . _ -, not made of dots only. */
/** Longest token a Hello or an Authorization header may carry. */
export const MAX_TOKEN_LENGTH = 4096;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name) && !DOTS_RE.test(name);
}
/** Partition keys: 1-256 bytes of UTF-8 text. */
export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= 256 && Buffer.byteLength(key, 'utf8') <= 256;
}
const INSTANCE_RE = /^[\x21-\x7e]{1,128}$/;
/** Worker instance ids: 1-128 printable ASCII characters without spaces. */
export function isValidInstanceId(id: unknown): id is string {
  return typeof id === 'string' && INSTANCE_RE.test(id);
}
/** Picks the highest version both sides speak, or 0 when there is none. */
export function negotiateVersion(offered: readonly number[]): number {
  for (const v of SUPPORTED_VERSIONS) if (offered.includes(v)) return v;
  return 0;
}

/** True for content types whose bodies are JSON text. */
export function isJsonContentType(ct: string | null | undefined): boolean {
  if (!ct) return false;
  const semi = ct.indexOf(';');
  const base = (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
  return base === 'application/json' || base.endsWith('+json');
}

/** HTTP header on every answer that carries an error code (hub errors and handler errors). */
export const ERROR_CODE_HEADER = 'x-error-code';
/** HTTP header naming the hub and worker instance that produced an answer. */
export const SERVED_BY_HEADER = 'x-served-by';

/** The content type a reply has when the worker names none. */
export const DEFAULT_CONTENT_TYPE = 'application/json';
/**
 * The content type of meshage's JSON answers (express's `res.json`): the facade's replies and
 * the hub's `/api/health` and `/api/services` send it, so meshage callers see no change.
 */
export const MESHAGE_CONTENT_TYPE = 'application/json; charset=utf-8';
/** The status a reply has when the worker names none. */
export const DEFAULT_STATUS = 200;
export type { ErrorCode };
