/**
 * The hub-to-hub protocol over `/peer` links: frames, op codes and their checks. Like the
 * worker protocol, one WebSocket binary message is one msgpack array whose first element is the
 * op; peer ops live in their own range (32 and up). PROTOCOL.md ("Peer links") specifies it.
 */
import { pack } from '../../client/msgpack-writer.js';
import { check, decodeArray, describe, type Headers, MAX_FRAME_VALUES, ProtocolError, RequestMode, type RequestModeCode } from '../../client/protocol.js';

/**
 * The peer protocol version this build speaks. Version 2 (Batch, Leaving, tokens in Claim and
 * lease replies) changed frames of version 1, which nothing speaks any more.
 */
export const PEER_PROTOCOL_VERSION = 2;
/** The versions this build lists in its handshake. */
export const PEER_PROTOCOL_VERSIONS: readonly number[] = [PEER_PROTOCOL_VERSION];
/** A Batch holds at most this many bytes: past a few frames a larger one saves nothing more. */
export const MAX_BATCH_BYTES = 16 * 1024;
/** Every hub of a mesh must rank keys the same way: PROTOCOL.md, "Partitioning". */
export const RING_ALGORITHM = 'hrw-murmur3-v1';
/** A forwarded job travels one hop: the origin to the hub holding the worker. */
export const MAX_HOPS = 1;

export const PeerOp = {
  /** acceptor → dialer, first frame: who answers, and a challenge. */
  Challenge: 32,
  /** dialer → acceptor: who dials, its proof of the secret, and a challenge back. */
  PeerHello: 33,
  /** acceptor → dialer: accepted, with its proof of the secret. */
  PeerWelcome: 34,
  /** Every ring member this hub holds, replacing what the peer knew of it. */
  Members: 35,
  /** Changes since the last Members or MembersDelta, in order. */
  MembersDelta: 36,
  /** A job for a worker on the receiving hub. */
  Forward: 37,
  /** The worker's reply to a forwarded job. */
  ForwardReply: 38,
  /** The worker's (or its hub's) error for a forwarded job. */
  ForwardError: 39,
  /** origin → owner: the forwarded job's caller is gone or its deadline passed. */
  ForwardCancel: 40,
  /** owner → origin: the job could not run here (or its worker vanished); the origin routes it again. */
  HandBack: 41,
  /** A delta arrived out of order: send a full Members again. */
  SnapshotRequest: 42,
  /** The addresses of every hub the sender is linked to, so the mesh becomes full. */
  Peers: 43,
  /** A worker instance opened a session with the sender: a hub holding an older one closes it. */
  Claim: 44,
  /** How many unkeyed jobs of each service the receiver may have at the sender at once. */
  Grants: 45,
  /** A legacy worker's reply that reached the sender for a job the receiver leased. */
  LeaseReply: 46,
  /** Whether the job took that reply. */
  LeaseAnswer: 47,
  /**
   * The sender is leaving the mesh: send it no new work. Its members keep their keys until it
   * withdraws them (an empty Members) or the link closes; another hub's copy of an instance wins.
   */
  Leaving: 48,
  /** Several frames in one message: one WebSocket message per link and loop turn. */
  Batch: 49,
} as const;

export interface ChallengeInfo {
  hubId: string;
  bootNonce: string;
  versions: number[];
  ring: string;
  challenge: Uint8Array;
}
export interface HelloInfo extends ChallengeInfo {
  advertise: string;
  /** HMAC of the acceptor's challenge (nil without a cluster secret). */
  proof: Uint8Array | null;
}
export interface WelcomeInfo {
  advertise: string;
  proof: Uint8Array | null;
}
/** [service, instanceId, weight]; weight 0 in a delta means the member left. */
export type MemberTuple = [string, string, number];

export type ChallengeFrame = [typeof PeerOp.Challenge, ChallengeInfo];
export type PeerHelloFrame = [typeof PeerOp.PeerHello, HelloInfo];
export type PeerWelcomeFrame = [typeof PeerOp.PeerWelcome, WelcomeInfo];
export type MembersFrame = [typeof PeerOp.Members, number, MemberTuple[]];
export type MembersDeltaFrame = [typeof PeerOp.MembersDelta, number, MemberTuple[]];
/** [op, forwardId, mode, service, key, instanceId, remainingMs, attempt, contentType, headers, query, body, hops] */
export type ForwardFrame = [
  typeof PeerOp.Forward,
  number,
  RequestModeCode,
  string,
  string | null,
  string,
  number,
  number,
  string | null,
  Headers | null,
  string | null,
  Uint8Array,
  number,
];
/** [op, forwardId, status, contentType, headers, body, servedBy] */
export type ForwardReplyFrame = [typeof PeerOp.ForwardReply, number, number, string | null, Headers | null, Uint8Array, string];
/** [op, forwardId, status, code, message, servedBy] */
export type ForwardErrorFrame = [typeof PeerOp.ForwardError, number, number, string, string, string | null];
/** [op, forwardId, code] */
export type ForwardCancelFrame = [typeof PeerOp.ForwardCancel, number, string];
/** [op, forwardId, ran]: `ran` true when a worker had the job (the origin counts an attempt). */
export type HandBackFrame = [typeof PeerOp.HandBack, number, boolean];
export type SnapshotRequestFrame = [typeof PeerOp.SnapshotRequest];
/** [op, [[service, credit], ...]]: credit 0 withdraws the service. */
export type GrantsFrame = [typeof PeerOp.Grants, [string, number][]];
/** [op, replyId, leaseId, contentType, body] */
export type LeaseReplyFrame = [typeof PeerOp.LeaseReply, number, string, string | null, Uint8Array, string | null];
/** [op, replyId, accepted] */
export type LeaseAnswerFrame = [typeof PeerOp.LeaseAnswer, number, boolean, string | null];
/** [op, instanceId] */
export type ClaimFrame = [typeof PeerOp.Claim, string, string | null];
/** [op, [[hubId, advertise], ...]] */
export type PeersFrame = [typeof PeerOp.Peers, [string, string][]];
export type LeavingFrame = [typeof PeerOp.Leaving];

/** [op, frame, frame, ...]: frames of any op but the handshake's and Batch, in the order sent. */
export type BatchFrame = [typeof PeerOp.Batch, ...PeerFrame[]];

export type PeerFrame =
  | ChallengeFrame
  | PeerHelloFrame
  | PeerWelcomeFrame
  | MembersFrame
  | MembersDeltaFrame
  | ForwardFrame
  | ForwardReplyFrame
  | ForwardErrorFrame
  | ForwardCancelFrame
  | HandBackFrame
  | SnapshotRequestFrame
  | PeersFrame
  | ClaimFrame
  | GrantsFrame
  | LeaseReplyFrame
  | LeaseAnswerFrame
  | LeavingFrame
  | BatchFrame;

/**
 * An address a hub can be dialled at: `host:port` (a name or an IPv4 address, or `[IPv6]:port`)
 * or a ws:// or wss:// URL. Anything else a peer says is refused: it would be dialled.
 */
export function isPeerAddress(a: unknown): a is string {
  if (typeof a !== 'string' || a.length > 300) return false;
  if (/^wss?:\/\//.test(a)) {
    try {
      const u = new URL(a);
      return u.hostname !== '' && (u.protocol === 'ws:' || u.protocol === 'wss:');
    } catch {
      return false;
    }
  }
  return /^[A-Za-z0-9._-]{1,253}:\d{1,5}$|^\[[0-9a-fA-F:.]{2,45}\]:\d{1,5}$/.test(a) && Number(a.slice(a.lastIndexOf(':') + 1)) <= 65535;
}

/** Hub ids: 1-64 of A-Z a-z 0-9 . _ - */
export const HUB_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** Hubs named in one Peers frame, at most. */
export const MAX_PEERS_PER_FRAME = 1024;

/** Members in one Members or MembersDelta frame, at most. */
export const MAX_MEMBERS_PER_FRAME = 100_000;

/** Encodes a peer frame as one msgpack message (the same writer as the worker protocol's). */
export function encodePeerFrame(frame: PeerFrame): Buffer {
  return pack(frame);
}

/**
 * The most msgpack values a peer frame of `op` may hold (as counted for MAX_FRAME_VALUES): room
 * for the longest lists the peer protocol allows, and the worker protocol's limit for the rest.
 */
export function peerFrameValueLimit(op: number): number {
  switch (op) {
    case PeerOp.Members:
    case PeerOp.MembersDelta:
      // [op, seq, [[service, instanceId, weight], ...]]: the frame, op, seq and list, 4 a member.
      return 4 + 4 * MAX_MEMBERS_PER_FRAME;
    case PeerOp.Grants:
      // [op, [[service, credit], ...]]
      return 3 + 3 * MAX_MEMBERS_PER_FRAME;
    case PeerOp.Peers:
      return 3 + 3 * MAX_PEERS_PER_FRAME;
    case PeerOp.Batch:
      // Frames that share a message: never more than the largest frame alone may hold.
      return 4 + 4 * MAX_MEMBERS_PER_FRAME;
    default:
      return MAX_FRAME_VALUES;
  }
}

/** Before the handshake is done only its own small frames may come, from a hub not yet proven. */
const handshakeValueLimit = (): number => MAX_FRAME_VALUES;

/**
 * Joins `frames[from..]` (each one encoded frame) into Batch frames of at most `maxBytes`, in
 * order; a frame that fills a batch on its own goes as it is. One copy of every frame's bytes.
 */
export function batchPeerFrames(frames: readonly Uint8Array[], from: number, maxBytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = from;
  while (i < frames.length) {
    let end = i;
    let bytes = BATCH_HEADER_BYTES;
    while (end < frames.length && end - i < MAX_BATCH_FRAMES && bytes + frames[end]!.byteLength <= maxBytes) bytes += frames[end++]!.byteLength;
    if (end - i < 2) {
      out.push(frames[i++]!);
      continue;
    }
    out.push(encodeBatch(frames, i, end, bytes));
    i = end;
  }
  return out;
}

/** The array header (3 bytes at most, for up to 65,535 elements) and the op. */
const BATCH_HEADER_BYTES = 4;
const MAX_BATCH_FRAMES = 0xfffe;

/** A msgpack array of the op and the frames: nested arrays are their encodings back to back. */
function encodeBatch(frames: readonly Uint8Array[], from: number, to: number, bound: number): Buffer {
  const buf = Buffer.allocUnsafe(bound);
  const n = to - from + 1;
  let pos: number;
  if (n < 16) {
    buf[0] = 0x90 | n;
    pos = 1;
  } else {
    buf[0] = 0xdc;
    buf.writeUInt16BE(n, 1);
    pos = 3;
  }
  buf[pos++] = PeerOp.Batch;
  for (let i = from; i < to; i++) {
    const f = frames[i]!;
    buf.set(f, pos);
    pos += f.byteLength;
  }
  return pos === bound ? buf : buf.subarray(0, pos);
}

/**
 * Decodes and checks one peer frame (a Batch and every frame in it); throws ProtocolError on
 * anything else. `handshake`: the link has not finished its handshake.
 */
export function decodePeerFrame(bytes: Uint8Array, borrowed: boolean, handshake = false): PeerFrame {
  const f = decodeArray(bytes, borrowed, handshake ? handshakeValueLimit : peerFrameValueLimit);
  if (f[0] !== PeerOp.Batch) return checkFrame(f);
  if (f.length < 2) throw new ProtocolError('a batch holds at least one frame');
  for (let i = 1; i < f.length; i++) {
    const inner = f[i];
    if (!Array.isArray(inner) || inner.length === 0) throw new ProtocolError('a batch holds frames: non-empty arrays');
    const op = inner[0];
    if (op === PeerOp.Batch || op === PeerOp.Challenge || op === PeerOp.PeerHello || op === PeerOp.PeerWelcome)
      throw new ProtocolError(`peer op ${op} cannot be batched`);
    f[i] = checkFrame(inner);
  }
  return f as BatchFrame;
}

function checkFrame(f: unknown[]): PeerFrame {
  switch (f[0]) {
    case PeerOp.Challenge:
      check.arity(f, 2, 'challenge');
      checkChallenge(check.map(f[1], 'challenge'));
      return f as ChallengeFrame;
    case PeerOp.PeerHello: {
      check.arity(f, 2, 'peer hello');
      const h = check.map(f[1], 'peer hello');
      checkChallenge(h);
      if (!isPeerAddress(h.advertise)) throw new ProtocolError('advertise must be host:port or a ws(s):// URL');
      h.proof = optBin(h.proof, 'proof');
      return f as PeerHelloFrame;
    }
    case PeerOp.PeerWelcome: {
      check.arity(f, 2, 'peer welcome');
      const w = check.map(f[1], 'peer welcome');
      if (!isPeerAddress(w.advertise)) throw new ProtocolError('advertise must be host:port or a ws(s):// URL');
      w.proof = optBin(w.proof, 'proof');
      return f as PeerWelcomeFrame;
    }
    case PeerOp.Members:
    case PeerOp.MembersDelta:
      check.arity(f, 3, 'members');
      check.uint(f[1], 'sequence');
      members(f[2]);
      return f as MembersFrame | MembersDeltaFrame;
    case PeerOp.Forward:
      check.arity(f, 13, 'forward');
      check.uint(f[1], 'forward id');
      if (f[2] !== RequestMode.Any && f[2] !== RequestMode.Keyed && f[2] !== RequestMode.Broadcast) throw new ProtocolError('forward mode must be 0, 1 or 2');
      check.str(f[3], 'service');
      check.optStr(f[4], 'key');
      check.str(f[5], 'instanceId');
      check.uint(f[6], 'remainingMs');
      check.uint(f[7], 'attempt');
      check.optStr(f[8], 'contentType');
      check.optHeaders(f[9]);
      check.optStr(f[10], 'query');
      f[11] = check.body(f[11]);
      check.uint(f[12], 'hops');
      return f as ForwardFrame;
    case PeerOp.ForwardReply:
      check.arity(f, 7, 'forward reply');
      check.uint(f[1], 'forward id');
      check.status(f[2]);
      check.optStr(f[3], 'contentType');
      check.optHeaders(f[4]);
      f[5] = check.body(f[5]);
      check.str(f[6], 'servedBy');
      return f as ForwardReplyFrame;
    case PeerOp.ForwardError:
      check.arity(f, 6, 'forward error');
      check.uint(f[1], 'forward id');
      check.status(f[2]);
      check.str(f[3], 'code');
      check.str(f[4], 'message');
      check.optStr(f[5], 'servedBy');
      return f as ForwardErrorFrame;
    case PeerOp.ForwardCancel:
      check.arity(f, 3, 'forward cancel');
      check.uint(f[1], 'forward id');
      check.str(f[2], 'code');
      return f as ForwardCancelFrame;
    case PeerOp.HandBack:
      check.arity(f, 3, 'hand back');
      check.uint(f[1], 'forward id');
      check.bool(f[2], 'hand back "ran"');
      return f as HandBackFrame;
    case PeerOp.SnapshotRequest:
      return [PeerOp.SnapshotRequest];
    case PeerOp.Leaving:
      return [PeerOp.Leaving];
    case PeerOp.Grants:
      check.arity(f, 2, 'grants');
      tuples(
        f[1],
        MAX_MEMBERS_PER_FRAME,
        'a grant is [service, credit]',
        (g) => typeof g[0] === 'string' && Number.isSafeInteger(g[1]) && (g[1] as number) >= 0,
      );
      return f as GrantsFrame;
    case PeerOp.LeaseReply:
      check.arity(f, 6, 'lease reply');
      check.uint(f[1], 'reply id');
      check.str(f[2], 'lease id');
      check.optStr(f[3], 'contentType');
      f[4] = check.body(f[4]);
      check.optStr(f[5], 'poster');
      return f as LeaseReplyFrame;
    case PeerOp.LeaseAnswer:
      check.arity(f, 4, 'lease answer');
      check.uint(f[1], 'reply id');
      check.bool(f[2], 'lease answer "accepted"');
      check.optStr(f[3], 'code');
      return f as LeaseAnswerFrame;
    case PeerOp.Claim:
      check.arity(f, 3, 'claim');
      check.str(f[1], 'instanceId');
      check.optStr(f[2], 'token');
      return f as ClaimFrame;
    case PeerOp.Peers:
      check.arity(f, 2, 'peers');
      tuples(
        f[1],
        MAX_PEERS_PER_FRAME,
        'a peer is [hubId, advertise], advertise host:port or a ws(s):// URL',
        (p) => typeof p[0] === 'string' && HUB_ID_RE.test(p[0]) && isPeerAddress(p[1]),
      );
      return f as PeersFrame;
    default:
      throw new ProtocolError(`unknown peer op ${describe(f[0])}`);
  }
}

function checkChallenge(c: Record<string, unknown>): void {
  if (typeof c.hubId !== 'string' || !HUB_ID_RE.test(c.hubId)) throw new ProtocolError('hubId must be 1-64 of A-Z a-z 0-9 . _ -');
  check.str(c.bootNonce, 'bootNonce');
  if (!Array.isArray(c.versions) || !c.versions.every((v) => Number.isInteger(v))) throw new ProtocolError('versions must be an array of integers');
  check.str(c.ring, 'ring');
  if (!(c.challenge instanceof Uint8Array) || c.challenge.length !== CHALLENGE_BYTES) throw new ProtocolError(`challenge must be ${CHALLENGE_BYTES} bytes`);
}

/** Bytes of a handshake challenge. */
export const CHALLENGE_BYTES = 16;

function optBin(v: unknown, what: string): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (!(v instanceof Uint8Array)) throw new ProtocolError(`${what} must be bin or nil`);
  return v;
}

function members(v: unknown): void {
  const weight = (w: unknown) => typeof w === 'number' && w >= 0 && Number.isFinite(w);
  tuples(v, MAX_MEMBERS_PER_FRAME, 'a member is [service, instanceId, weight]', (m) => typeof m[0] === 'string' && typeof m[1] === 'string' && weight(m[2]));
}

/** An array of at most `max` arrays, each of which `valid` accepts. */
function tuples(v: unknown, max: number, what: string, valid: (t: unknown[]) => boolean): void {
  if (!Array.isArray(v) || v.length > max) throw new ProtocolError(`at most ${max} entries: ${what}`);
  for (const t of v) if (!Array.isArray(t) || !valid(t)) throw new ProtocolError(what);
}
