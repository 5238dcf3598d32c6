/**
 * Legacy HTTP long-poll workers, as the original hub served them: `GET /service/{name}/jobs`
 * waits for the next unkeyed job, `POST /jobs/{id}` answers it. A waiting poll is a consumer
 * with credit 1 that owns no partition keys; a job handed to a poller is leased, and without a
 * reply within min(lease, deadline) it runs again elsewhere. Each attempt has its own
 * unguessable id, and a reply to any attempt of a still-open job is accepted.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { nanoid } from 'nanoid';
import { ownCopy } from '../client/bytes.js';
import { isValidName } from '../client/protocol.js';
import { endWith, type HttpSide, writeError } from './answer.js';
import type { Dispatcher } from './dispatcher.js';
import { decodeParam } from './http-ingress.js';
import { type Consumer, type Job, JobState, type Registration } from './job.js';
import type { HubOptions } from './options.js';
import { now, type Timed, TimerWheel } from './timer-wheel.js';

/** Something the long-poll wheel fires: a poll whose wait ended, or a lease. */
interface PollTimer extends Timed {
  fire(): void;
}

/** Ids of leases are 21-character nanoids; anything else is not worth a lookup. */
const LEASE_ID_RE = /^[A-Za-z0-9_-]{21}$/;

export class LongPoll {
  /** Open attempts by id, until their job settles and the lease has run out. */
  readonly leases = new Map<string, Lease>();
  /** Waiting polls per service. */
  readonly waiting = new Map<string, number>();
  totalWaiting = 0;
  readonly wheel = new TimerWheel<PollTimer>((t) => t.fire());
  readonly servedBy: string;

  constructor(
    readonly o: HubOptions,
    readonly dispatcher: Dispatcher,
    readonly http: HttpSide,
  ) {
    this.servedBy = `${http.hubId}/longpoll`;
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
    if (this.dispatcher.draining) return writeError(res, 'E_SHUTTING_DOWN', this.http);
    const here = this.waiting.get(service) ?? 0;
    if (here >= this.o.maxPollersPerService || this.totalWaiting >= this.o.maxPollers) {
      return writeError(res, 'E_OVERLOADED', this.http, 'too many long-polls are waiting');
    }
    const poller = new Poller(this, res, service, enc === 'base64');
    res.onAborted(() => poller.aborted());
    const r = this.dispatcher.register(poller, service, 1, 1, undefined, true);
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
    const id = req.getParameter(0);
    const contentType = req.getHeader('content-type') || null;
    const lease = LEASE_ID_RE.test(id) ? this.leases.get(id) : undefined;
    if (!lease || lease.job.state === JobState.Settled) {
      return writeError(res, 'E_UNKNOWN_JOB', this.http, 'no open job with that id (unknown, expired or already answered)');
    }
    const length = req.getHeader('content-length');
    if (length !== '' && Number(length) > this.o.maxBodyBytes) return writeError(res, 'E_BODY_TOO_LARGE', this.http);
    let aborted = false;
    let done = false;
    this.http.unanswered++;
    res.onAborted(() => {
      aborted = true;
      if (!done) this.http.unanswered--;
    });
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (done || aborted) return;
      size += chunk.byteLength;
      if (size > this.o.maxBodyBytes) {
        done = true;
        this.http.unanswered--;
        return res.cork(() => writeError(res, 'E_BODY_TOO_LARGE', this.http));
      }
      chunks.push(ownCopy(chunk));
      if (!isLast) return;
      done = true;
      this.http.unanswered--;
      const job = lease.job;
      // An earlier attempt may answer while a later one runs elsewhere: that holder is told
      // to stop and keeps its credit until it acknowledges.
      const holder = job.state === JobState.Assigned && !lease.isCurrent() ? job.reg : null;
      const accepted = this.dispatcher.resolve(job, 200, contentType, null, Buffer.concat(chunks, size), this.servedBy);
      if (accepted) {
        if (holder) holder.consumer.cancel(job, 'E_CANCELLED');
        else this.dispatcher.release(job);
        this.leases.delete(lease.id);
        this.wheel.remove(lease);
      }
      res.cork(() => {
        if (accepted) endWith(res.writeStatus('200 OK'), '', this.http);
        else writeError(res, 'E_UNKNOWN_JOB', this.http, 'the job was answered or expired while the reply arrived');
      });
    });
  }
}

/** One waiting `GET /service/{name}/jobs`. */
class Poller implements Consumer, PollTimer {
  readonly instanceId = 'longpoll';
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
    const lease = new Lease(this.lp, nanoid(), job);
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
      endWith(res.writeStatus('204 No Content'), '', this.lp.http);
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

/** One attempt of a job at a poller. */
class Lease implements PollTimer {
  due = 0;
  tPrev: Timed | null = null;
  tNext: Timed | null = null;
  tSlot = -1;
  private expired = false;
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
    return !this.expired && this.job.state === JobState.Assigned && this.job.reg === this.reg;
  }

  arm(): void {
    this.lp.wheel.add(this, Math.min(now() + this.lp.o.longPollLeaseMs, this.job.deadline));
  }

  fire(): void {
    if (this.job.state === JobState.Settled) {
      this.lp.leases.delete(this.id);
      return;
    }
    if (!this.expired) {
      this.expired = true;
      // No reply in time: run it again elsewhere (or 502 when attempts are used up).
      if (this.job.reg === this.reg) this.lp.dispatcher.lost(this.job);
    }
    // Keep the id answerable while the job is open; forget it after the deadline.
    if ((this.job.state as number) !== JobState.Settled) this.lp.wheel.add(this, this.job.deadline + 1);
    else this.lp.leases.delete(this.id);
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
