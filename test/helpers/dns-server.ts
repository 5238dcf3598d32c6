/** A tiny DNS server for tests: answers A queries for one name with the addresses it is told. */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';

export class TestDns {
  addresses: string[] = [];
  queries = 0;
  private constructor(
    private readonly socket: Socket,
    readonly name: string,
  ) {
    socket.on('message', (msg, rinfo) => {
      let q: dnsPacket.Packet;
      try {
        q = dnsPacket.decode(msg);
      } catch {
        return;
      }
      const question = q.questions?.[0];
      if (!question) return;
      this.queries++;
      const ours = question.name.toLowerCase() === this.name;
      const answers: dnsPacket.Answer[] =
        ours && question.type === 'A' ? this.addresses.map((data) => ({ type: 'A', name: question.name, ttl: 1, class: 'IN', data })) : [];
      const reply = dnsPacket.encode({
        type: 'response',
        id: q.id ?? 0,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | (ours ? 0 : 3), // rcode 3: no such name
        questions: q.questions,
        answers,
      });
      socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  static async start(name: string): Promise<TestDns> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new TestDns(socket, name);
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  close(): void {
    this.socket.close();
  }
}
