/**
 * Per-service request accounting for /metrics, kept as plain typed arrays: the hot path adds to
 * them where a job settles, with no prom-client call and no allocation per request, and the
 * collectors read them at scrape time. Label values are bounded here: at most `cap` services
 * have series of their own (the rest share `_other`), and error codes outside the catalogue
 * share one value.
 */
import { ERRORS, type ErrorCode } from '../client/errors.js';
import { now } from './timer-wheel.js';

/** What the tally reads and marks on a job (a Job): it does not import the job's module, which imports this one. */
export interface TalliedJob {
  readonly service: string;
  readonly status: number;
  readonly errorCode: string | null;
  readonly accepted: boolean;
  /** A broadcast's parts: it is timed like an accepted job, though its parts are the ones accepted. */
  readonly parts: unknown[] | null;
  startedAt: number;
  tally: ServiceTally | null;
}

/** A service that keeps its series (a ServiceState). */
export interface TalliedService {
  readonly name: string;
  tally: ServiceTally | null;
}

/** The series services beyond the cap, and names the hub does not know, share. */
export const OTHER_SERVICE = '_other';
/** The `error_code` of a reply that is not an error. */
export const NO_ERROR = 'none';
/** The `error_code` of a worker's own code that the catalogue does not hold. */
export const OTHER_ERROR = 'other';

/** Upper bounds of the latency buckets, in seconds; the last bucket (+Inf) is implicit. */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;
const BUCKETS_MS = Float64Array.from(LATENCY_BUCKETS_S, (s) => s * 1000);
/** The same bounds in milliseconds (the dashboard reads its histograms with them). */
export const LATENCY_BOUNDS_MS: readonly number[] = Array.from(BUCKETS_MS);

/** A service's settled requests and, of those, the ones answered with an error. */
export function requestTotals(t: ServiceTally): { requests: number; errors: number } {
  let requests = 0;
  let errors = 0;
  for (let i = 0; i < t.outcomes.length; i++) {
    requests += t.outcomes[i]!;
    // Index 0 of each status class is the code `none`: a reply that is not an error.
    if (i % ERROR_CODES.length !== 0) errors += t.outcomes[i]!;
  }
  return { requests, errors };
}

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
/** Error codes by index: none first, then the catalogue, then everything else. */
export const ERROR_CODES: readonly string[] = [NO_ERROR, ...Object.keys(ERRORS), OTHER_ERROR];
const CODE_INDEX = new Map(ERROR_CODES.map((c, i) => [c, i]));
const OTHER_CODE = ERROR_CODES.length - 1;

/** The cell of `outcomes` for an answer's status and error code (null: not an error). */
function cell(status: number, errorCode: string | null): number {
  const c = (status / 100) | 0;
  const cls = c >= 1 && c <= 5 ? c - 1 : 5;
  return cls * ERROR_CODES.length + (errorCode === null ? 0 : (CODE_INDEX.get(errorCode) ?? OTHER_CODE));
}

/** One service's counts. Cells of `outcomes` are [status class × error code]. */
export class ServiceTally {
  readonly outcomes = new Float64Array(STATUS_CLASSES.length * ERROR_CODES.length);
  /** Observations per latency bucket, not cumulative; the last cell is +Inf. */
  readonly buckets = new Float64Array(BUCKETS_MS.length + 1);
  latencySumMs = 0;
  latencyCount = 0;
  /** A service of this name exists in the dispatcher: its series may not be given up. */
  bound = false;

  constructor(readonly name: string) {}
}

export class RequestTally {
  /** Services with series of their own, at most `cap`. */
  readonly services = new Map<string, ServiceTally>();
  readonly other = new ServiceTally(OTHER_SERVICE);

  constructor(private readonly cap: number) {}

  /** A caller's job enters the dispatcher: it is counted where it settles, and timed from now. */
  begin(job: TalliedJob, svc: TalliedService | undefined): void {
    job.tally = this.seriesOf(job.service, svc);
    job.startedAt = now();
  }

  /** Counts a settled caller's job (timed when it was accepted, or is a broadcast). */
  settled(job: TalliedJob, t: ServiceTally): void {
    t.outcomes[cell(job.status, job.errorCode)]!++;
    if (!job.accepted && job.parts === null) return;
    const ms = now() - job.startedAt;
    let i = 0;
    while (i < BUCKETS_MS.length && ms > BUCKETS_MS[i]!) i++;
    t.buckets[i]!++;
    t.latencySumMs += ms;
    t.latencyCount++;
  }

  /** Counts a request refused before a job existed for it (no workers, shutting down). */
  refused(name: string, svc: TalliedService | undefined, code: ErrorCode): void {
    this.seriesOf(name, svc).outcomes[cell(ERRORS[code].status, code)]!++;
  }

  /**
   * The series a request for `name` counts in: its service's (given them now if it has none
   * yet), else those the name kept from a service that is gone, else `_other`.
   */
  seriesOf(name: string, svc: TalliedService | undefined): ServiceTally {
    if (svc !== undefined) return svc.tally ?? this.bind(svc);
    return this.services.get(name) ?? this.other;
  }

  /**
   * Gives `svc` its series: the ones its name had (a service that went and came back keeps
   * counting), new ones while under the cap, else those of a service that is gone, else `_other`.
   */
  bind(svc: TalliedService): ServiceTally {
    let t = this.services.get(svc.name);
    if (t === undefined && this.services.size >= this.cap) {
      for (const old of this.services.values()) {
        if (!old.bound) {
          this.services.delete(old.name);
          break;
        }
      }
    }
    if (t === undefined && this.services.size < this.cap) {
      t = new ServiceTally(svc.name);
      this.services.set(svc.name, t);
    }
    if (t === undefined) t = this.other;
    else t.bound = true;
    svc.tally = t;
    return t;
  }

  /** `svc` left the dispatcher: once the cap is reached, its series may make room for another. */
  unbind(svc: TalliedService): void {
    if (svc.tally !== null && svc.tally !== this.other) svc.tally.bound = false;
    svc.tally = null;
  }
}
