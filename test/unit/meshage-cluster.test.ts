import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import meshage, { GrapevineCluster, init } from '../../server/meshage-node.js';
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
    assert.throws(() => new GrapevineCluster('nine'), /the cluster address must be a port or host:port, got "nine"/);
    assert.throws(() => new GrapevineCluster(70000), /port or host:port/);
    assert.throws(() => new GrapevineCluster(9742, ['a:b']), /a seed must be a port or host:port, got "a:b"/);
  });

  it('is the default export too, as `import meshage from` gives meshage users', () => {
    assert.equal(meshage.init, init);
    assert.equal(meshage.GrapevineCluster, GrapevineCluster);
  });

  it('send before start rejects (the node has no hub yet)', async () => {
    const node = init(new GrapevineCluster(9742));
    await assert.rejects(node.send({ stream: 'echo', partitionKey: '1' }), /not started/);
  });
});

describe('--cluster-port', () => {
  it('defaults to none and must differ from --port', () => {
    assert.equal(resolveHubOptions().clusterPort, 0);
    assert.throws(() => resolveHubOptions({ port: 4000, clusterPort: 4000 }), /must differ/);
    assert.throws(() => resolveHubOptions({ clusterPort: 70000 }), /at most 65535/);
  });
});
