import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { type HubProc, type Proc, spawnHub, startHub, startHubOn, stopAll } from '../helpers/processes.js';

/** `astromesh hub` exits with this when it cannot bind its port (README, CLI). */
const EXIT_CANNOT_LISTEN = 3;

/** GET on a new connection each time: the kernel picks the listener per connection. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timed out')));
  });
}

/**
 * A hub on a fixed port: uWS sets SO_REUSEPORT only when it binds a given port (never for port
 * 0), which is where two hubs could share one. The port comes from a hub that just had it and
 * left without connections; another process taking it in between costs a retry.
 */
async function startHubOnFixedPort(flags: Record<string, string>): Promise<HubProc> {
  for (let attempt = 1; ; attempt++) {
    const probe = await startHub();
    probe.kill('SIGTERM');
    await probe.exited;
    try {
      return await startHubOn(probe.port, flags);
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
}

/** Waits for a hub that should fail to listen; returns its exit code and stderr. */
async function refused(hub: Proc): Promise<{ code: number | null; stderr: string[] }> {
  const timer = setTimeout(() => hub.kill(), 10_000);
  const { code } = await hub.exited;
  await hub.closed;
  clearTimeout(timer);
  return { code, stderr: hub.stderr };
}

describe('a hub never shares its port', { timeout: 30_000 }, () => {
  after(stopAll);

  it('a second hub on a held port exits 3 saying a listener holds it, and the first hub answers every request', async () => {
    const first = await startHubOnFixedPort({ 'hub-id': 'first' });
    const second = spawnHub(first.port, { 'hub-id': 'second' });
    const { code, stderr } = await refused(second);
    assert.equal(code, EXIT_CANNOT_LISTEN, stderr.join('\n'));
    assert.equal(stderr.length, 1, `one line, no stack trace: ${stderr.join('\n')}`);
    assert.match(stderr[0]!, new RegExp(`^astromesh: cannot listen on 127\\.0\\.0\\.1:${first.port}: .*held by a listening socket \\(another process\\)`));
    assert.ok(!second.lines.some((l) => (l as { msg?: string }).msg === 'listening'), 'the second hub never logged "listening"');
    const answers = await Promise.all(Array.from({ length: 50 }, () => getFresh(`${first.url}/healthz`)));
    for (const a of answers) assert.deepEqual({ status: a.status, hubId: JSON.parse(a.body).hubId }, { status: 200, hubId: 'first' });
  });

  it('a hub restarted on the fixed port of one that just closed its connections listens', async () => {
    // The fixed-port listen sets SO_REUSEADDR, which the closed connections inherit: their
    // TIME_WAIT does not hold the port, so a supervisor can restart a hub at once.
    const gone = await startHubOnFixedPort({ 'hub-id': 'gone' });
    const sockets = await Promise.all(Array.from({ length: 4 }, () => keepAlive(gone.port)));
    gone.kill('SIGTERM');
    assert.equal((await gone.exited).code, 0);
    await Promise.all(sockets.map((s) => s.closed));
    const again = await startHubOn(gone.port, { 'hub-id': 'gone' });
    assert.equal(JSON.parse((await getFresh(`${again.url}/healthz`)).body).hubId, 'gone');
  });

  it('a hub restarted on the port of a --port 0 hub that just closed its connections exits 3 naming TIME_WAIT', async () => {
    // A port-0 listen sets no SO_REUSEADDR, so the TIME_WAIT sockets hold the port.
    const gone = await startHub({ 'hub-id': 'gone' });
    // Keep-alive connections left open by the client: the hub side closes them when it exits,
    // so the TIME_WAIT sockets stay on the hub's port.
    const sockets = await Promise.all(Array.from({ length: 4 }, () => keepAlive(gone.port)));
    gone.kill('SIGTERM');
    assert.equal((await gone.exited).code, 0);
    await Promise.all(sockets.map((s) => s.closed));
    const again = spawnHub(gone.port, { 'hub-id': 'gone' });
    const { code, stderr } = await refused(again);
    assert.equal(code, EXIT_CANNOT_LISTEN, stderr.join('\n'));
    assert.equal(stderr.length, 1, `one line, no stack trace: ${stderr.join('\n')}`);
    assert.match(stderr[0]!, /held only by \d+ TIME_WAIT.* about 60 s/);
  });
});

/** One answered request on a raw keep-alive connection that stays open until the hub closes it. */
async function keepAlive(port: number): Promise<{ closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
  await new Promise((resolve) => socket.once('data', resolve));
  return { closed };
}
