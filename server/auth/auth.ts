/**
 * Auth: turns a presented token into its Principal, and says what it may do. Off (every
 * check passes) unless the hub has an auth file. A token is never compared with the ones the
 * file holds: its SHA-256 is looked up, a digest an attacker cannot steer byte by byte.
 * Authorization headers already seen valid are remembered whole (a bounded map): a caller sends
 * the same one with every request, and the request path hashes nothing on a hit. A WebSocket
 * session proves its token once, in its Hello.
 */
import { createHash } from 'node:crypto';
import { MAX_TOKEN_LENGTH } from '../../client/protocol.js';
import { AuthCounters } from '../counters.js';
import { type Principal, readAuthFile } from './auth-file.js';

/** Valid Authorization headers remembered, at most. */
const SEEN_HEADERS = 10_000;

export class Auth {
  readonly enabled: boolean;
  private byHash = new Map<string, Principal>();
  private byName = new Map<string, Principal>();
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
    const p = typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH ? this.byHash.get(hashToken(token)) : undefined;
    if (p !== undefined) return p;
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
    if (p) {
      if (this.seenHeaders.size >= SEEN_HEADERS) this.seenHeaders.clear();
      this.seenHeaders.set(header, p);
    }
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
    this.seenHeaders = new Map();
  }
}

/** The hex SHA-256 of a token, as the auth file stores it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
