/**
 * A copy of borrowed bytes (uWebSockets.js lends buffers that are invalid after the callback).
 * Small copies come from Node's shared pool: a slice of one slab, where `ArrayBuffer.slice`
 * would create a backing store of its own for every request.
 */
export function ownCopy(src: ArrayBuffer | Uint8Array): Buffer {
  const bytes = src instanceof Uint8Array ? src : new Uint8Array(src);
  const own = Buffer.allocUnsafe(bytes.byteLength);
  own.set(bytes);
  return own;
}
