/**
 * Service permissions in the manner of NATS subject permissions: service names are tokens
 * separated by dots; in a pattern `*` stands for exactly one token and `>` (last) for one or
 * more. A name is allowed when an allow pattern matches it and no deny pattern does.
 */

/** Names remembered per permission: a bounded cache, since the same few names repeat on every request. */
const CACHE_SIZE = 4096;

export class Permission {
  private readonly allow: string[][];
  private readonly deny: string[][];
  private readonly cache = new Map<string, boolean>();

  constructor(allow: readonly string[], deny: readonly string[] = []) {
    this.allow = allow.map(tokens);
    this.deny = deny.map(tokens);
  }

  /** Nothing is allowed. */
  static readonly NONE = new Permission([]);

  allows(name: string): boolean {
    const known = this.cache.get(name);
    if (known !== undefined) return known;
    const t = name.split('.');
    const ok = this.allow.some((p) => matches(p, t)) && !this.deny.some((p) => matches(p, t));
    if (this.cache.size >= CACHE_SIZE) this.cache.clear();
    this.cache.set(name, ok);
    return ok;
  }
}

function tokens(pattern: string): string[] {
  return pattern.split('.');
}

function matches(pattern: string[], name: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return i === pattern.length - 1 && name.length > i;
    if (i >= name.length) return false;
    if (p !== '*' && p !== name[i]) return false;
  }
  return pattern.length === name.length;
}

/** A pattern's shape: tokens of service-name characters, `*` for one token, `>` only last. */
export function isValidPattern(pattern: string): boolean {
  if (pattern.length === 0 || pattern.length > 128) return false;
  const t = pattern.split('.');
  return t.every((tok, i) => tok === '*' || (tok === '>' && i === t.length - 1) || /^[A-Za-z0-9_-]+$/.test(tok));
}
