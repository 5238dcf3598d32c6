/** The astromesh Node library: workers, callers and the meshage-style facade. */
export { Worker, json, HandlerError, type IncomingJob, type WorkerReply, type Handler, type HandleOptions, type WorkerOptions } from './worker.js';
export { Client, type ClientOptions } from './client.js';
export { Meshage, meshage, meshageHandler, meshageMessage, type MeshageHandler } from './meshage.js';
export { BusError, ERRORS, type ErrorCode } from './errors.js';
export type { BusResponse, RequestOptions } from './requester.js';
export * as protocol from './protocol.js';
