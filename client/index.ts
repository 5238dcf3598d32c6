/** The astromesh Node library: workers, callers and the meshage-style facade. */

export { Client, type ClientOptions } from './client.js';
export { CLIENT_DEFAULTS } from './defaults.js';
export { BusError, ERRORS, type ErrorCode } from './errors.js';
export { Meshage, type MeshageHandler, meshage, meshageHandler, meshageMessage } from './meshage.js';
export * as protocol from './protocol.js';
export type { BusResponse, RequestOptions } from './requester.js';
export { type HandleOptions, type Handler, HandlerError, type IncomingJob, json, Worker, type WorkerOptions, type WorkerReply } from './worker.js';
