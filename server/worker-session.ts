/**
 * One WebSocket session: a worker that serves services, a client that sends requests, or
 * both. It turns frames into dispatcher calls and jobs into frames, keeps the credit the
 * worker granted, and stops sending while its socket is backed up. The socket itself is an
 * adapter (uWebSockets.js for accepted connections, `ws` for dialled ones).
 */
import { nanoid } from 'nanoid';
import { ERRORS, type ErrorCode, errorBody } from '../client/errors.js';
import {
  CloseCode,
  decodeFrame,
  encodeFrame,
  type Frame,
  type HelloFrame,
  isValidInstanceId,
  isValidKey,
  isValidName,
  MAX_CONCURRENCY,
  MAX_WEIGHT,
  negotiateVersion,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  type RequestFrame,
  RequestMode,
} from '../client/protocol.js';
import type { Auth } from './auth/auth.js';
import type { Principal } from './auth/auth-file.js';
import type { Counters } from './counters.js';
import type { Dispatcher } from './dispatcher.js';
import { FrameOutbox } from './frame-outbox.js';
import { IdTable } from './id-table.js';
import { ANONYMOUS_PREFIX, type Consumer, Job, JobState, type JobWaiter, type Registration, Takes } from './job.js';
import type { Logger } from './log.js';
import type { HubOptions } from './options.js';
import { answerHeaders } from './reply-headers.js';
import type { SessionSocket, SessionSocketEvents } from './session-socket.js';
import { now } from './timer-wheel.js';

/** What the hub gives every session. */
export interface SessionHost {
  readonly options: HubOptions;
  readonly dispatcher: Dispatcher;
  readonly hubId: string;
  /**
   * Binds an instance id to this session, closing an older session of the same instance;
   * `chosen`: the worker named it (an anonymous one cannot exist elsewhere).
   */
  claimInstance(session: WorkerSession, chosen: boolean): boolean;
  readonly counters: Counters;
  readonly auth: Auth;
  /** One line per session opened and closed, and per fatal refusal; never per frame. */
  readonly log: Logger;
  /** Counts a session of `p`; false when the token has all the sessions it may have. */
  admitToken(p: Principal): boolean;
}

export type SessionState = 'hello' | 'open' | 'draining' | 'closed';

export class WorkerSession implements Consumer, JobWaiter, SessionSocketEvents {
  readonly leaseMs = 0;
  state: SessionState = 'hello';
  instanceId = '';
  role: 'worker' | 'client' = 'client';
  name = '';
  servedBy = '';
  lastSeen = now();
  /** Monotonic time the socket opened: a session must say hello within helloTimeoutMs. */
  readonly createdAt = now();
  /** When the hub's sweep next pings this session: a random phase within the interval. */
  nextPingAt: number;
  readonly openedAt = Date.now();
  readonly regs = new Map<string, Registration>();
  /** Jobs at this worker by wire id, until reply, error or cancel ack. */
  readonly inflight = new IdTable<Job>();
  /** This session's own requests by request id. */
  readonly requests = new IdTable<Job>();
  /** Welcomed (and logged as opened): only such a session is logged as closed. */
  private opened = false;
  /** Who ended the session, for its log line: the hub (code and reason) or the client. */
  private closedBy = 'client';
  /** The token the session said hello with (null with auth off). */
  principal: Principal | null = null;
  /** Monotonic time the unsent frames went over maxSessionQueuedBytes; 0 while within it. */
  overCapSince = 0;
  private socket: SessionSocket | null = null;
  private readonly outbox: FrameOutbox;
  private nextWireId = 1;
  /** Non-fatal protocol errors drawn so far. */
  private refusals = 0;
  private closingSlow = false;

  constructor(
    private readonly host: SessionHost,
    readonly sessionId: number,
    readonly remoteAddress: string,
  ) {
    this.nextPingAt = this.createdAt + Math.random() * host.options.pingIntervalMs;
    this.outbox = new FrameOutbox(host.options.maxBackpressureBytes, host.options.maxSessionQueuedBytes, host.counters.sockets, () => this.reoffer());
  }

  attach(socket: SessionSocket): void {
    this.socket = socket;
    this.outbox.socket = socket;
  }

  /** Who the session is, as its log lines and /stats name it. */
  identity() {
    return {
      sessionId: this.sessionId,
      instanceId: this.instanceId || undefined,
      role: this.role,
      name: this.name || undefined,
      token: this.principal?.name,
      remoteAddress: this.remoteAddress,
    };
  }

  /** Socket buffer above the limit: no new jobs until it drains. */
  get blocked(): boolean {
    return this.outbox.blocked;
  }

  /** Bytes of frames the socket has not taken yet. */
  get queuedBytes(): number {
    return this.outbox.pendingBytes;
  }

  /** Frames held back behind a backed-up socket past the cap: the session takes no Requests. */
  private get overCap(): boolean {
    return this.outbox.overCap;
  }

  // ---- Consumer ----

  canSend(): boolean {
    return this.state === 'open' && !this.blocked;
  }

  deliver(job: Job): void {
    const id = this.nextWireId++;
    job.wireId = id;
    this.inflight.add(id, job);
    const remaining = Math.max(1, Math.round(job.deadline - now()));
    this.send(encodeFrame([Op.Job, id, job.service, job.key, remaining, job.attempt, job.contentType, job.headers, job.query, job.body]));
  }

  cancel(job: Job, code: ErrorCode): void {
    if (this.inflight.get(job.wireId) === job) this.send(encodeFrame([Op.Cancel, job.wireId, code]));
  }

  // ---- JobWaiter: answers to this session's own requests ----

  settled(job: Job): void {
    if (this.requests.get(job.callerId) !== job) return;
    this.requests.take(job.callerId);
    if (this.state === 'closed') return;
    if (job.errorCode !== null) {
      const code = job.errorCode;
      const body = Buffer.from(errorBody(code as ErrorCode, job.errorMessage ?? undefined));
      this.send(encodeFrame([Op.Response, job.callerId, job.status, 'application/json', answerHeaders(job), body, job.servedBy ?? this.host.hubId]));
    } else {
      this.send(encodeFrame([Op.Response, job.callerId, job.status, job.replyContentType, answerHeaders(job), job.replyBody ?? EMPTY, job.servedBy]));
    }
  }

  // ---- frames in ----

  onMessage(data: Uint8Array, isBinary: boolean, borrowed: boolean): void {
    this.lastSeen = now();
    this.host.counters.sockets.framesIn++;
    // After a Goodbye or a fatal error the session is settled: nothing more it says counts.
    if (this.state === 'closed') return;
    if (!isBinary) return this.protocolError('E_PROTOCOL', 'frames must be binary msgpack messages', null, true);
    let frame: Frame;
    try {
      frame = decodeFrame(data, borrowed);
    } catch (err) {
      return this.refused(err);
    }
    if (this.state === 'hello') {
      if (frame[0] !== Op.Hello) return this.protocolError('E_PROTOCOL', 'the first frame must be hello', null, true);
      return this.hello(frame);
    }
    const d = this.host.dispatcher;
    switch (frame[0]) {
      case Op.Reply: {
        const job = this.takeInflight(frame[1]);
        if (!job) return;
        d.resolve(job, frame[2], frame[3], frame[4], frame[5], this.servedBy);
        d.release(job);
        return;
      }
      case Op.Error: {
        const job = this.takeInflight(frame[1]);
        if (!job) return;
        d.resolveError(job, frame[2], frame[3], frame[4], this.servedBy);
        d.release(job);
        return;
      }
      case Op.CancelAck: {
        const job = this.takeInflight(frame[1]);
        if (!job) return;
        // Credit first; then an ack for a job we never cancelled means the worker gave it
        // up, so it runs again elsewhere.
        d.release(job);
        if (job.state !== JobState.Settled) d.lost(job);
        return;
      }
      case Op.Request:
        return this.request(frame);
      case Op.Cancel: {
        const job = this.requests.take(frame[1]);
        if (job) d.abandon(job, 'E_CANCELLED');
        return;
      }
      case Op.Register:
        return this.register(frame[1], frame[2], frame[3]);
      case Op.Unregister: {
        const r = this.regs.get(frame[1]);
        if (r) {
          this.regs.delete(frame[1]);
          d.unregister(r);
        }
        return;
      }
      case Op.Drain:
        return this.startDraining();
      case Op.Goodbye:
        return this.close(CloseCode.Normal, 'goodbye');
      default:
        return this.protocolError('E_PROTOCOL', `op ${frame[0]} is not sent to a hub`, null, true);
    }
  }

  /**
   * A frame that could not be decoded. An unknown op after hello is refused on its own, since
   * new ops may come within a version; anything else malformed ends the session.
   */
  private refused(err: unknown): void {
    const e = err instanceof ProtocolError ? err : null;
    const message = (err as Error).message;
    if (this.state === 'hello' || !e) return this.protocolError('E_PROTOCOL', message, null, true);
    if (e.unknownOp) return this.protocolError('E_PROTOCOL', message, e.op, false);
    // A malformed answer still names its job: the worker did run it, and running it again would
    // most likely draw the same answer, so its caller hears now rather than at its deadline. The
    // session ends first: released after that, the job's credit offers this dying session nothing.
    const job = (e.op === Op.Reply || e.op === Op.Error) && e.id !== null ? this.inflight.take(e.id) : null;
    this.protocolError('E_PROTOCOL', message, null, true);
    if (job) {
      this.host.dispatcher.badAnswer(job, this.servedBy);
      this.host.dispatcher.release(job);
    }
  }

  private hello(frame: HelloFrame): void {
    const h = frame[1];
    const version = negotiateVersion(h.versions);
    if (version === 0) return this.protocolError('E_VERSION', `this hub speaks protocol versions ${PROTOCOL_VERSION}`, null, true);
    const auth = this.host.auth;
    if (auth.enabled) {
      const p = auth.authenticate(h.token);
      if (!p) return this.protocolError('E_UNAUTHORIZED', 'a valid token is required in hello', null, true, CloseCode.Policy);
      if (!this.host.admitToken(p)) {
        return this.protocolError('E_OVERLOADED', `this token has all the connections it may have (${p.maxConnections})`, null, true, CloseCode.Policy);
      }
      this.principal = p;
    }
    this.role = h.role;
    this.name = typeof h.name === 'string' ? h.name : '';
    const chosen = !!h.instanceId && isValidInstanceId(h.instanceId);
    this.instanceId = chosen ? h.instanceId! : `${ANONYMOUS_PREFIX}${nanoid(12)}`;
    this.servedBy = `${this.host.hubId}/${this.instanceId}`;
    this.state = 'open';
    if (!this.host.claimInstance(this, chosen)) {
      this.host.auth.forbid();
      return this.protocolError('E_FORBIDDEN', 'that instanceId is in use by a session of another token', null, true, CloseCode.Policy);
    }
    const o = this.host.options;
    this.send(
      encodeFrame([
        Op.Welcome,
        {
          version,
          hubId: this.host.hubId,
          sessionId: this.sessionId,
          instanceId: this.instanceId,
          maxFrameBytes: o.maxFrameBytes,
          pingIntervalMs: o.pingIntervalMs,
          pongTimeoutMs: o.pongTimeoutMs,
        },
      ]),
    );
    this.opened = true;
    this.host.log.info(this.identity(), 'session opened');
  }

  private register(service: string, concurrency: number, weight: number): void {
    if (!isValidName(service)) return this.protocolError('E_BAD_NAME', ERRORS.E_BAD_NAME.message, service, false);
    if (concurrency < 1 || concurrency > MAX_CONCURRENCY) return this.protocolError('E_PROTOCOL', `concurrency must be 1-${MAX_CONCURRENCY}`, service, false);
    // Written so that NaN fails it too.
    if (!(weight > 0 && weight <= MAX_WEIGHT)) return this.protocolError('E_PROTOCOL', `weight must be more than 0 and at most ${MAX_WEIGHT}`, service, false);
    if (this.state === 'draining') return this.protocolError('E_SHUTTING_DOWN', 'this session is draining', service, false);
    if (this.principal && !this.principal.serve.allows(service)) {
      this.host.auth.forbid();
      return this.protocolError('E_FORBIDDEN', `this token may not serve ${service}`, service, false);
    }
    const most = this.host.options.maxServicesPerSession;
    if (this.regs.size >= most && !this.regs.has(service))
      return this.protocolError('E_OVERLOADED', `a session may register at most ${most} services`, service, false);
    const membership = { instanceId: this.instanceId, hubId: this.host.hubId, weight, takes: Takes.Ring };
    const r = this.host.dispatcher.register(this, service, concurrency, membership, this.regs.get(service));
    if (typeof r === 'string') return this.protocolError(r, ERRORS[r].message, service, false);
    this.regs.set(service, r);
  }

  private request(f: RequestFrame): void {
    const [, id, mode, service, key, timeoutMs, contentType, headers, query, body] = f;
    const o = this.host.options;
    let err: ErrorCode | null = null;
    let message: string | undefined;
    if (this.requests.get(id) !== undefined) return this.protocolError('E_PROTOCOL', `request id ${id} is already in flight`, id, false);
    if (!isValidName(service)) err = 'E_BAD_NAME';
    else if (mode !== RequestMode.Any && !isValidKey(key)) err = 'E_BAD_KEY';
    else if (timeoutMs === 0) err = 'E_BAD_TIMEOUT';
    else if (body.length > o.maxBodyBytes) err = 'E_BODY_TOO_LARGE';
    else if (this.requests.size >= o.maxRequestsPerSession) err = 'E_OVERLOADED';
    else if (this.principal && !this.principal.request.allows(service)) err = this.host.auth.forbid() || 'E_FORBIDDEN';
    else if (this.overCap) {
      // Its answer is a few dozen bytes: a caller that sends while it does not read grows its
      // queue far slower than its requests would, until it is closed as a slow consumer.
      err = 'E_OVERLOADED';
      message = OVER_CAP_MESSAGE;
    }
    const deadline = now() + Math.min(timeoutMs ?? o.defaultTimeoutMs, o.maxTimeoutMs);
    const job = new Job(service, mode, mode === RequestMode.Any ? null : key, body, contentType, headers, query, deadline, this);
    job.callerId = id;
    this.requests.add(id, job);
    // Either way the answer comes back through settled(): refused jobs settle like any other.
    // The catalogue's messages name the HTTP header and URL; a Request has fields instead.
    if (err) this.host.dispatcher.reject(job, err, message ?? REQUEST_FIELD_MESSAGES[err]);
    else this.host.dispatcher.submit(job);
  }

  private startDraining(): void {
    if (this.state !== 'open') return;
    this.state = 'draining';
    for (const r of this.regs.values()) this.host.dispatcher.unregister(r);
    this.regs.clear();
  }

  private takeInflight(id: number): Job | null {
    const job = this.inflight.take(id);
    if (!job) {
      this.host.counters.jobs.unknownReplies++;
      return null;
    }
    return job;
  }

  // ---- frames out ----

  private send(frame: Uint8Array): void {
    if (this.state === 'closed') return;
    // Past the cap only answers to requests taken earlier and refusals are queued: a session
    // that takes them to twice the cap is not reading, and its memory is what the cap is for.
    if (this.outbox.push(frame)) this.slowConsumer();
    else if (this.overCapSince === 0 && this.outbox.overCap) this.overCapSince = now();
  }

  /** Called by the hub's sweep while over the cap: a session that did not catch up in time is closed. */
  sweepQueue(at: number): void {
    if (!this.overCap) this.overCapSince = 0;
    else if (at - this.overCapSince >= this.host.options.slowConsumerMs) this.slowConsumer();
  }

  private slowConsumer(): void {
    if (this.closingSlow || this.state === 'closed') return;
    this.closingSlow = true;
    this.host.counters.sockets.slowConsumers++;
    // Not from inside whatever is sending: teardown cancels requests and redelivers jobs.
    setImmediate(() => this.close(CloseCode.SlowConsumer, 'slow consumer'));
  }

  /** Writes what is queued now, rather than at the end of the loop turn. */
  flush(): void {
    if (this.state !== 'closed') this.outbox.flush();
  }

  /** The socket drained: send what waited and take work again. */
  onDrain(): void {
    this.outbox.onDrain();
    if (this.overCapSince !== 0 && !this.overCap) this.overCapSince = 0;
  }

  onPong(): void {
    this.lastSeen = now();
  }

  /** The socket is gone (closed by either side). */
  onClose(): void {
    this.teardown();
  }

  private reoffer(): void {
    for (const r of this.regs.values()) this.host.dispatcher.offer(r);
  }

  /**
   * Refuses a frame the client sent: counted, and within the session's refusal budget. A fatal
   * one closes the socket (1002, or `closeCode`) after it is written.
   */
  protocolError(code: ErrorCode, message: string, ref: string | number | null, fatal: boolean, closeCode: number = CloseCode.Protocol): void {
    if (this.state === 'closed') return;
    this.host.counters.sockets.protocolErrors++;
    this.send(encodeFrame([Op.ProtocolError, code, message, ref, fatal]));
    if (fatal) {
      this.host.log.warn({ ...this.identity(), code, message }, 'session refused');
      this.flush();
      this.close(closeCode, message.slice(0, 100));
      return;
    }
    // Each refusal costs the hub a frame out: a session that keeps drawing them is cut off.
    const most = this.host.options.maxProtocolErrors;
    if (++this.refusals < most) return;
    const why = `${most} frames refused on this session`;
    this.send(encodeFrame([Op.ProtocolError, 'E_PROTOCOL', why, null, true]));
    this.flush();
    this.close(CloseCode.Policy, why);
  }

  /**
   * The auth file was reloaded and the session's token is still in it, as `p`: registrations
   * it may no longer serve are removed, each with a non-fatal E_FORBIDDEN. Returns how many.
   */
  reauthorize(p: Principal): number {
    this.principal = p;
    let removed = 0;
    for (const [service, r] of [...this.regs]) {
      if (p.serve.allows(service)) continue;
      this.regs.delete(service);
      this.host.dispatcher.unregister(r);
      // The hub's own decision, not a frame the worker sent: no refusal to count against it.
      this.send(encodeFrame([Op.ProtocolError, 'E_FORBIDDEN', `this token may no longer serve ${service}`, service, false]));
      removed++;
    }
    return removed;
  }

  /** Tells the worker the hub is going away; it should finish what it has. */
  sendDrain(): void {
    this.send(encodeFrame([Op.Drain]));
  }

  /** Closes the socket; teardown runs now, not when uWS gets round to the close event. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.closedBy = `hub ${code} ${reason}`;
    const socket = this.socket;
    if (code === CloseCode.GoingAway || code === CloseCode.Normal) {
      this.send(encodeFrame([Op.Goodbye, null, reason]));
      this.flush();
    }
    this.teardown();
    socket?.end(code, reason);
  }

  /** Sends a ping, or closes a session that stayed silent too long. Called by the hub's sweep. */
  keepAlive(at: number): void {
    if (this.state === 'closed' || !this.socket) return;
    this.nextPingAt = at + this.host.options.pingIntervalMs;
    if (at - this.lastSeen > this.host.options.pongTimeoutMs) {
      this.close(CloseCode.Unresponsive, 'no pong');
      return;
    }
    if (this.blocked) this.onDrain();
    this.socket.ping();
  }

  /** The socket is gone: hand back everything this session held. Idempotent. */
  teardown(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.outbox.clear();
    const d = this.host.dispatcher;
    for (const r of this.regs.values()) d.unregister(r);
    this.regs.clear();
    const redelivered = this.inflight.size;
    const cancelled = this.requests.size;
    for (const job of this.inflight.drain()) d.lost(job);
    for (const job of this.requests.drain()) d.abandon(job, 'E_CANCELLED');
    this.socket = null;
    if (this.opened) this.host.log.info({ ...this.identity(), closedBy: this.closedBy, redelivered, cancelled }, 'session closed');
  }
}

const EMPTY = new Uint8Array(0);

const OVER_CAP_MESSAGE = 'this session has too many unsent frames: read them before sending more requests';

const REQUEST_FIELD_MESSAGES: Partial<Record<ErrorCode, string>> = {
  E_BAD_TIMEOUT: 'timeoutMs must be a positive integer, or nil for the default',
  E_BAD_KEY: 'key must be 1-256 bytes of UTF-8 text in modes 1 and 2',
};
