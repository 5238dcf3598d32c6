/**
 * The meshage-style facade: `register(stream, handler)` with JSON messages. A handler gets
 * `{stream, partitionKey, ...body}` (key order stream, partitionKey, then the body's keys; the
 * URL's values win) and its return value is the JSON reply, as meshage did.
 */
import { isThenable } from './handler.js';
import { MESHAGE_CONTENT_TYPE } from './protocol.js';
import { type HandleOptions, type Handler, HandlerError, type IncomingJob, Worker, type WorkerOptions, type WorkerReply } from './worker.js';

/**
 * A meshage handler: the message in, its answer (a value or a promise of one) out. The job is
 * there too, for what meshage had no word for: `job.signal` (cancelled), `job.attempt`.
 */
export type MeshageHandler = (message: Record<string, unknown>, job: IncomingJob) => unknown;

/** Builds the message a meshage handler sees; throws a 400 HandlerError for a non-object body. */
export function meshageMessage(job: IncomingJob): Record<string, unknown> {
  let body: unknown = {};
  if (job.body.length > 0) {
    try {
      body = JSON.parse(job.body.toString('utf8'));
    } catch {
      body = null; // not JSON: refused below, as JSON that is not an object is
    }
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HandlerError('message body must be a JSON object', 400, 'E_BAD_MESSAGE');
  // Spread defines properties (a "__proto__" key in the body stays a plain key) in the body's
  // order after the two the message starts with; the URL's values are put back over the body's.
  if (job.key === null) {
    const msg: Record<string, unknown> = { stream: job.service, ...(body as Record<string, unknown>) };
    msg.stream = job.service;
    return msg;
  }
  const msg: Record<string, unknown> = { stream: job.service, partitionKey: job.key, ...(body as Record<string, unknown>) };
  msg.stream = job.service;
  msg.partitionKey = job.key;
  return msg;
}

/** A handler's value as its JSON answer; no value at all, or one JSON leaves out (a function, a symbol), is null. */
function jsonAnswer(result: unknown): WorkerReply {
  return { contentType: MESHAGE_CONTENT_TYPE, body: JSON.stringify(result) ?? 'null' };
}

/** Wraps a meshage handler as a worker handler; a handler that answers at once is answered without a promise. */
export function meshageHandler(handler: MeshageHandler): Handler {
  return (job: IncomingJob) => {
    const result = handler(meshageMessage(job), job);
    return isThenable(result) ? Promise.resolve(result).then(jsonAnswer) : jsonAnswer(result);
  };
}

/** A meshage-style node: `meshage({url}).register('echo', m => ({echoed: m})).start()`. */
export class Meshage {
  readonly worker: Worker;
  constructor(opts: WorkerOptions) {
    this.worker = new Worker(opts);
  }
  register(stream: string, handler: MeshageHandler, opts?: HandleOptions): this {
    this.worker.handle(stream, meshageHandler(handler), opts);
    return this;
  }
  async start(): Promise<this> {
    await this.worker.start();
    return this;
  }
  drain(): Promise<void> {
    return this.worker.drain();
  }
}

export function meshage(opts: WorkerOptions): Meshage {
  return new Meshage(opts);
}
