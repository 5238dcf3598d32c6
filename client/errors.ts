/**
 * The one catalogue of error codes. The same codes travel in HTTP error bodies, in
 * WebSocket protocol frames and in PROTOCOL.md; a test checks that they agree.
 */
export const ERRORS = {
  E_BAD_NAME: { status: 400, message: 'service or stream name must be 1-128 characters of A-Z a-z 0-9 . _ - and not only dots' },
  E_BAD_KEY: { status: 400, message: 'partition key must be 1-256 bytes of URL-decoded text' },
  E_BAD_TIMEOUT: { status: 400, message: 'X-Timeout-Ms must be a positive integer' },
  E_BAD_REQUEST: { status: 400, message: 'malformed request' },
  E_BAD_MESSAGE: { status: 400, message: 'message body must be a JSON object' },
  E_UNAUTHORIZED: { status: 401, message: 'a valid token is required' },
  E_FORBIDDEN: { status: 403, message: 'this token may not do that' },
  E_NOT_FOUND: { status: 404, message: 'no such route' },
  E_UNKNOWN_JOB: { status: 404, message: 'no open job with that id' },
  E_BODY_TOO_LARGE: { status: 413, message: 'request body is larger than the limit' },
  E_HEADERS_TOO_LARGE: { status: 431, message: 'request has more header lines or header bytes than the limit' },
  E_HANDLER: { status: 500, message: 'the worker handler failed' },
  E_INTERNAL: { status: 500, message: 'internal hub error' },
  E_WORKER_GONE: { status: 502, message: 'the worker went away and no attempts are left' },
  E_BAD_REPLY: { status: 502, message: "the worker's answer was not a valid frame" },
  E_NO_WORKERS: { status: 503, message: 'no workers serve this service' },
  E_QUEUE_FULL: { status: 503, message: 'the queue for this service is full' },
  E_OVERLOADED: { status: 503, message: 'the hub is at a limit' },
  E_SHUTTING_DOWN: { status: 503, message: 'the hub is shutting down' },
  E_DEADLINE: { status: 504, message: 'the deadline passed before a reply came' },
  E_CANCELLED: { status: 499, message: 'the caller went away' },
  E_CONNECTION_LOST: { status: 502, message: 'the connection to the hub was lost' },
  E_PROTOCOL: { status: 400, message: 'protocol violation' },
  E_VERSION: { status: 400, message: 'no common protocol version' },
} as const satisfies Record<string, { status: number; message: string }>;

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof ERRORS;

/** True when `code` names an entry of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** An error with a stable code and the HTTP status that goes with it. */
export class BusError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string = ERRORS[code].message,
    status: number = ERRORS[code].status,
    opts?: ErrorOptions,
  ) {
    super(message, opts);
    this.name = 'BusError';
    this.status = status;
  }
}

/** The JSON error body every HTTP error and every error reply carries. */
export function errorBody(code: ErrorCode, message: string = ERRORS[code].message): string {
  return JSON.stringify({ error: { code, message } });
}
