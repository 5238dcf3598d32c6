/**
 * A broadcast waits for one part per worker instance and answers its caller once, with a JSON
 * array of every part's reply (in ring order) and headers counting what went wrong.
 */
import { errorBody, isErrorCode } from '../client/errors.js';
import { type Headers, isJsonContentType } from '../client/protocol.js';
import type { Job, JobWaiter } from './job.js';

/** Response headers of a broadcast answer. */
export const BROADCAST_HEADERS = {
  asked: 'x-broadcast-asked',
  failed: 'x-broadcast-failed',
  timedOut: 'x-broadcast-timed-out',
} as const;

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');
const NULL = Buffer.from('null');

/** Where a gathered answer goes: the dispatcher, which settles the parent like any job. */
export interface GatherSink {
  resolveGathered(parent: Job, headers: Headers, body: Uint8Array): void;
}

export class BroadcastGather implements JobWaiter {
  private remaining: number;

  constructor(
    private readonly sink: GatherSink,
    private readonly parent: Job,
    private readonly asked: number,
  ) {
    this.remaining = asked;
  }

  settled(): void {
    if (--this.remaining > 0) return;
    this.answer();
  }

  /** Answers the parent with every part's outcome: when the last part settles, or at once when there are none. */
  answer(): void {
    const parent = this.parent;
    const parts = parent.parts ?? [];
    const chunks: Uint8Array[] = [OPEN];
    let failed = 0;
    let timedOut = 0;
    parts.forEach((part, i) => {
      if (i > 0) chunks.push(COMMA);
      if (part.errorCode !== null) {
        if (part.errorCode === 'E_DEADLINE') timedOut++;
        else failed++;
        const code = part.errorCode;
        chunks.push(
          Buffer.from(isErrorCode(code) ? errorBody(code, part.errorMessage ?? undefined) : JSON.stringify({ error: { code, message: part.errorMessage } })),
        );
      } else {
        chunks.push(partJson(part));
      }
      part.replyBody = null;
    });
    chunks.push(CLOSE);
    this.sink.resolveGathered(
      parent,
      {
        [BROADCAST_HEADERS.asked]: String(this.asked),
        [BROADCAST_HEADERS.failed]: String(failed),
        [BROADCAST_HEADERS.timedOut]: String(timedOut),
      },
      Buffer.concat(chunks),
    );
  }
}

/**
 * A reply as one JSON value: JSON bodies as they are, empty as null, other text as a string. A
 * body that says it is JSON goes into the array only if it is one JSON value: otherwise a worker
 * could break the array, or add elements that look like other workers' replies.
 */
function partJson(part: Job): Uint8Array {
  const body = part.replyBody;
  if (!body || body.length === 0) return NULL;
  const text = Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8');
  if (part.replyContentType === null || isJsonContentType(part.replyContentType)) {
    try {
      JSON.parse(text);
      return body;
    } catch {
      // Not JSON after all: it is text like any other.
    }
  }
  return Buffer.from(JSON.stringify(text));
}
