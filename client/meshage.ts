/**
 * The meshage-style facade: `register(stream, handler)` with JSON messages. A handler gets
 * `{stream, partitionKey, ...body}` (key order stream, partitionKey, then the body's keys; the
 * URL's values win) and its return value is the JSON reply, as meshage did.
 */
import { MESHAGE_CONTENT_TYPE } from './protocol.js';
import { type HandleOptions, HandlerError, type IncomingJob, Worker, type WorkerOptions } from './worker.js';

export type MeshageHandler = (message: Record<string, unknown>) => unknown;

/** Builds the message a meshage handler sees; throws a 400 HandlerError for a non-object body. */
export function meshageMessage(job: IncomingJob): Record<string, unknown> {
  let body: unknown = {};
  if (job.body.length > 0) {
    try {
      body = JSON.parse(job.body.toString('utf8'));
    } catch {
      throw new HandlerError('message body must be a JSON object', 400, 'E_BAD_MESSAGE');
    }
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HandlerError('message body must be a JSON object', 400, 'E_BAD_MESSAGE');
  const msg: Record<string, unknown> = { stream: job.service };
  if (job.key !== null) msg.partitionKey = job.key;
  for (const k of Object.keys(body)) {
    if (k === 'stream' || (k === 'partitionKey' && job.key !== null)) continue;
    // defineProperty, so a "__proto__" key in the body stays a plain key.
    Object.defineProperty(msg, k, { value: (body as Record<string, unknown>)[k], enumerable: true, writable: true, configurable: true });
  }
  return msg;
}

/** Wraps a meshage handler as a worker handler. */
export function meshageHandler(handler: MeshageHandler) {
  return async (job: IncomingJob) => {
    const result = await handler(meshageMessage(job));
    return { contentType: MESHAGE_CONTENT_TYPE, body: JSON.stringify(result === undefined ? null : result) };
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
