/**
 * Legacy HTTP long-poll workers, as the original hub served them: `GET /service/{name}/jobs`
 * waits for the next unkeyed job, `POST /jobs/{id}` answers it. A waiting poll is a consumer
 * with credit 1 that owns no partition keys; a job handed to a poller is leased, and without a
 * reply within min(lease, deadline) it runs again elsewhere. Each attempt has its own
 * unguessable id, and a reply to any attempt of a still-open job is accepted.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { nanoid } from 'nanoid';
import { isValidName } from '../client/protocol.js';
import { endEmpty, endWith, type HttpSide, writeError } from './answer.js';
import type { Auth } from './auth/auth.js';
import { httpAllowed } from './auth/http-auth.js';
import type { Dispatcher } from './dispatcher.js';
import { type Consumer, type Job, JobState, type Membership, type Registration, Takes } from './job.js';
import type { HubOptions } from './options.js';
import { BodyReader, OwedAnswer, refuseAfterBody } from './request-body.js';
import { head, readHead } from './request-head.js';
import { now, type Timed, TimerWheel } from './timer-wheel.js';
import { decodeParam } from './url-params.js';

/** Something the long-poll wheel fires: a poll whose wait ended, or a lease. */
interface PollTimer extends Timed {
  fire(): void;
}

/** Lease ids: a 21-character nanoid, a dot, and the id of the hub that leased the job. */
const LEASE_ID_RE = /^[A-Za-z0-9_-]{21}\.([A-Za-z0-9._-]{1,64})$/;

/** The hub that issued lease `id`, or null for an id no hub issues. */
export function leaseIssuer(id: string): string | null {
  return LEASE_ID_RE.exec(id)?.[1] ?? null;
}

/**
 * What became of a legacy worker's reply: the job took it (true), the job was no longer open
 * (false), or the token that posted it may not serve the job's service.
 */
export type LeaseOutcome = boolean | 'E_FORBIDDEN';

/** Passes a legacy worker's reply on to the hub that leased the job (a peer). */
export interface LeaseReplyForwarder {
  /** Whether a link to `hubId` is open. */
  reaches(hubId: string): boolean;
  /**
   * Sends the reply with the name of the token that posted it (null without auth); `done` gets
   * the outcome, or null when the link closed first. False without a link.
   */
  send(
    hubId: string,
    leaseId: string,
    contentType: string | null,
    body: Uint8Array,
    poster: string | null,
    done: (outcome: LeaseOutcome | null) => void,
  ): boolean;
}

export class LongPoll {
  /** Open attempts by id, until their job settles and the lease has run out. */
  readonly leases = new Map<string, Lease>();
  /** Waiting polls per service. */
  readonly waiting = new Map<string, number>();
  totalWaiting = 0;
  readonly wheel = new TimerWheel<PollTimer>((t) => t.fire());
  readonly servedBy: string;
  readonly hubId: string;
  /** Every poll is capacity for one unkeyed job, owning no keys. */
  private readonly membership: Membership;

  constructor(
    readonly o: HubOptions,
    readonly dispatcher: Dispatcher,
    readonly http: HttpSide,
    private readonly forwardReply: LeaseReplyForwarder,
    private readonly auth: Auth,
  ) {
    this.hubId = http.hubId;
    this.servedBy = `${this.hubId}/longpoll`;
    this.membership = Object.freeze({ instanceId: 'longpoll', hubId: this.hubId, weight: 1, takes: Takes.Capacity });
  }

  routes(app: TemplatedApp): void {
    app.get('/service/:name/jobs', (res, req) => this.poll(res, req));
    app.post('/jobs/:id', (res, req) => this.reply(res, req));
    app.post('/jobs/:id/response', (res, req) => this.reply(res, req));
  }

  /** Leased jobs per service (open attempts that are the job's current one). */
  leasedByService(): Map<string, number> {
    const m = new Map<string, number>();
    for (const l of this.leases.values()) if (l.isCurrent()) m.set(l.job.service, (m.get(l.job.service) ?? 0) + 1);
    return m;
  }

  /** Shutdown: every waiting poll ends with 204 (its worker polls again elsewhere). */
  stop(): void {
    const waiting: Poller[] = [];
    this.wheel.forEach((t) => {
      if (t instanceof Poller) waiting.push(t);
    });
    for (const p of waiting) p.fire();
    this.wheel.stop();
  }

  private poll(res: HttpResponse, req: HttpRequest): void {
    const badHeaders = readHead(req, this.o);
    if (badHeaders) return refuseAfterBody(res, this.http, this.o, badHeaders);
    const service = decodeParam(req.getParameter(0));
    if (!isValidName(service)) return writeError(res, 'E_BAD_NAME', this.http);
    const query = new URLSearchParams(req.getQuery() ?? '');
    let waitMs = this.o.longPollWaitMs;
    const wait = query.get('wait');
    if (wait !== null) {
      if (!/^\d{1,7}(\.\d{1,3})?$/.test(wait)) return writeError(res, 'E_BAD_REQUEST', this.http, '?wait= must be a number of seconds');
      waitMs = Math.min(Math.round(Number(wait) * 1000), this.o.longPollMaxWaitMs);
    }
    const enc = query.get('encoding') ?? this.o.longPollEncoding;
    if (enc !== 'json' && enc !== 'base64') return writeError(res, 'E_BAD_REQUEST', this.http, '?encoding= must be json or base64');
    if (httpAllowed(res, head.authorization, this.auth, this.http, 'serve', service) === false) return;
    if (this.dispatcher.draining) return writeError(res, 'E_SHUTTING_DOWN', this.http);
    const here = this.waiting.get(service) ?? 0;
    if (here >= this.o.maxPollersPerService || this.totalWaiting >= this.o.maxPollers) {
      return writeError(res, 'E_OVERLOADED', this.http, 'too many long-polls are waiting');
    }
    const poller = new Poller(this, res, service, enc === 'base64');
    res.onAborted(() => poller.aborted());
    const r = this.dispatcher.register(poller, service, 1, this.membership);
    if (typeof r === 'string') {
      poller.take();
      return writeError(res, r, this.http, r === 'E_OVERLOADED' ? 'the hub serves too many services' : undefined);
    }
    poller.reg = r;
    if (!poller.canSend()) {
      // A queued job was handed over at once; this registration is done.
      this.dispatcher.unregister(r);
      return;
    }
    this.waiting.set(service, here + 1);
    this.totalWaiting++;
    poller.counted = true;
    this.wheel.add(poller, now() + waitMs);
  }

  private reply(res: HttpResponse, req: HttpRequest): void {
    const badHeaders = readHead(req, this.o);
    if (badHeaders) return refuseAfterBody(res, this.http, this.o, badHeaders);
    // Who posts is checked against the job's service where the job is (maybe another hub).
    const principal = httpAllowed(res, head.authorization, this.auth, this.http, 'token');
    if (principal === false) return;
    const poster = principal?.name ?? null;
    const id = req.getParameter(0);
    const contentType = head.contentType || null;
    // The id names the hub that leased the job: a reply a load balancer sent here may be for another.
    const issuer = leaseIssuer(id);
    const local = issuer === this.hubId;
    if (issuer === null || (local && !this.isOpen(id))) {
      return writeError(res, 'E_UNKNOWN_JOB', this.http, 'no open job with that id (unknown, expired or already answered)');
    }
    if (!local && !this.forwardReply.reaches(issuer)) {
      return writeError(res, 'E_UNKNOWN_JOB', this.http, `the hub that leased that job (${issuer}) is not linked to this one`);
    }
    const length = head.contentLength;
    if (length !== '' && Number(length) > this.o.maxBodyBytes) return refuseAfterBody(res, this.http, this.o, 'E_BODY_TOO_LARGE');
    const owed = new OwedAnswer(this.http);
    const reply = new LeaseReplyBody(res, this.http, this.o, length === '' ? -1 : Number(length), owed, (body) => {
      const answer = (accepted: LeaseOutcome | null): void => {
        if (!owed.answered()) return; // the worker went away
        res.cork(() => {
          if (accepted === true) endWith(res.writeStatus('200 OK'), '', this.http);
          else if (accepted === 'E_FORBIDDEN') writeError(res, 'E_FORBIDDEN', this.http, "this token may not serve that job's service");
          else if (accepted === false) writeError(res, 'E_UNKNOWN_JOB', this.http, 'the job was answered or expired while the reply arrived');
          else
            writeError(res, 'E_UNKNOWN_JOB', this.http, `the hub that leased that job (${issuer}) did not answer within the peer timeout, or its link closed`);
        });
      };
      if (local) answer(this.answerLease(id, contentType, body, poster));
      else if (!this.forwardReply.send(issuer, id, contentType, body, poster, answer)) answer(null);
    });
    res.onAborted(() => {
      owed.answered();
      reply.stop();
    });
  }

  private isOpen(id: string): boolean {
    const lease = this.leases.get(id);
    return lease !== undefined && lease.job.state !== JobState.Settled;
  }

  /**
   * A legacy worker's reply to attempt `id` of a job this hub leased (posted here, or to a peer
   * that passed it on), by the token named `poster`. False when the job is no longer open;
   * with auth on, only a token that may serve the job's service is heard.
   */
  answerLease(id: string, contentType: string | null, body: Uint8Array, poster: string | null): LeaseOutcome {
    const lease = this.leases.get(id);
    if (!lease || lease.job.state === JobState.Settled) return false;
    const job = lease.job;
    if (this.auth.enabled) {
      const p = poster === null ? null : this.auth.named(poster);
      if (!p?.serve.allows(job.service)) return this.auth.forbid() || 'E_FORBIDDEN';
    }
    // An earlier attempt may answer while a later one runs elsewhere: that holder is told
    // to stop and keeps its credit until it acknowledges.
    const holder = job.state === JobState.Assigned && !lease.isCurrent() ? job.reg : null;
    const accepted = this.dispatcher.resolve(job, 200, contentType, null, body, this.servedBy);
    if (accepted) {
      if (holder) holder.consumer.cancel(job, 'E_CANCELLED');
      else this.dispatcher.release(job);
      this.leases.delete(lease.id);
      this.wheel.remove(lease);
    }
    return accepted;
  }
}

/** One waiting `GET /service/{name}/jobs`. */
class Poller implements Consumer, PollTimer {
  reg: Registration | null = null;
  counted = false;
  due = 0;
  tPrev: Timed | null = null;
  tNext: Timed | null = null;
  tSlot = -1;

  /** The waiting poll's response until it is answered or aborted; counted as unanswered meanwhile. */
  private res: HttpResponse | null;

  constructor(
    private readonly lp: LongPoll,
    res: HttpResponse,
    private readonly service: string,
    private readonly base64: boolean,
  ) {
    this.res = res;
    lp.http.unanswered++;
  }

  get leaseMs(): number {
    return this.lp.o.longPollLeaseMs;
  }

  canSend(): boolean {
    return this.res !== null;
  }

  /** Takes the response to answer it (or after an abort); null when it was taken before. */
  take(): HttpResponse | null {
    const res = this.res;
    if (res === null) return null;
    this.res = null;
    this.lp.http.unanswered--;
    return res;
  }

  /** Writes the job as the poll's answer and leases it. */
  deliver(job: Job): void {
    const res = this.take()!;
    const lease = new Lease(this.lp, `${nanoid()}.${this.lp.hubId}`, job);
    this.lp.leases.set(lease.id, lease);
    lease.arm();
    const body = envelope(lease.id, job.body, this.base64);
    res.cork(() => {
      endWith(res.writeStatus('200 OK').writeHeader('content-type', 'application/json'), body, this.lp.http);
    });
    this.finish();
  }

  /** Nothing to tell a poller: its lease just ends. */
  cancel(): void {}

  /** The wait ended without a job: 204. */
  fire(): void {
    const res = this.take();
    if (!res) return;
    this.finish();
    res.cork(() => {
      endEmpty(res.writeStatus('204 No Content'), this.lp.http);
    });
  }

  /** The poller hung up while waiting: it held no job, so nothing is lost. */
  aborted(): void {
    if (!this.take()) return;
    this.finish();
  }

  private finish(): void {
    this.lp.wheel.remove(this);
    if (this.counted) {
      this.counted = false;
      this.lp.totalWaiting--;
      const n = (this.lp.waiting.get(this.service) ?? 1) - 1;
      if (n > 0) this.lp.waiting.set(this.service, n);
      else this.lp.waiting.delete(this.service);
    }
    // The registration ends after one job (or none); a job it holds stays leased. Before
    // `reg` is set (a job handed over inside register), the poll route unregisters it.
    if (this.reg) this.lp.dispatcher.unregister(this.reg);
  }
}

/**
 * One attempt of a job at a poller, answerable by its id while the job is open. Whether the
 * attempt ran out (its lease) is the dispatcher's call; this only forgets the id once the job's
 * deadline has passed.
 */
class Lease implements PollTimer {
  due = 0;
  tPrev: Timed | null = null;
  tNext: Timed | null = null;
  tSlot = -1;
  private readonly reg: Registration | null;

  constructor(
    private readonly lp: LongPoll,
    readonly id: string,
    readonly job: Job,
  ) {
    this.reg = job.reg;
  }

  /** This attempt is the one the job is currently leased on. */
  isCurrent(): boolean {
    return this.job.state === JobState.Assigned && this.job.reg === this.reg;
  }

  arm(): void {
    this.lp.wheel.add(this, this.job.deadline + 1);
  }

  fire(): void {
    this.lp.leases.delete(this.id);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The job envelope `{"id": ..., "originalRequest": ...}`: a JSON body embedded as it is, an
 * empty one as null, other UTF-8 text as a JSON string, and anything else (or every body, in
 * base64 mode) as base64 with `"encoding": "base64"`.
 */
export function envelope(id: string, body: Uint8Array, base64: boolean): string {
  const head = `{"id":${JSON.stringify(id)},"originalRequest":`;
  if (!base64) {
    if (body.length === 0) return `${head}null}`;
    let text: string | null = null;
    try {
      text = utf8.decode(body);
    } catch {
      text = null;
    }
    if (text !== null) {
      try {
        JSON.parse(text);
        return `${head + text}}`;
      } catch {
        return `${head + JSON.stringify(text)}}`;
      }
    }
  }
  return `${head}${JSON.stringify(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'))},"encoding":"base64"}`;
}

/** A legacy worker's reply body: handed to `then` whole, or refused past the limit. */
class LeaseReplyBody extends BodyReader {
  constructor(
    private readonly res: HttpResponse,
    private readonly http: HttpSide,
    o: HubOptions,
    declared: number,
    private readonly owed: OwedAnswer,
    private readonly then: (body: Uint8Array) => void,
  ) {
    super(res, o, declared);
  }

  protected body(body: Uint8Array): void {
    this.then(body);
  }

  protected tooLarge(): void {
    const res = this.res;
    if (this.owed.answered()) res.cork(() => writeError(res, 'E_BODY_TOO_LARGE', this.http, undefined, true));
  }
}
