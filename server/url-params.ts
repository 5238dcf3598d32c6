/** URL path parameters as the HTTP routes read them. */

/** Decodes a percent-encoded path parameter; a malformed escape yields '' (an invalid name). */
export function decodeParam(raw: string): string {
  if (raw.indexOf('%') === -1) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return '';
  }
}
