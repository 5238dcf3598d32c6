/**
 * A seed given as a DNS name (`hubs.default.svc:3000`, a Kubernetes headless Service): resolved
 * at start and every `dnsRefreshMs`, and every address it yields becomes a peer to dial, this
 * hub's own excluded. An address that drops out of the answer is no longer a seed: it is
 * forgotten like a learned peer once it has been unreachable for `peerForgetMs`.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../log.js';

/** A seed `host:port` whose host is a name, not an address; null otherwise. */
export function dnsSeed(seed: string): { host: string; port: string } | null {
  if (/^wss?:\/\//.test(seed)) return null;
  const m = /^([^:[\]]+):(\d{1,5})$/.exec(seed);
  if (!m || isIP(m[1]!) !== 0 || m[1] === 'localhost') return null;
  return { host: m[1]!, port: m[2]! };
}

export class DnsSeed {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly resolver = new Resolver();
  /** The addresses of the last answer, `ip:port`. */
  current: string[] = [];
  resolvedOnce = false;

  constructor(
    readonly name: string,
    private readonly host: string,
    private readonly port: string,
    servers: readonly string[],
    private readonly refreshMs: number,
    private readonly log: Logger,
    /** Called with every answer: the addresses it holds now. */
    private readonly onAnswer: (addresses: string[]) => void,
  ) {
    if (servers.length > 0) this.resolver.setServers([...servers]);
  }

  start(): void {
    void this.resolve();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.resolver.cancel();
  }

  private async resolve(): Promise<void> {
    this.timer = null;
    let ips: string[] = [];
    try {
      const [v4, v6] = await Promise.all([this.resolver.resolve4(this.host).catch(notFound), this.resolver.resolve6(this.host).catch(notFound)]);
      ips = [...v4, ...v6];
    } catch (err) {
      this.log.warn({ seed: this.name, err: (err as Error).message }, 'cannot resolve a seed name; trying again later');
      ips = this.current.map((a) => a.slice(0, a.lastIndexOf(':')).replace(/^\[|\]$/g, ''));
    }
    if (this.stopped) return;
    const addresses = ips.map((ip) => (ip.includes(':') ? `[${ip}]:${this.port}` : `${ip}:${this.port}`)).sort();
    if (addresses.join(',') !== this.current.join(',')) this.log.info({ seed: this.name, addresses }, 'seed name resolved');
    this.current = addresses;
    this.resolvedOnce = true;
    this.onAnswer(addresses);
    this.timer = setTimeout(() => void this.resolve(), this.refreshMs);
  }
}

/** No records of that type is an empty answer; anything else (no server, timeout) is a failure. */
function notFound(err: NodeJS.ErrnoException): string[] {
  if (err.code === 'ENODATA' || err.code === 'ENOTFOUND') return [];
  throw err;
}
