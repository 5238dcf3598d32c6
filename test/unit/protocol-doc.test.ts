import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS } from '../../client/errors.js';
import { CloseCode, encodeFrame, Op } from '../../client/protocol.js';
import { EXAMPLE_FRAMES, hexDump } from '../helpers/example-frames.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protocolMd = readFileSync(path.join(root, 'PROTOCOL.md'), 'utf8');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

describe('PROTOCOL.md agrees with the code', () => {
  it('shows every frame type with the exact bytes encodeFrame produces', () => {
    const shown = new Set<number>();
    for (const [name, frame] of Object.entries(EXAMPLE_FRAMES)) {
      const m = new RegExp(`<!-- frame:${name} -->\\n\`\`\`hex\\n([0-9a-f \\n]+?)\\n\`\`\``).exec(protocolMd);
      assert.ok(m, `PROTOCOL.md has no dump for ${name}`);
      assert.equal(m[1], hexDump(encodeFrame(frame)), `dump of ${name}`);
      shown.add(frame[0]);
    }
    for (const op of Object.values(Op)) assert.ok(shown.has(op), `op ${op} has no example`);
  });

  it('lists every error code with its status, and names no code that does not exist', () => {
    for (const [code, { status }] of Object.entries(ERRORS)) {
      assert.match(protocolMd, new RegExp(`\\| ${code} \\| ${status} \\|`), `${code} in PROTOCOL.md`);
      assert.ok(readme.includes(code), `${code} in README.md`);
    }
    for (const doc of [protocolMd, readme]) {
      for (const [code] of doc.matchAll(/\bE_[A-Z_]+\b/g)) assert.ok(code in ERRORS, `${code} is not in the catalogue`);
    }
  });

  it('documents every op code and close code', () => {
    for (const [name, op] of Object.entries(Op)) assert.match(protocolMd, new RegExp(`\\| ${op} \\| ${name} \\|`));
    for (const code of Object.values(CloseCode)) assert.match(protocolMd, new RegExp(`\\| ${code} \\|`));
  });
});
