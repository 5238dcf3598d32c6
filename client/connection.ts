/**
 * One WebSocket to a hub, shared by workers and callers: hello/welcome, frames batched per
 * loop turn into one socket write, keep-alive, and reconnect with backoff. What the frames
 * mean is up to the owner (Worker, WsTransport) through `onFrame` and `onOpen`.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { CLIENT_DEFAULTS } from './defaults.js';
import { BusError } from './errors.js';
import { CloseCode, decodeFrame, encodeFrame, type Frame, type HelloOptions, Op, SUPPORTED_VERSIONS, type WelcomeInfo } from './protocol.js';

export interface ConnectionOptions {
  /**
   * Hub base URL (http://host:port or ws://host:port; `/ws` is added), or several hubs of one
   * mesh, as an array or comma-separated: the first one first, and each new session after a
   * drop to the next one.
   */
  url: string | readonly string[];
  role: 'worker' | 'client';
  /** Stable worker identity; keep it across restarts so partition keys stay put. */
  instanceId?: string;
  token?: string;
  name?: string;
  /** First reconnect delay, doubled up to reconnectMaxMs. Default 100 ms. */
  reconnectMinMs?: number;
  /** Longest reconnect delay. Default 5 s. */
  reconnectMaxMs?: number;
  /** Largest frame accepted from the hub. Default 2 MiB. */
  maxFrameBytes?: number;
  /** Reconnect after a drop. Default true. */
  reconnect?: boolean;
  /**
   * Frames queued within one loop turn before they are written without waiting for the turn
   * to end, so the hub starts on the first ones while this process builds the rest. Default 16
   * for callers; none for workers, whose replies cost the hub less in one write per turn.
   */
  maxBatchFrames?: number;
}

type State = 'idle' | 'connecting' | 'open' | 'closed';

/** The hub URLs of an option that names one, several (comma-separated) or an array. */
export function hubUrls(url: string | readonly string[]): string[] {
  const list = (typeof url === 'string' ? url.split(',') : [...url]).map((u) => u.trim()).filter(Boolean);
  if (list.length === 0) throw new BusError('E_BAD_REQUEST', 'no hub URL given');
  return list;
}

/** Turns a hub base URL into its WebSocket endpoint. */
export function wsUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (!u.pathname.endsWith('/ws')) u.pathname = `${u.pathname.replace(/\/$/, '')}/ws`;
  return u.toString();
}

export class Connection extends EventEmitter {
  state: State = 'idle';
  welcome: WelcomeInfo | null = null;
  private ws: WebSocket | null = null;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private readonly maxBatchFrames: number;
  private flushScheduled = false;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  private readonly urls: string[];
  private urlIndex = 0;
  private reconnects: boolean;
  /** Called with every frame after the welcome. */
  onFrame: (frame: Frame) => void = () => {};
  /** Called after each welcome, before queued frames go out (to re-register). */
  onOpen: (welcome: WelcomeInfo) => void = () => {};
  /** Called when a socket drops (before any reconnect). */
  onDrop: (err: Error) => void = () => {};

  constructor(private readonly o: ConnectionOptions) {
    super();
    this.backoff = o.reconnectMinMs ?? CLIENT_DEFAULTS.reconnectMinMs;
    this.urls = hubUrls(o.url);
    this.reconnects = o.reconnect !== false;
    this.maxBatchFrames = Math.max(1, o.maxBatchFrames ?? (o.role === 'client' ? CLIENT_DEFAULTS.callerBatchFrames : Infinity));
  }

  /** Connects; resolves at the first welcome, rejects if the first attempt fails and reconnect is off. */
  connect(): Promise<WelcomeInfo> {
    if (this.state === 'closed') return Promise.reject(new BusError('E_CONNECTION_LOST', 'connection closed'));
    return new Promise((resolve, reject) => {
      const onWelcome = (w: WelcomeInfo) => {
        this.off('fatal', onFatal);
        resolve(w);
      };
      const onFatal = (err: Error) => {
        this.off('welcome', onWelcome);
        reject(err);
      };
      this.once('welcome', onWelcome);
      this.once('fatal', onFatal);
      if (this.state === 'idle') this.open();
    });
  }

  /** Queues a frame; frames go out together at the end of this loop turn, or sooner in a big burst. */
  send(frame: Frame): void {
    this.sendRaw(encodeFrame(frame));
  }

  sendRaw(bytes: Buffer): void {
    if (this.state === 'closed') return;
    this.outbox.push(bytes);
    this.outboxBytes += bytes.byteLength;
    if (this.state !== 'open') return;
    if (this.outbox.length >= this.maxBatchFrames || this.outboxBytes >= CLIENT_DEFAULTS.maxBatchBytes) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** The hub URL of the current (or next) session. */
  get url(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  /**
   * Resolves once the hub has answered a ping sent after every frame queued now: the hub has
   * read those frames (it reads a socket in order), and refused none it would refuse at once
   * without that showing as a ProtocolError first. Rejects if the socket goes first.
   */
  roundTrip(timeoutMs: number = CLIENT_DEFAULTS.roundTripTimeoutMs): Promise<void> {
    const ws = this.ws;
    if (!ws || this.state !== 'open' || ws.readyState !== WebSocket.OPEN) return Promise.reject(new BusError('E_CONNECTION_LOST', 'not connected to a hub'));
    this.flush();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(t);
        ws.off('pong', onPong);
        ws.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onPong = () => done();
      const onClose = () => done(new BusError('E_CONNECTION_LOST', 'the connection closed before the hub answered'));
      const t = setTimeout(() => done(new BusError('E_DEADLINE', 'the hub did not answer a ping')), timeoutMs);
      ws.on('pong', onPong);
      ws.on('close', onClose);
      ws.ping();
    });
  }

  /** Hub URLs this connection may use. */
  get urlCount(): number {
    return this.urls.length;
  }

  /** The hub URLs in the order a next session elsewhere tries them: the one after this one first. */
  nextUrls(): string[] {
    const i = (this.urlIndex + 1) % this.urls.length;
    return [...this.urls.slice(i), ...this.urls.slice(0, i)];
  }

  /** This socket finishes what it has; when it drops, no new one is opened. */
  stopReconnecting(): void {
    this.reconnects = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  /** Bytes waiting in this process for the socket. */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Closes for good; no reconnect. */
  close(code: number = CloseCode.Normal): void {
    if (this.state === 'closed') return;
    this.flush();
    this.state = 'closed';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.reconnectTimer = this.watchdog = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) ws.close(code);
      else ws.terminate();
    }
    this.emit('closed');
  }

  private open(): void {
    this.state = 'connecting';
    const ws = new WebSocket(wsUrl(this.urls[this.urlIndex % this.urls.length]!), {
      maxPayload: this.o.maxFrameBytes ?? CLIENT_DEFAULTS.maxFrameBytes,
      perMessageDeflate: false,
    });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    let welcomed = false;
    ws.on('open', () => {
      const hello: HelloOptions = { versions: [...SUPPORTED_VERSIONS], role: this.o.role };
      if (this.o.instanceId) hello.instanceId = this.o.instanceId;
      if (this.o.token) hello.token = this.o.token;
      if (this.o.name) hello.name = this.o.name;
      ws.send(encodeFrame([Op.Hello, hello]));
    });
    ws.on('ping', () => {
      this.lastHeard = Date.now();
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.lastHeard = Date.now();
      if (!isBinary) return;
      let frame: Frame;
      try {
        frame = decodeFrame(data, false);
      } catch (err) {
        // A frame this build cannot read (a newer hub, a bug) is dropped, never thrown:
        // an 'error' event without a listener would take the whole process down.
        this.emit('frameError', err);
        return;
      }
      if (!welcomed) {
        if (frame[0] === Op.Welcome) {
          welcomed = true;
          this.welcome = frame[1];
          this.state = 'open';
          this.backoff = this.o.reconnectMinMs ?? CLIENT_DEFAULTS.reconnectMinMs;
          this.startWatchdog(frame[1]);
          this.onOpen(frame[1]);
          this.emit('welcome', frame[1]);
          this.flush();
          return;
        }
        if (frame[0] === Op.ProtocolError) {
          const err = new BusError(frame[1], frame[2]);
          this.emit('fatal', err);
          return;
        }
      }
      this.onFrame(frame);
    });
    ws.on('error', (err) => {
      this.emit('socketError', err);
    });
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = null;
      if (this.watchdog) clearInterval(this.watchdog);
      this.watchdog = null;
      if (this.state === 'closed') return;
      const err = new BusError('E_CONNECTION_LOST', `connection to the hub closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`);
      this.state = 'connecting';
      this.outbox = [];
      this.outboxBytes = 0;
      // That hub is gone or going: the next session goes to the next hub of the list.
      this.urlIndex++;
      this.onDrop(err);
      if (!this.reconnects) {
        this.state = 'closed';
        this.emit('fatal', err);
        this.emit('closed');
        return;
      }
      const delay = this.backoff * (0.5 + Math.random() / 2);
      this.backoff = Math.min(this.backoff * 2, this.o.reconnectMaxMs ?? CLIENT_DEFAULTS.reconnectMaxMs);
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        if (this.state !== 'closed') this.open();
      }, delay);
    });
  }

  private flush(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.outbox.length === 0) return;
    const frames = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    // One socket write for the whole batch: cork the underlying TCP socket.
    const socket = (ws as unknown as { _socket?: Socket })._socket;
    socket?.cork();
    for (const f of frames) ws.send(f, { binary: true });
    socket?.uncork();
  }

  /** The hub pings every pingIntervalMs; silence past the pong timeout means a dead link. */
  private startWatchdog(w: WelcomeInfo): void {
    this.lastHeard = Date.now();
    if (this.watchdog) clearInterval(this.watchdog);
    const limit = w.pingIntervalMs + w.pongTimeoutMs;
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastHeard > limit) this.ws?.terminate();
      },
      Math.max(50, Math.min(w.pingIntervalMs, 1000)),
    );
  }
}
