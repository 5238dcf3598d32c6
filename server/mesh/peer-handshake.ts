/**
 * The peer handshake (PROTOCOL.md, "Handshake"), on its own: who speaks first, what each side
 * checks (protocol version, ring algorithm, proof of the cluster secret, dialling itself) and
 * what it answers. A link feeds it frames until it says the link is open or refused.
 */
import { CloseCode } from '../../client/protocol.js';
import { newChallenge, proofOf, verifyProof } from './peer-auth.js';
import {
  type ChallengeFrame,
  type ChallengeInfo,
  PEER_PROTOCOL_VERSION,
  PEER_PROTOCOL_VERSIONS,
  type PeerFrame,
  PeerOp,
  RING_ALGORITHM,
} from './peer-protocol.js';

/** This hub, as the handshake presents it. */
export interface HandshakeIdentity {
  readonly hubId: string;
  readonly bootNonce: string;
  readonly secrets: readonly string[];
  advertise(): string;
}

/** The other hub, once it has said who it is. */
export interface PeerIdentity {
  hubId: string;
  bootNonce: string;
  advertise: string;
}

/** What to do with a handshake frame: answer, open the link (maybe answering first), or refuse. */
export type HandshakeStep =
  | { kind: 'answer'; frame: PeerFrame; peer: PeerIdentity }
  | { kind: 'open'; frame: PeerFrame | null; peer: PeerIdentity }
  | { kind: 'refuse'; code: number; why: string; hubId?: string; unauthorized?: boolean };

export class PeerHandshake {
  private readonly challenge = newChallenge();
  private peer: PeerIdentity | null = null;

  constructor(
    private readonly self: HandshakeIdentity,
    /** This hub dialled (it answers the Challenge); else it accepted (it sends it). */
    private readonly dialed: boolean,
    /** For log lines: where the other hub is. */
    private readonly address: string,
  ) {}

  /** The acceptor speaks first: nothing about this hub but its id goes out before the dialer proves itself. */
  opening(): ChallengeFrame | null {
    return this.dialed ? null : [PeerOp.Challenge, this.info()];
  }

  step(f: PeerFrame): HandshakeStep {
    const me = this.self;
    if (this.dialed && f[0] === PeerOp.Challenge && this.peer === null) {
      const c = f[1];
      const refused = this.incompatible(c);
      if (refused) return refused;
      this.peer = { hubId: c.hubId, bootNonce: c.bootNonce, advertise: '' };
      const proof = me.secrets.length ? proofOf(me.secrets[0]!, 'dialer', c.challenge, me.hubId, c.hubId) : null;
      return { kind: 'answer', frame: [PeerOp.PeerHello, { ...this.info(), advertise: me.advertise(), proof }], peer: this.peer };
    }
    if (!this.dialed && f[0] === PeerOp.PeerHello && this.peer === null) {
      const hello = f[1];
      const refused = this.incompatible(hello);
      if (refused) return refused;
      const shared = verifyProof(me.secrets, hello.proof, 'dialer', this.challenge, hello.hubId, me.hubId);
      if (shared === false) {
        return {
          kind: 'refuse',
          code: CloseCode.PeerUnauthorized,
          why: `hub ${hello.hubId} at ${this.address} did not prove the cluster secret`,
          unauthorized: true,
        };
      }
      this.peer = { hubId: hello.hubId, bootNonce: hello.bootNonce, advertise: hello.advertise };
      // Answer with the secret the dialer used: during a rotation the two may list them in another order.
      const proof = shared === null ? null : proofOf(shared, 'acceptor', hello.challenge, me.hubId, hello.hubId);
      return { kind: 'open', frame: [PeerOp.PeerWelcome, { advertise: me.advertise(), proof }], peer: this.peer };
    }
    if (this.dialed && f[0] === PeerOp.PeerWelcome && this.peer !== null) {
      const w = f[1];
      if (verifyProof(me.secrets, w.proof, 'acceptor', this.challenge, this.peer.hubId, me.hubId) === false) {
        return {
          kind: 'refuse',
          code: CloseCode.PeerUnauthorized,
          why: `hub ${this.peer.hubId} at ${this.address} did not prove the cluster secret`,
          unauthorized: true,
        };
      }
      this.peer.advertise = w.advertise;
      return { kind: 'open', frame: null, peer: this.peer };
    }
    return { kind: 'refuse', code: CloseCode.Protocol, why: `unexpected peer op ${f[0]} during the handshake` };
  }

  private incompatible(c: ChallengeInfo): HandshakeStep | null {
    if (!c.versions.includes(PEER_PROTOCOL_VERSION)) {
      return {
        kind: 'refuse',
        code: CloseCode.PeerRefused,
        why: `hub ${c.hubId} speaks peer protocol versions ${c.versions.join(',')}, this hub ${PEER_PROTOCOL_VERSION}`,
      };
    }
    if (c.ring !== RING_ALGORITHM) {
      return { kind: 'refuse', code: CloseCode.PeerRefused, why: `hub ${c.hubId} ranks keys with ${c.ring}, this hub with ${RING_ALGORITHM}` };
    }
    if (c.hubId === this.self.hubId && c.bootNonce === this.self.bootNonce) {
      return { kind: 'refuse', code: CloseCode.PeerRefused, why: 'dialled itself', hubId: c.hubId };
    }
    return null;
  }

  private info(): ChallengeInfo {
    return { hubId: this.self.hubId, bootNonce: this.self.bootNonce, versions: [...PEER_PROTOCOL_VERSIONS], ring: RING_ALGORITHM, challenge: this.challenge };
  }
}
