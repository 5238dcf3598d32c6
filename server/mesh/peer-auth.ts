/**
 * Proof of the cluster secret without sending it: each side answers the other's random
 * challenge with an HMAC-SHA256 keyed by the secret, bound to both hub ids and its own role, so
 * a proof cannot be replayed to another hub or reflected back. Proofs are compared in constant
 * time. Several secrets may be accepted at once (rotation); a hub proves itself with the first.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CHALLENGE_BYTES } from './peer-protocol.js';

export type PeerRole = 'dialer' | 'acceptor';

export function newChallenge(): Uint8Array {
  return randomBytes(CHALLENGE_BYTES);
}

/** The proof `role` gives for `challenge` (the other side's), from `self` to `other`. */
export function proofOf(secret: string, role: PeerRole, challenge: Uint8Array, self: string, other: string): Uint8Array {
  return createHmac('sha256', secret).update(`astromesh-peer-v1\0${role}\0`).update(challenge).update(`${self}\0${other}`).digest();
}

/**
 * Which of `secrets` `proof` shows knowledge of, or false. With no secrets configured, only an
 * absent proof is right (and null is returned: nothing to prove back with).
 */
export function verifyProof(
  secrets: readonly string[],
  proof: Uint8Array | null,
  role: PeerRole,
  challenge: Uint8Array,
  from: string,
  to: string,
): string | null | false {
  if (secrets.length === 0) return proof === null ? null : false;
  if (proof === null) return false;
  let matched: string | false = false;
  // Every secret is tried, so the time taken does not tell which one matched.
  for (const s of secrets) {
    const expected = proofOf(s, role, challenge, from, to);
    if (expected.length === proof.length && timingSafeEqual(expected, proof) && matched === false) matched = s;
  }
  return matched;
}
