/**
 * PROTOCOL.md's meshage message examples, checked against the facade that builds the messages:
 * another language's worker is written from that table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { meshageMessage } from '../../client/meshage.js';
import { HandlerError, type IncomingJob } from '../../client/worker.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protocolMd = readFileSync(path.join(root, 'PROTOCOL.md'), 'utf8');

/** The rows of the table after `<!-- meshage-examples -->`, each cell without its backquotes. */
function examples(): string[][] {
  const lines = protocolMd.split('\n');
  const start = lines.indexOf('<!-- meshage-examples -->');
  assert.ok(start !== -1, 'the meshage examples in PROTOCOL.md');
  const rows: string[][] = [];
  for (const line of lines.slice(start + 3)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim().replace(/^`(.*)`$/, '$1')),
    );
  }
  return rows;
}

describe("PROTOCOL.md's meshage messages", () => {
  const rows = examples();
  it('has examples', () => assert.ok(rows.length >= 5));
  for (const [service, key, body, message] of rows) {
    it(`builds ${message} from ${service}/${key} and ${body}`, () => {
      const job = {
        service,
        key: key === 'nil' ? null : key,
        body: Buffer.from(body === '(empty)' ? '' : body!),
      } as unknown as IncomingJob;
      if (message!.startsWith('Error')) {
        assert.throws(
          () => meshageMessage(job),
          (err: unknown) =>
            err instanceof HandlerError && err.status === 400 && err.code === 'E_BAD_MESSAGE' && err.message === 'message body must be a JSON object',
        );
      } else {
        assert.equal(JSON.stringify(meshageMessage(job)), message);
      }
    });
  }
});
