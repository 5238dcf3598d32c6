/** A bare peer link to a hub for protocol tests: it dials /peer and speaks frames by hand. */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { proofOf } from '../../server/mesh/peer-auth.js';
import { decodePeerFrame, encodePeerFrame, type PeerFrame, PeerOp, RING_ALGORITHM } from '../../server/mesh/peer-protocol.js';
import { FrameQueue } from './frame-queue.js';

export class RawPeer {
  private readonly queue = new FrameQueue<PeerFrame>();
  readonly frames = this.queue.frames;
  readonly challenge = randomBytes(16);
  remoteHubId = '';
  /** The versions the hub listed in its Challenge. */
  remoteVersions: number[] = [];
  /** Frames that came inside a Batch (the queue holds the frames, never the Batch). */
  readonly batched = new WeakSet<PeerFrame>();
  batchesIn = 0;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = decodePeerFrame(data, false);
      if (f[0] !== PeerOp.Batch) return this.queue.push(f);
      this.batchesIn++;
      for (const inner of f.slice(1) as PeerFrame[]) {
        this.batched.add(inner);
        this.queue.push(inner);
      }
    });
    this.closed = new Promise((r) => ws.on('close', (code) => r(code)));
  }

  static async open(hubUrl: string): Promise<RawPeer> {
    const ws = new WebSocket(`${hubUrl.replace('http', 'ws')}/peer`, { maxPayload: 8 * 1024 * 1024 });
    ws.on('error', () => {});
    // Listening before 'open': the hub's Challenge can arrive in the same read as the upgrade.
    const peer = new RawPeer(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return peer;
  }

  /** Dials and completes the handshake as hub `hubId` speaking `versions`, proving `secret` when given. */
  static async linked(hubUrl: string, hubId: string, secret?: string, versions: number[] = [2]): Promise<RawPeer> {
    const p = await RawPeer.open(hubUrl);
    const c = (await p.next((f) => f[0] === PeerOp.Challenge)) as Extract<PeerFrame, { 0: 32 }>;
    p.remoteHubId = c[1].hubId;
    p.remoteVersions = c[1].versions;
    const proof = secret ? proofOf(secret, 'dialer', c[1].challenge, hubId, c[1].hubId) : null;
    p.send([PeerOp.PeerHello, { hubId, bootNonce: 'raw', versions, ring: RING_ALGORITHM, challenge: p.challenge, advertise: '127.0.0.1:1', proof }]);
    return p;
  }

  send(frame: PeerFrame): void {
    this.ws.send(encodePeerFrame(frame));
  }

  next(pred: (f: PeerFrame) => boolean, timeoutMs = 3000): Promise<PeerFrame> {
    return this.queue.next(pred, timeoutMs);
  }

  close(): void {
    this.ws.terminate();
  }
}
