/**
 * The auth file: who may connect, and what each token may serve, request and see. Tokens are
 * stored as the hex SHA-256 of the token: they are long random strings, so a fast hash keeps
 * them safe at rest and costs the request path nothing worth measuring. Every hub of a mesh
 * reads the same file. README "Security" documents the format.
 *
 *   { "tokens": [ { "name": "billing", "sha256": "<64 hex>",
 *                   "serve": ["billing", "billing.>"],
 *                   "request": { "allow": [">"], "deny": ["admin.>"] },
 *                   "monitor": false, "maxConnections": 100 } ] }
 */
import { readFileSync } from 'node:fs';
import { isValidPattern, Permission } from './permissions.js';

/** One token's identity and rights. */
export interface Principal {
  /** Names the token in logs, /stats and between hubs (never the token itself). */
  readonly name: string;
  /** Hex SHA-256 of the token. */
  readonly sha256: string;
  readonly serve: Permission;
  readonly request: Permission;
  /** May read /stats, /metrics and the dashboard. */
  readonly monitor: boolean;
  /** WebSocket sessions this token may hold on one hub at once; 0 for no limit of its own. */
  readonly maxConnections: number;
}

export class AuthFileError extends Error {}

const TOKEN_KEYS = new Set(['name', 'sha256', 'serve', 'request', 'monitor', 'maxConnections']);
const NAME_RE = /^[A-Za-z0-9._@:-]{1,128}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

/** Reads and checks the auth file; every mistake is named by its place in the file. */
export function readAuthFile(path: string): Principal[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AuthFileError(`cannot read the auth file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AuthFileError(`the auth file ${path} is not JSON: ${(err as Error).message}`);
  }
  return parseAuth(doc, path);
}

export function parseAuth(doc: unknown, where = 'auth'): Principal[] {
  const fail = (at: string, why: string): never => {
    throw new AuthFileError(`${where}: ${at} ${why}`);
  };
  if (!isObject(doc) || !Array.isArray(doc.tokens)) return fail('the file', 'must be an object with a "tokens" array');
  for (const k of Object.keys(doc)) if (k !== 'tokens') fail(`key "${k}"`, 'is not known (the file has "tokens" only)');
  const names = new Set<string>();
  const hashes = new Set<string>();
  return doc.tokens.map((t: unknown, i: number): Principal => {
    const at = `tokens[${i}]`;
    if (!isObject(t)) return fail(at, 'must be an object');
    for (const k of Object.keys(t)) if (!TOKEN_KEYS.has(k)) fail(`${at}.${k}`, `is not known (keys: ${[...TOKEN_KEYS].join(', ')})`);
    if (typeof t.name !== 'string' || !NAME_RE.test(t.name)) fail(`${at}.name`, 'must be 1-128 of A-Z a-z 0-9 . _ @ : -');
    if (names.has(t.name as string)) fail(`${at}.name`, `"${t.name}" is used twice`);
    names.add(t.name as string);
    if (typeof t.sha256 !== 'string' || !SHA256_RE.test(t.sha256))
      fail(`${at}.sha256`, "must be the 64 lower-case hex digits of the token's SHA-256 (astromesh hash-token)");
    if (hashes.has(t.sha256 as string)) fail(`${at}.sha256`, 'is the same token as an earlier entry');
    hashes.add(t.sha256 as string);
    if (t.monitor !== undefined && typeof t.monitor !== 'boolean') fail(`${at}.monitor`, 'must be true or false');
    const max = t.maxConnections ?? 0;
    if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 0) fail(`${at}.maxConnections`, 'must be a non-negative integer');
    return {
      name: t.name as string,
      sha256: t.sha256 as string,
      serve: permission(t.serve, `${at}.serve`, fail),
      request: permission(t.request, `${at}.request`, fail),
      monitor: t.monitor === true,
      maxConnections: max as number,
    };
  });
}

/** `["a", "b.>"]` (allow only) or `{"allow": [...], "deny": [...]}`; absent allows nothing. */
function permission(v: unknown, at: string, fail: (at: string, why: string) => never): Permission {
  if (v === undefined) return Permission.NONE;
  const list = (x: unknown, where: string): string[] => {
    if (!Array.isArray(x)) return fail(where, 'must be an array of service patterns');
    for (const [i, p] of x.entries()) {
      if (typeof p !== 'string' || !isValidPattern(p))
        fail(`${where}[${i}]`, 'must be a service pattern: names split by dots, * for one part, > (last) for the rest');
    }
    return x as string[];
  };
  if (Array.isArray(v)) return new Permission(list(v, at));
  if (!isObject(v)) return fail(at, 'must be an array of patterns or {"allow": [...], "deny": [...]}');
  for (const k of Object.keys(v)) if (k !== 'allow' && k !== 'deny') fail(`${at}.${k}`, 'is not known (allow, deny)');
  return new Permission(list(v.allow ?? [], `${at}.allow`), list(v.deny ?? [], `${at}.deny`));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
