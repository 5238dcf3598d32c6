/**
 * One catalogue of error codes, documented twice: PROTOCOL.md's error table and README.md's
 * table of statuses. Both must list every code with its status and name no code that does
 * not exist.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERRORS } from '../../client/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protocolMd = readFileSync(path.join(root, 'PROTOCOL.md'), 'utf8');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const codes = Object.keys(ERRORS) as (keyof typeof ERRORS)[];

/** The rows of the markdown table whose header line is `header`. */
function tableRows(doc: string, header: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.indexOf(header);
  assert.ok(start !== -1, `table "${header}" not found`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

describe('the error catalogue and its documentation agree', () => {
  it('PROTOCOL.md lists every code once, with its status', () => {
    const rows = tableRows(protocolMd, '| code | status | meaning |');
    for (const code of codes) {
      const row = rows.filter((r) => r[0] === code);
      assert.equal(row.length, 1, `${code} in PROTOCOL.md's error table`);
      assert.equal(row[0]![1], String(ERRORS[code].status), `status of ${code} in PROTOCOL.md`);
    }
    assert.equal(rows.length, codes.length, 'PROTOCOL.md lists no code twice and none that does not exist');
  });

  it("README.md's error table lists every code under its status", () => {
    const rows = tableRows(readme, '| status | codes |');
    for (const code of codes) {
      const row = rows.find((r) => new RegExp(`\`${code}\``).test(r[1] ?? ''));
      assert.ok(row, `${code} in README.md's error table`);
      const statuses = (row[0] ?? '').split('/').map((s) => s.trim());
      assert.ok(statuses.includes(String(ERRORS[code].status)), `${code} is in the row for ${row[0]}, not ${ERRORS[code].status}`);
    }
  });

  it('names no E_ code that is not in the catalogue', () => {
    for (const [file, doc] of [
      ['PROTOCOL.md', protocolMd],
      ['README.md', readme],
    ] as const) {
      for (const [code] of doc.matchAll(/\bE_[A-Z0-9_]+\b/g)) assert.ok(code in ERRORS, `${file} names ${code}, which is not in client/errors.ts`);
    }
  });
});
