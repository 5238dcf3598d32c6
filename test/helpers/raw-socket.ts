/** A bare WebSocket to a hub for protocol tests: frames in, frames out, nothing else. */
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type Frame, Op } from '../../client/protocol.js';
import { FrameQueue } from './frame-queue.js';

export class RawSocket {
  private readonly queue = new FrameQueue<Frame>();
  readonly frames = this.queue.frames;
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = decodeFrame(data, false);
      this.queue.push(f);
    });
    this.closed = new Promise((r) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        r(code);
      }),
    );
  }

  static async open(hubUrl: string): Promise<RawSocket> {
    const ws = new WebSocket(`${hubUrl.replace('http', 'ws')}/ws`, { maxPayload: 8 * 1024 * 1024 });
    ws.on('error', () => {});
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new RawSocket(ws);
  }

  /** Opens, says hello, and registers `services` (name → concurrency). */
  static async worker(hubUrl: string, instanceId: string, services: Record<string, number> = {}): Promise<RawSocket> {
    const s = await RawSocket.open(hubUrl);
    s.send([Op.Hello, { versions: [1], role: 'worker', instanceId }]);
    await s.next((f) => f[0] === Op.Welcome);
    for (const [name, credit] of Object.entries(services)) s.send([Op.Register, name, credit, 1]);
    return s;
  }

  send(frame: Frame): void {
    this.ws.send(encodeFrame(frame));
  }

  sendRaw(data: Buffer | string, binary = true): void {
    this.ws.send(data, { binary });
  }

  next(pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
    return this.queue.next(pred, timeoutMs);
  }

  close(): void {
    this.ws.terminate();
  }
}
