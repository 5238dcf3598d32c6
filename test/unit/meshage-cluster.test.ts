import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import meshage, { GrapevineCluster, init } from '../../server/meshage-node.js';
import { nodeOptions } from '../../server/meshage-options.js';
import { resolveHubOptions } from '../../server/options.js';

describe('GrapevineCluster', () => {
  it('takes a port or host:port, as meshage did (the host defaults to 127.0.0.1)', () => {
    assert.equal(new GrapevineCluster(9742).address, '127.0.0.1:9742');
    assert.equal(new GrapevineCluster('9742').address, '127.0.0.1:9742');
    assert.equal(new GrapevineCluster('10.1.2.3:9742').address, '10.1.2.3:9742');
    assert.equal(new GrapevineCluster('node-1.internal:9742').address, 'node-1.internal:9742');
    assert.equal(new GrapevineCluster('[::1]:9742').address, '[::1]:9742');
  });

  it("ignores empty seeds (as ''.split(',') gives), itself, and repeats", () => {
    assert.deepEqual(new GrapevineCluster(9742, ''.split(',')).seeds, []);
    assert.deepEqual(new GrapevineCluster(9742, ['127.0.0.1:9743', ' ', 9744, null, undefined, '127.0.0.1:9742', '9743']).seeds, [
      '127.0.0.1:9743',
      '127.0.0.1:9744',
    ]);
  });

  it('refuses a missing or malformed address with a message naming it', () => {
    assert.throws(() => new GrapevineCluster(undefined), /cluster port/);
    assert.throws(() => new GrapevineCluster(''), /cluster port/);
    assert.throws(() => new GrapevineCluster('nine'), /the cluster address must be a port or host:port \(a port from 1 to 65535\), got "nine"/);
    assert.throws(() => new GrapevineCluster(70000), /port or host:port/);
    assert.throws(() => new GrapevineCluster(9742, ['a:b']), /a seed must be a port or host:port \(a port from 1 to 65535\), got "a:b"/);
    // Port 0 would be no cluster port at all, advertised as one peers cannot dial.
    assert.throws(() => new GrapevineCluster(0), /the cluster address must be a port or host:port \(a port from 1 to 65535\), got 0/);
    assert.throws(() => new GrapevineCluster('10.0.0.5:0'), /the cluster address/);
    assert.throws(() => new GrapevineCluster(9742, ['127.0.0.1:0']), /a seed/);
  });

  it('is the default export too, as `import meshage from` gives meshage users', () => {
    assert.equal(meshage.init, init);
    assert.equal(meshage.GrapevineCluster, GrapevineCluster);
  });

  it('send before start rejects (the node has no hub yet)', async () => {
    const node = init(new GrapevineCluster(9742));
    await assert.rejects(node.send({ stream: 'echo', partitionKey: '1' }), /not started/);
  });

  it('a partition key is a string or a finite number: anything else is refused, not routed by its String()', async () => {
    const node = init(new GrapevineCluster(9742));
    for (const partitionKey of [{ id: 1 }, [1], true, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(node.send({ stream: 'echo', partitionKey: partitionKey as never }), { code: 'E_BAD_KEY' }, String(partitionKey));
      await assert.rejects(node.broadcast({ stream: 'echo', partitionKey: partitionKey as never }), { code: 'E_BAD_KEY' }, String(partitionKey));
    }
    await assert.rejects(node.send({ stream: 3 } as never), { code: 'E_BAD_MESSAGE' });
  });
});

describe("a node's hub options", () => {
  const cluster = new GrapevineCluster(9742, ['127.0.0.1:9743']);

  it('what init() names is a flag; what a node assumes gives way to ASTROMESH_* variables', () => {
    const o = nodeOptions(cluster, undefined, {});
    assert.deepEqual([o.port, o.host, o.clusterPort, o.advertise, o.peers], [8080, '0.0.0.0', 9742, '127.0.0.1:9742', ['127.0.0.1:9743']]);
    const env = { ASTROMESH_PORT: '4100', ASTROMESH_HOST: '127.0.0.1', ASTROMESH_ADVERTISE: '10.0.0.5:9742', ASTROMESH_CLUSTER_PORT: '9999' };
    const e = nodeOptions(cluster, undefined, env);
    assert.deepEqual([e.port, e.host, e.clusterPort, e.advertise], [4100, '127.0.0.1', 9742, '10.0.0.5:9742']);
    const given = nodeOptions(cluster, '10.0.0.7:4200', env);
    assert.deepEqual([given.port, given.host], [4200, '10.0.0.7']);
    assert.deepEqual([nodeOptions(cluster, 4200, env).host, nodeOptions(cluster, 4200, {}).host], ['127.0.0.1', '0.0.0.0']);
  });

  it('a config file (ASTROMESH_CONFIG) sets what a node assumes, as for any hub', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'node-options-')), 'hub.json');
    writeFileSync(file, JSON.stringify({ port: 4300, host: '127.0.0.1', advertise: 'node-3.internal:9742' }));
    const o = nodeOptions(cluster, undefined, { ASTROMESH_CONFIG: file });
    assert.deepEqual([o.port, o.host, o.advertise, o.clusterPort], [4300, '127.0.0.1', 'node-3.internal:9742', 9742]);
  });

  it('an IPv6 cluster address listens on every interface of both families', () => {
    const o = nodeOptions(new GrapevineCluster('[::1]:9742', ['[::1]:9743']), undefined, {});
    assert.deepEqual([o.host, o.advertise, o.peers], ['::', '[::1]:9742', ['[::1]:9743']]);
  });
});

describe('--cluster-port', () => {
  it('defaults to none and must differ from --port', () => {
    assert.equal(resolveHubOptions().clusterPort, 0);
    assert.throws(() => resolveHubOptions({ port: 4000, clusterPort: 4000 }), /must differ/);
    assert.throws(() => resolveHubOptions({ clusterPort: 70000 }), /at most 65535/);
  });
});

describe('MeshageNode', () => {
  it('takes its SIGTERM and SIGINT listeners off when it stops, so a later node puts its own', async () => {
    const before = [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')];
    for (let i = 0; i < 2; i++) {
      const port = 20_000 + Math.floor(Math.random() * 12_000);
      const node = init(new GrapevineCluster(port), `127.0.0.1:${port + 1}`);
      await node.start();
      if (before[0] === 0) assert.equal(process.listenerCount('SIGTERM'), 1);
      await node.stop();
      assert.deepEqual([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')], before);
    }
  });
});
