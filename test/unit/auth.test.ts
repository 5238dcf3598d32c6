/** Service patterns, the auth file's checks, and token lookup. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Auth, hashToken } from '../../server/auth/auth.js';
import { AuthFileError, parseAuth } from '../../server/auth/auth-file.js';
import { isValidPattern, Permission } from '../../server/auth/permissions.js';

describe('service patterns', () => {
  it('match as NATS subjects do: * one part, > one or more at the end, deny wins', () => {
    const p = new Permission(['billing', 'billing.>', 'jobs.*.run', '*'], ['billing.admin', 'billing.admin.>', 'secret']);
    const cases: [string, boolean][] = [
      ['billing', true],
      ['billing.eu', true],
      ['billing.eu.charge', true],
      ['billing.admin', false],
      ['billing.admin.x', false],
      ['jobs.a.run', true],
      ['jobs.a.b.run', false],
      ['jobs.run', false],
      ['anything', true],
      ['secret', false],
      ['two.parts', false],
    ];
    for (const [name, want] of cases) {
      assert.equal(p.allows(name), want, name);
      assert.equal(p.allows(name), want, `${name} (cached)`);
    }
    assert.equal(Permission.NONE.allows('billing'), false);
    assert.equal(new Permission(['>']).allows('a.b.c'), true);
    assert.equal(new Permission(['a.>']).allows('a'), false);
  });

  it('accept only names, * and a last >', () => {
    for (const ok of ['a', 'a.b', '*', '>', 'a.*.c', 'a.>', 'a-b_c.D9']) assert.ok(isValidPattern(ok), ok);
    for (const bad of ['', 'a..b', '.a', 'a.', 'a.>.b', '>.a', 'a*', 'a b', 'a/b', 'x'.repeat(129)]) assert.ok(!isValidPattern(bad), bad);
  });

  it('never allows what a deny pattern matches (property)', () => {
    const part = fc.constantFrom('a', 'b', 'c');
    const name = fc.array(part, { minLength: 1, maxLength: 4 }).map((p) => p.join('.'));
    const pattern = fc.array(fc.constantFrom('a', 'b', '*'), { minLength: 1, maxLength: 3 }).chain((p) => fc.constantFrom(p.join('.'), `${p.join('.')}.>`));
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 3 }), fc.array(pattern, { minLength: 1, maxLength: 3 }), name, (allow, deny, n) => {
        const denied = new Permission(deny).allows(n);
        if (denied) assert.equal(new Permission(allow, deny).allows(n), false);
        assert.equal(new Permission(allow, deny).allows(n), new Permission(allow).allows(n) && !denied);
      }),
      { numRuns: 300 },
    );
  });
});

describe('the auth file', () => {
  const h = hashToken('t');
  it('names each mistake by its place', () => {
    const bad: [unknown, RegExp][] = [
      [[], /must be an object with a "tokens" array/],
      [{ tokens: [], extra: 1 }, /key "extra" is not known/],
      [{ tokens: [{ sha256: h }] }, /tokens\[0\]\.name must be/],
      [{ tokens: [{ name: 'a', sha256: h.toUpperCase() }] }, /tokens\[0\]\.sha256 must be/],
      [
        {
          tokens: [
            { name: 'a', sha256: h },
            { name: 'a', sha256: hashToken('u') },
          ],
        },
        /tokens\[1\]\.name "a" is used twice/,
      ],
      [
        {
          tokens: [
            { name: 'a', sha256: h },
            { name: 'b', sha256: h },
          ],
        },
        /tokens\[1\]\.sha256 is the same token/,
      ],
      [{ tokens: [{ name: 'a', sha256: h, serve: 'billing' }] }, /tokens\[0\]\.serve must be an array of patterns or/],
      [{ tokens: [{ name: 'a', sha256: h, request: { allow: ['x'], block: [] } }] }, /tokens\[0\]\.request\.block is not known/],
      [{ tokens: [{ name: 'a', sha256: h, request: { deny: ['x..y'] } }] }, /tokens\[0\]\.request\.deny\[0\] must be a service pattern/],
      [{ tokens: [{ name: 'a', sha256: h, monitor: 'yes' }] }, /tokens\[0\]\.monitor must be true or false/],
      [{ tokens: [{ name: 'a', sha256: h, maxConnections: -1 }] }, /tokens\[0\]\.maxConnections must be/],
    ];
    for (const [doc, why] of bad)
      assert.throws(
        () => parseAuth(doc),
        (e: Error) => e instanceof AuthFileError && why.test(e.message),
        JSON.stringify(doc),
      );
    const [p] = parseAuth({ tokens: [{ name: 'a', sha256: h, serve: ['x.>'], request: { allow: ['>'], deny: ['admin'] }, monitor: true, maxConnections: 3 }] });
    assert.deepEqual(
      [p!.serve.allows('x.y'), p!.request.allows('admin'), p!.request.allows('other'), p!.monitor, p!.maxConnections],
      [true, false, true, true, 3],
    );
  });

  it('finds a token by its hash, reads Bearer headers strictly, and reloads (a bad file changes nothing)', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-auth-unit-')), 'auth.json');
    writeFileSync(file, JSON.stringify({ tokens: [{ name: 'one', sha256: hashToken('secret-one') }] }));
    const auth = new Auth(file);
    assert.equal(auth.authenticate('secret-one')?.name, 'one');
    assert.equal(auth.authenticate('secret-one')?.name, 'one', 'from the remembered tokens');
    for (const t of [null, undefined, '', 'secret-on', 'secret-one ', 'x'.repeat(5000)]) assert.equal(auth.authenticate(t as string), null);
    assert.equal(auth.bearer('Bearer secret-one')?.name, 'one');
    assert.equal(auth.bearer('bearer   secret-one')?.name, 'one');
    for (const header of ['', 'secret-one', 'Basic secret-one', 'Bearer', 'Bearer secret-one extra', 'Bearersecret-one'])
      assert.equal(auth.bearer(header), null, header);
    assert.equal(auth.counters.unauthorized, 12);
    writeFileSync(file, '{');
    assert.throws(() => auth.reload(), AuthFileError);
    assert.equal(auth.authenticate('secret-one')?.name, 'one');
    writeFileSync(file, JSON.stringify({ tokens: [{ name: 'two', sha256: hashToken('secret-two') }] }));
    auth.reload();
    assert.equal(auth.authenticate('secret-one'), null, 'a revoked token is not remembered');
    assert.equal(auth.authenticate('secret-two')?.name, 'two');
    assert.deepEqual([auth.counters.reloads, auth.counters.reloadErrors], [1, 1]);
    assert.equal(new Auth('').enabled, false);
  });
});
