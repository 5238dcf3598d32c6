/**
 * A caller: request / keyed request / broadcast, over HTTP (an undici pool) or over one
 * multiplexed WebSocket. Answers with an error code reject with BusError.
 */
import { Pool } from 'undici';
import { Connection, hubUrls } from './connection.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { BusError } from './errors.js';
import { DEFAULT_CONTENT_TYPE, type Headers, Op, SERVED_BY_HEADER } from './protocol.js';
import { type BusResponse, makeResponse, Requester, type RequestOptions } from './requester.js';

export interface ClientOptions {
  /**
   * Hub base URL, e.g. http://127.0.0.1:3000, or several hubs of one mesh (an array, or
   * comma-separated). Over HTTP, requests go round the hubs and one a hub refuses to connect is
   * sent to the next; over WebSocket, the session moves to the next hub when its hub goes.
   */
  url: string | readonly string[];
  /** 'http' (default) or 'ws' (one multiplexed WebSocket). */
  transport?: 'http' | 'ws';
  /** HTTP connections to keep open. Default 16. */
  connections?: number;
  token?: string;
  /** Default deadline for requests, ms. Default: the hub's. */
  timeoutMs?: number;
  /** WebSocket transport: frames of one turn written before the turn ends. Default 16. */
  maxBatchFrames?: number;
}

export class Client {
  private pools: Pool[] = [];
  private nextPool = 0;
  private conn: Connection | null = null;
  private requester: Requester | null = null;
  private ready: Promise<unknown> | null = null;

  constructor(private readonly o: ClientOptions) {
    if ((o.transport ?? 'http') === 'ws') {
      this.conn = new Connection({
        url: o.url,
        role: 'client',
        ...(o.token ? { token: o.token } : {}),
        ...(o.maxBatchFrames ? { maxBatchFrames: o.maxBatchFrames } : {}),
      });
      this.requester = new Requester(this.conn);
      this.conn.onFrame = (f) => {
        if (f[0] === Op.Response) this.requester!.onResponse(f);
      };
      this.conn.onDrop = (err) => this.requester!.failAll(err);
    } else {
      this.pools = hubUrls(o.url).map((u) => new Pool(u, { connections: o.connections ?? CLIENT_DEFAULTS.httpConnections, pipelining: 1 }));
      this.nextPool = Math.floor(Math.random() * this.pools.length);
    }
  }

  /** Sends to any worker of `service`. */
  request(service: string, body: Uint8Array | string | object, opts: RequestOptions = {}): Promise<BusResponse> {
    return this.send(service, body, opts);
  }

  /** Sends to the one worker that owns `key` on `stream`. */
  requestKeyed(stream: string, key: string, body: Uint8Array | string | object, opts: RequestOptions = {}): Promise<BusResponse> {
    return this.send(stream, body, { ...opts, key });
  }

  /** Sends to every worker of `stream`; resolves with the parsed array of replies. */
  async broadcast<T = unknown>(
    stream: string,
    key: string,
    body: Uint8Array | string | object,
    opts: RequestOptions = {},
  ): Promise<{ replies: T[]; response: BusResponse }> {
    const response = await this.send(stream, body, { ...opts, key, broadcast: true });
    return { replies: response.json<T[]>(), response };
  }

  async close(): Promise<void> {
    this.conn?.close();
    await Promise.all(this.pools.map((p) => p.close()));
  }

  private send(service: string, body: Uint8Array | string | object, opts: RequestOptions): Promise<BusResponse> {
    const isObject = typeof body === 'object' && !(body instanceof Uint8Array);
    const bytes = isObject ? JSON.stringify(body) : (body as Uint8Array | string);
    const contentType = opts.contentType ?? DEFAULT_CONTENT_TYPE;
    const timeoutMs = opts.timeoutMs ?? this.o.timeoutMs;
    if (this.requester) {
      // Connected: straight to the socket, no extra promise or options copy per request.
      if (this.conn!.state === 'open') return this.requester.request(service, bytes, opts, contentType, timeoutMs);
      return this.sendWhenConnected(service, bytes, opts, contentType, timeoutMs);
    }
    return this.sendHttp(service, bytes, { ...opts, contentType, timeoutMs });
  }

  private async sendWhenConnected(
    service: string,
    bytes: Uint8Array | string,
    opts: RequestOptions,
    contentType: string,
    timeoutMs: number | undefined,
  ): Promise<BusResponse> {
    this.ready ??= this.conn!.connect();
    await this.ready;
    return this.requester!.request(service, bytes, opts, contentType, timeoutMs);
  }

  private async sendHttp(service: string, body: Uint8Array | string, opts: RequestOptions): Promise<BusResponse> {
    const path = opts.broadcast
      ? `/api/broadcast/${enc(service)}/${enc(opts.key ?? '')}`
      : opts.key !== undefined
        ? `/api/${enc(service)}/${enc(opts.key)}`
        : `/service/${enc(service)}`;
    const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json', ...(opts.headers ?? {}) };
    if (opts.timeoutMs !== undefined) headers['x-timeout-ms'] = String(opts.timeoutMs);
    if (this.o.token) headers.authorization = `Bearer ${this.o.token}`;
    let res: Awaited<ReturnType<Pool['request']>> | null = null;
    const first = this.nextPool++ % this.pools.length;
    for (let i = 0; res === null; i++) {
      const pool = this.pools[(first + i) % this.pools.length]!;
      try {
        res = await pool.request({ path: path + (opts.query ? `?${opts.query}` : ''), method: 'POST', headers, body, signal: opts.signal ?? null });
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw new BusError('E_CANCELLED', undefined, undefined, { cause: err });
        // A hub that refused the connection never saw the request: the next hub may take it.
        // One that took it and dropped the connection may have run it: that is the caller's call.
        if (i + 1 < this.pools.length && isRefused(err)) continue;
        throw new BusError('E_CONNECTION_LOST', (err as Error).message, undefined, { cause: err });
      }
    }
    const buf = Buffer.from(await res.body.arrayBuffer());
    const h: Headers = {};
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
    return makeResponse(res.statusCode, h['content-type'] ?? null, h, buf, h[SERVED_BY_HEADER] ?? null);
  }
}

function isRefused(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH';
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
