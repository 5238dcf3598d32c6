/**
 * PROTOCOL.md is normative, so it must say what the code does: every byte listing is what
 * encodeFrame writes, every op and close code is documented, and the partitioning tables are
 * what the hub's ring computes.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CloseCode, Op } from '../../client/protocol.js';
import { PeerOp } from '../../server/mesh/peer-protocol.js';
import { EXAMPLE_FRAMES, exampleBytes, exampleListing, PEER_EXAMPLE_FRAMES } from '../helpers/example-frames.js';
import { digestExample, murmurRows, partitionExample } from '../helpers/ring-examples.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protocolMd = readFileSync(path.join(root, 'PROTOCOL.md'), 'utf8');

/** The listing PROTOCOL.md shows under `<!-- frame:name -->`, or null. */
function listingInDoc(name: string): string | null {
  const m = new RegExp(`<!-- frame:${name} -->\\n\`\`\`text\\n([\\s\\S]*?)\\n\`\`\``).exec(protocolMd);
  return m ? m[1]! : null;
}

/** The bytes of a listing: the hex pairs at the start of each line. */
function bytesOf(listing: string): string {
  return listing
    .split('\n')
    .map((line) => /^((?:[0-9a-f]{2} ?)+)/.exec(line)?.[1]?.trim() ?? '')
    .filter(Boolean)
    .join(' ');
}

describe('PROTOCOL.md agrees with the code', () => {
  for (const name of [...Object.keys(EXAMPLE_FRAMES), ...Object.keys(PEER_EXAMPLE_FRAMES)]) {
    it(`shows the ${name} example with the exact bytes the encoder writes, annotated`, () => {
      const shown = listingInDoc(name);
      assert.ok(shown !== null, `PROTOCOL.md has no listing for ${name} (run node dist/test/helpers/example-frames.js)`);
      const actual = [...exampleBytes(name)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      assert.equal(bytesOf(shown), actual, `bytes of ${name}`);
      assert.equal(shown, exampleListing(name), `annotations of ${name}`);
    });
  }

  it('has an example listing and a section for every op', () => {
    const shown = new Set(Object.values(EXAMPLE_FRAMES).map((f) => f[0]));
    for (const [name, op] of Object.entries(Op)) {
      assert.ok(shown.has(op), `op ${name} has no example`);
      assert.match(protocolMd, new RegExp(`^### ${op} ${name} \\(`, 'm'), `section for ${name}`);
      assert.match(protocolMd, new RegExp(`^\\| ${op} \\| ${name} \\|`, 'm'), `ops table row for ${name}`);
    }
  });

  it('has an example listing and a section for every peer op', () => {
    const shown = new Set(Object.values(PEER_EXAMPLE_FRAMES).map((f) => f[0]));
    for (const [name, op] of Object.entries(PeerOp)) {
      assert.ok(shown.has(op), `peer op ${name} has no example`);
      assert.match(protocolMd, new RegExp(`^### ${op} ${name} \\(`, 'm'), `section for ${name}`);
      assert.match(protocolMd, new RegExp(`^\\| ${op} \\| ${name} \\|`, 'm'), `peer ops table row for ${name}`);
    }
  });

  it('documents every close code', () => {
    for (const code of Object.values(CloseCode)) assert.match(protocolMd, new RegExp(`^\\| ${code} \\|`, 'm'), `close code ${code}`);
  });

  it('gives the murmur3 reference values and worked partitioning example the ring computes', () => {
    assert.ok(protocolMd.includes(murmurRows()), 'murmur3 table (run node dist/test/helpers/ring-examples.js)');
    assert.ok(protocolMd.includes(partitionExample()), 'worked example (run node dist/test/helpers/ring-examples.js)');
    assert.ok(protocolMd.includes(digestExample()), 'ring digest examples (run node dist/test/helpers/ring-examples.js)');
  });
});
