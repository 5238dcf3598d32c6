/**
 * README's options table is what users read: every hub option is in it, no row names an option
 * that is gone, and a default written as a plain number, a size or a word is the one the code has.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HUB_DEFAULTS, OPTION_SPECS } from '../../server/options.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

/** Table rows whose first cell names flags: [flags, default cell]. */
function rows(): [string[], string][] {
  const out: [string[], string][] = [];
  for (const line of readme.split('\n')) {
    if (!line.startsWith('| `--')) continue;
    const cells = line.split('|').map((c) => c.trim());
    const flags = [...cells[1]!.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!);
    out.push([flags, cells[2] ?? '']);
  }
  return out;
}

/** "16 MiB" → 16777216, "64 KiB" → 65536, "5000" → 5000, "10,000" → 10000; else null. */
function number(cell: string): number | null {
  const m = /^([\d,]+)(?: (KiB|MiB))?$/.exec(cell.trim());
  if (!m) return null;
  const n = Number(m[1]!.replace(/,/g, ''));
  return m[2] === 'MiB' ? n * 1024 * 1024 : m[2] === 'KiB' ? n * 1024 : n;
}

describe("README's options table", () => {
  const table = rows();
  const documented = new Set(table.flatMap(([flags]) => flags));
  const hubFlags = new Set(OPTION_SPECS.map((s) => s.flag));

  it('has a row for every hub option', () => {
    const missing = OPTION_SPECS.filter((s) => !documented.has(s.flag)).map((s) => s.flag);
    assert.deepEqual(missing, []);
  });

  it('names no option the hub does not have', () => {
    // --config is read before the options, and --token belongs to echo and request.
    const stale = [...documented].filter((f) => !hubFlags.has(f) && f !== '--config' && f !== '--token');
    assert.deepEqual(stale, []);
  });

  it('gives the defaults the code has, where a row writes one as a number, a size or a word', () => {
    let checked = 0;
    for (const [flags, cell] of table) {
      const parts = cell.split(' / ');
      if (parts.length !== flags.length) continue;
      for (const [i, flag] of flags.entries()) {
        const spec = OPTION_SPECS.find((s) => s.flag === flag);
        if (!spec) continue;
        const want = HUB_DEFAULTS[spec.key];
        const n = number(parts[i]!);
        if (typeof want === 'number' && n !== null) {
          assert.equal(n, want, `${flag}: README says ${parts[i]}`);
          checked++;
        } else if (typeof want === 'string' && want !== '' && /^[a-z0-9.]+$/.test(parts[i]!.trim())) {
          assert.equal(parts[i]!.trim(), want, `${flag}: README says ${parts[i]}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 25, `only ${checked} defaults could be checked`);
  });
});
