import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, parseSocketTable } from '../../server/listen-error.js';

// Excerpts of /proc/net/tcp and /proc/net/tcp6 as Linux prints them (port 3000 is 0BB8).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 33617 1 00000000fa1a08da 100 0 0 10 0
   1: 00000000:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 33618 1 00000000fa1a08db 100 0 0 10 0
   2: 0100007F:0BBA 0100007F:D3A4 06 00000000:00000000 03:00001681 00000000     0        0 0 3 0000000000000000
   3: 0100007F:0BBA 0100007F:D3A6 06 00000000:00000000 03:00001681 00000000     0        0 0 3 0000000000000000
   4: 0100007F:0BBA 0100007F:D3A8 05 00000000:00000000 03:00001681 00000000     0        0 0 3 0000000000000000
   5: 0100007F:D3AA 0100007F:0BBB 06 00000000:00000000 03:00001681 00000000     0        0 0 3 0000000000000000
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0BBC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0BBD 0000000000000000FFFF00000100007F:D3A4 06 00000000:00000000 03:00001681 00000000     0        0 0 3 0000000000000000
`;

describe('why a listen failed (/proc/net/tcp)', () => {
  const rows = [...parseSocketTable(TCP), ...parseSocketTable(TCP6)];

  it('reads address, port and state of every row, IPv4 and IPv6', () => {
    assert.equal(rows.length, 8);
    assert.deepEqual(rows[0], { address: '127.0.0.1', family: 'ipv4', port: 3000, state: 0x0a });
    assert.deepEqual(rows[1], { address: '0.0.0.0', family: 'ipv4', port: 3001, state: 0x0a });
    assert.deepEqual(rows[6], { address: '0:0:0:0:0:0:0:1', family: 'ipv6', port: 3004, state: 0x0a });
    assert.deepEqual(rows[7], { address: '0:0:0:0:0:ffff:7f00:1', family: 'ipv6', port: 3005, state: 0x06 });
  });

  it('tells a listener from sockets that are only closing, and from nothing at all', () => {
    assert.equal(classify(rows, '127.0.0.1', 3000).reason, 'listener');
    assert.deepEqual(classify(rows, '127.0.0.1', 3002), { reason: 'closing', timeWait: 2, closing: 3 });
    assert.equal(classify(rows, '127.0.0.1', 3010).reason, 'unknown');
  });

  it('matches the same address, a wildcard on either side, an IPv4-mapped address, and any address for a host name', () => {
    assert.equal(classify(rows, '127.0.0.1', 3001).reason, 'listener', 'a wildcard listener holds every address');
    assert.equal(classify(rows, '0.0.0.0', 3000).reason, 'listener', 'a wildcard listen conflicts with every address');
    assert.equal(classify(rows, '10.1.2.3', 3000).reason, 'unknown', 'another address is no conflict');
    assert.equal(classify(rows, '::1', 3004).reason, 'listener');
    assert.equal(classify(rows, '::', 3000).reason, 'listener');
    assert.equal(classify(rows, '127.0.0.1', 3005).reason, 'closing');
    assert.equal(classify(rows, 'localhost', 3000).reason, 'listener');
  });

  it('counts only the local end: a connection to the port from elsewhere is not a holder', () => {
    assert.equal(classify(rows, '127.0.0.1', 3003).reason, 'unknown');
  });
});
