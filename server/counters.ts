/**
 * Everything the hub counts, in one place. The hot path increments plain fields; `/stats` (and
 * later metrics) read a snapshot, so no module that counts needs to know who reads.
 */

/** Job outcomes and routing events. */
export class JobCounters {
  accepted = 0;
  replied = 0;
  errorReplies = 0;
  failed = 0;
  /**
   * Jobs settled without being accepted: refused after the job existed (a body over the limit,
   * no workers or a full queue at submit, a WebSocket Request with bad fields). Refusals before
   * a body is read create no job and are not counted here.
   */
  rejected = 0;
  expired = 0;
  cancelled = 0;
  redelivered = 0;
  /** Attempts whose lease ran out without a reply (long-poll). */
  leasesExpired = 0;
  lateReplies = 0;
  unknownReplies = 0;
  /** Jobs failed with E_BAD_REPLY: their worker's answer was a malformed frame. */
  badAnswers = 0;
  rejectedNoWorkers = 0;
  rejectedQueueFull = 0;
}

/** WebSocket traffic and connection limits. */
export class SocketCounters {
  protocolErrors = 0;
  framesIn = 0;
  framesOut = 0;
  connectionsRefused = 0;
  /** Sessions closed because they did not read their frames (4003). */
  slowConsumers = 0;
}

/** Auth refusals and reloads. */
export class AuthCounters {
  /** No token, or one the auth file does not hold (401, or a refused Hello). */
  unauthorized = 0;
  /** A known token without the right (403, a refused Register or Request). */
  forbidden = 0;
  reloads = 0;
  reloadErrors = 0;
}

export class Counters {
  readonly jobs = new JobCounters();
  readonly sockets = new SocketCounters();
  readonly auth = new AuthCounters();

  /** A copy that later increments do not change. */
  snapshot(): { jobs: JobCounters; sockets: SocketCounters; auth: AuthCounters } {
    return { jobs: { ...this.jobs }, sockets: { ...this.sockets }, auth: { ...this.auth } };
  }
}
