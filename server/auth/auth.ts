/**
 * Auth: turns a presented token into its Principal, and says what it may do. Off (every
 * check passes) unless the hub has an auth file. A token is looked up by its SHA-256 and the
 * digests are compared in constant time; tokens already seen valid are remembered by their
 * text (a bounded map), so the request path hashes nothing on a hit.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AuthCounters } from '../counters.js';
import { type Principal, readAuthFile } from './auth-file.js';

/** Valid tokens remembered by their text, at most. */
const SEEN_TOKENS = 10_000;
/** Longer tokens are refused unhashed. */
export const MAX_TOKEN_LENGTH = 4096;

export class Auth {
  readonly enabled: boolean;
  private byHash = new Map<string, Principal>();
  private byName = new Map<string, Principal>();
  private seen = new Map<string, Principal>();
  private seenHeaders = new Map<string, Principal>();

  constructor(
    private readonly file: string,
    readonly counters: AuthCounters = new AuthCounters(),
  ) {
    this.enabled = file !== '';
    if (this.enabled) this.install(readAuthFile(file));
  }

  /** Tokens in the file. */
  get size(): number {
    return this.byHash.size;
  }

  /** The principal `token` proves, or null (counted as unauthorized). */
  authenticate(token: string | null | undefined): Principal | null {
    if (typeof token === 'string') {
      const known = this.seen.get(token);
      if (known !== undefined) return known;
      if (token.length > 0 && token.length <= MAX_TOKEN_LENGTH) {
        const digest = createHash('sha256').update(token, 'utf8').digest();
        // The map is keyed by a digest an attacker cannot steer; the comparison that decides is constant-time.
        const p = this.byHash.get(digest.toString('hex'));
        if (p && timingSafeEqual(Buffer.from(p.sha256, 'hex'), digest)) {
          remember(this.seen, token, p);
          return p;
        }
      }
    }
    this.counters.unauthorized++;
    return null;
  }

  /**
   * The principal an `Authorization: Bearer <token>` header proves, or null. Valid headers are
   * remembered whole: a caller sends the same one with every request.
   */
  bearer(header: string): Principal | null {
    const known = this.seenHeaders.get(header);
    if (known !== undefined) return known;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    const p = this.authenticate(m ? m[1] : null);
    if (p) remember(this.seenHeaders, header, p);
    return p;
  }

  /** The principal named `name` (a peer hub passes on who posted a long-poll reply). */
  named(name: string): Principal | null {
    return this.byName.get(name) ?? null;
  }

  /** The principal that holds the token with digest `sha256` now (after a reload, maybe none). */
  current(sha256: string): Principal | null {
    return this.byHash.get(sha256) ?? null;
  }

  /** Counts a refusal of a known token. */
  forbid(): false {
    this.counters.forbidden++;
    return false;
  }

  /** Reads the file again; on error keeps what it had and throws. */
  reload(): void {
    if (!this.enabled) return;
    try {
      this.install(readAuthFile(this.file));
      this.counters.reloads++;
    } catch (err) {
      this.counters.reloadErrors++;
      throw err;
    }
  }

  private install(principals: Principal[]): void {
    this.byHash = new Map(principals.map((p) => [p.sha256, p]));
    this.byName = new Map(principals.map((p) => [p.name, p]));
    this.seen = new Map();
    this.seenHeaders = new Map();
  }
}

/** Remembers a valid token (or header) within SEEN_TOKENS, starting afresh when full. */
function remember(m: Map<string, Principal>, key: string, p: Principal): void {
  if (m.size >= SEEN_TOKENS) m.clear();
  m.set(key, p);
}

/** The hex SHA-256 of a token, as the auth file stores it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
