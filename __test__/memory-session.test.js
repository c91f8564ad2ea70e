'use strict';
// MemorySession at the handle level: the ThinkJS 3/4 contract, errors and bounds.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { MemorySession, MemoryStore, isValidId, generateId, regenerate } = require('..');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let seq = 0;
// Each test gets its own store (a distinct maxEntries) and its own ids.
const options = (extra = {}) => ({ maxEntries: 5000 + ++seq, cookie: generateId(), maxAge: '1h', ...extra });
const fakeCtx = () => {
  const sent = [];
  return { sent, cookie: (name, value, opts) => sent.push({ name, value, opts }) };
};

describe('MemorySession', () => {
  it('gets, sets, removes with null, and clears', async () => {
    const opts = options();
    const s = new MemorySession(opts);
    assert.deepEqual(await s.get(), {});
    assert.equal(await s.get('user'), undefined);
    await s.set('user', { name: 'ann', roles: ['a'] });
    await s.set('n', 1);
    assert.deepEqual(await s.get('user'), { name: 'ann', roles: ['a'] });
    await s.set('n', null);
    const next = new MemorySession(opts);
    assert.deepEqual(await next.get(), { user: { name: 'ann', roles: ['a'] } }, 'a new handle sees the write at once');
    await next.delete();
    assert.deepEqual(await next.get(), {});
    assert.deepEqual(await new MemorySession(opts).get(), {});
  });

  it('writes made before the first read are seen by it', async () => {
    const opts = options();
    await new MemorySession(opts).set('a', 1);
    const s = new MemorySession(opts);
    await s.set('b', 2);
    assert.deepEqual(await s.get(), { a: 1, b: 2 });
  });

  it('a fresh session sees its own writes in the same request', async () => {
    const opts = options();
    const fresh = new MemorySession({ ...opts, fresh: true });
    await fresh.set('user', 'ann');
    assert.equal(await fresh.get('user'), 'ann');
    const forged = new MemorySession({ ...opts, cookie: '../forged' }, fakeCtx(), { name: 'sid' });
    await forged.set('user', 'bob');
    assert.deepEqual(await forged.get(), { user: 'bob' });
  });

  it('strict mode: an id from a cookie the store does not know is replaced before any write', async () => {
    const opts = options();
    const ctx = fakeCtx();
    const s = new MemorySession(opts, ctx, { name: 'sid' });
    await s.set('user', 'mallory');
    assert.notEqual(s.id, opts.cookie);
    assert.deepEqual(
      ctx.sent.map((c) => [c.name, c.value, c.opts.overwrite]),
      [['sid', s.id, true]],
    );
    assert.deepEqual(await new MemorySession(opts).get(), {}, 'nothing under the chosen id');
    assert.deepEqual(await new MemorySession({ ...opts, cookie: s.id }).get(), { user: 'mallory' });
    // a known id is kept, and so is any id with strict: false or without a context (by hand)
    const known = new MemorySession({ ...opts, cookie: s.id }, fakeCtx(), { name: 'sid' });
    await known.set('n', 1);
    assert.equal(known.id, s.id);
    const lax = new MemorySession({ ...opts, strict: false }, fakeCtx(), { name: 'sid' });
    await lax.set('user', 'adopted');
    assert.equal(lax.id, opts.cookie);
  });

  it('strict mode: a cookie longer than maxCookieLength is not looked up', async () => {
    const long = 'a'.repeat(60);
    await new MemorySession(options({ cookie: long })).set('k', 1);
    const ctx = fakeCtx();
    const s = new MemorySession(options({ cookie: long, maxCookieLength: 40 }), ctx, { name: 'sid' });
    assert.notEqual(s.id, long);
    assert.deepEqual(await s.get(), {});
    assert.equal(ctx.sent.length, 1);
  });

  it('think-session-issued ids are replaced by ids of 190 random bits', () => {
    const ctx = fakeCtx();
    const s = new MemorySession(options({ cookie: '3b241101-e2bb-4255-8caf-4136c566a962', fresh: true }), ctx, {});
    assert.match(s.id, /^[A-Za-z0-9_]{32}$/);
    assert.deepEqual(
      ctx.sent.map((c) => [c.name, c.value]),
      [['thinkjs', s.id]],
    );
  });

  it('regenerate moves the data to a new id and leaves the old one empty', async () => {
    const opts = options();
    await new MemorySession(opts).set('user', 'ann');
    const ctx = fakeCtx();
    const s = new MemorySession(opts, ctx, { name: 'sid' });
    s.set('pending', 1); // not awaited: regenerate lets it land first
    const id = await s.regenerate();
    assert.equal(s.id, id);
    assert.notEqual(id, opts.cookie);
    assert.deepEqual(ctx.sent.at(-1).value, id);
    assert.deepEqual(await new MemorySession(opts).get(), {});
    assert.deepEqual(await new MemorySession({ ...opts, cookie: id }).get(), { user: 'ann', pending: 1 });
    await s.set('after', true);
    assert.deepEqual(await new MemorySession({ ...opts, cookie: id }).get(), { user: 'ann', pending: 1, after: true });
    // regenerate(ctx) finds the handle of the request
    const again = await regenerate(ctx);
    assert.equal(s.id, again);
    assert.deepEqual(await new MemorySession({ ...opts, cookie: id }).get(), {});
    await assert.rejects(regenerate({}), { code: 'ERR_SESSION_OPTIONS' });
  });

  it('a value JSON writes as null removes the key here as in the store', async () => {
    const opts = options();
    const s = new MemorySession(opts);
    await s.set('n', 1);
    await s.get();
    await s.set('n', NaN);
    assert.deepEqual(await s.get(), {});
    assert.deepEqual(await new MemorySession(opts).get(), {});
  });

  it('accepts long gcIntervals and rejects bad ones before making a store', () => {
    assert.doesNotThrow(() => new MemorySession({ ...options(), gcInterval: '30d' }));
    const bad = { ...options(), gcInterval: 'often' };
    assert.throws(() => new MemorySession(bad), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => new MemorySession(bad), { code: 'ERR_SESSION_OPTIONS' }, 'still rejected: nothing was cached');
  });

  it('handles with equal options share one store, others do not', async () => {
    const opts = options();
    await new MemorySession(opts).set('k', 'v');
    assert.equal(await new MemorySession({ ...opts }).get('k'), 'v');
    assert.equal(await new MemorySession({ ...opts, maxEntries: opts.maxEntries + 100000 }).get('k'), undefined);
  });

  it('keeps numbers and text exactly', async () => {
    const opts = options();
    const value = { max: 2 ** 53 - 1, f: 0.1, e: 1e21, neg: -0, s: 'ü 😀 "q" \\', nested: { a: [1, { b: null }] } };
    await new MemorySession(opts).set('v', value);
    const back = await new MemorySession(opts).get('v');
    assert.deepEqual(back, JSON.parse(JSON.stringify(value)));
    assert.equal(back.max, 9007199254740991);
  });

  it('rejects values JSON cannot hold and changes nothing', async () => {
    const opts = options();
    const s = new MemorySession(opts);
    await s.set('keep', 1);
    const cycle = {};
    cycle.self = cycle;
    for (const bad of [10n, cycle, () => 1, Symbol('x'), undefined]) {
      await assert.rejects(s.set('bad', bad), (err) => {
        assert.ok(err instanceof Error);
        assert.equal(err.code, 'ERR_SESSION_VALUE');
        assert.match(err.message, /"bad"/);
        return true;
      });
    }
    await assert.rejects(s.set(42, 'x'), { code: 'ERR_SESSION_VALUE' });
    assert.deepEqual(await new MemorySession(opts).get(), { keep: 1 });
  });

  it('rejects data over maxBytes and keeps the old record', async () => {
    const opts = options({ maxBytes: 100 });
    const s = new MemorySession(opts);
    await s.set('small', 'x');
    await assert.rejects(s.set('big', 'y'.repeat(200)), (err) => {
      assert.equal(err.code, 'ERR_SESSION_TOO_LARGE');
      assert.match(err.message, /over the limit of 100 bytes/);
      return true;
    });
    assert.deepEqual(await new MemorySession(opts).get(), { small: 'x' });
    // each value fits, the two together do not: the store's exact check
    await s.set('a', 'a'.repeat(50));
    await assert.rejects(s.set('b', 'b'.repeat(50)), /over the limit of 100 bytes/);
    assert.deepEqual(Object.keys(await new MemorySession(opts).get()), ['small', 'a']);
  });

  it('rejects bad options with ERR_SESSION_OPTIONS', () => {
    for (const bad of [{ maxEntries: 0 }, { maxEntries: -5 }, { maxBytes: 1 }, { maxAge: 'soon' }, { maxAge: -1 }]) {
      assert.throws(
        () => new MemorySession({ ...options(), ...bad }),
        { code: 'ERR_SESSION_OPTIONS' },
        JSON.stringify(bad),
      );
    }
  });

  it('replaces an invalid id with a fresh one and sends its cookie', async () => {
    const written = new MemorySession({ ...options(), cookie: '../../etc/passwd' }, fakeCtx(), { name: 'sid' });
    await written.set('k', 'v');
    assert.ok(isValidId(written.id));
    for (const forged of ['../../etc/passwd', '', 'x'.repeat(129), 'ключ-сессии', undefined, 12345678]) {
      const ctx = fakeCtx();
      const s = new MemorySession({ ...options(), cookie: forged }, ctx, { name: 'sid' });
      assert.deepEqual(await s.get(), {});
      assert.ok(isValidId(s.id));
      assert.notEqual(s.id, forged);
      assert.equal(ctx.sent.length, 1);
      assert.equal(ctx.sent[0].name, 'sid');
      assert.equal(ctx.sent[0].value, s.id);
      assert.equal(ctx.sent[0].opts.maxAge, 3600000);
      await s.set('k', 1);
      assert.equal(ctx.sent.length, 1, 'one fresh id per request');
      assert.equal(await new MemorySession({ ...options(), cookie: s.id }).get('k'), undefined, 'other store');
    }
  });

  it('never returns an expired session, whatever gc has done', async () => {
    const opts = options({ maxAge: 60 });
    await new MemorySession(opts).set('k', 'v');
    assert.equal(await new MemorySession(opts).get('k'), 'v');
    await sleep(90);
    assert.deepEqual(await new MemorySession(opts).get(), {});
  });

  it('refreshes record and cookie once less than autoUpdateRate of maxAge is left', async () => {
    const opts = options({ maxAge: 400 });
    await new MemorySession(opts).set('k', 'v');
    const early = fakeCtx();
    await new MemorySession(opts, early, { name: 'sid', autoUpdateRate: 0.5 }).get();
    assert.equal(early.sent.length, 0, 'plenty of time left: no refresh');
    await sleep(250);
    const late = fakeCtx();
    assert.equal(await new MemorySession(opts, late, { name: 'sid', autoUpdateRate: 0.5 }).get('k'), 'v');
    assert.equal(late.sent.length, 1, 'the cookie is sent again');
    await sleep(250); // past the original expiry, within the refreshed one
    assert.equal(await new MemorySession(opts).get('k'), 'v');
    const off = fakeCtx();
    await sleep(250);
    await new MemorySession({ ...opts, autoUpdate: false }, off, { name: 'sid' }).get();
    assert.equal(off.sent.length, 0, 'autoUpdate: false never refreshes');
  });

  it('update() persists and moves the expiry', async () => {
    const opts = options({ maxAge: 150 });
    await new MemorySession(opts).set('k', 'v');
    await sleep(100);
    const ctx = fakeCtx();
    await new MemorySession(opts, ctx, { name: 'sid' }).update();
    assert.ok(ctx.sent.length >= 1);
    assert.ok(
      ctx.sent.every((c) => c.name === 'sid' && c.value === opts.cookie),
      'the same id, never a new one',
    );
    await sleep(100);
    assert.equal(await new MemorySession(opts).get('k'), 'v');
  });

  it('evicts the least recently used past maxEntries', async () => {
    const base = { maxEntries: 3, maxAge: '1h' };
    const ids = Array.from({ length: 4 }, () => generateId());
    for (const id of ids.slice(0, 3)) await new MemorySession({ ...base, cookie: id }).set('k', id);
    await new MemorySession({ ...base, cookie: ids[0] }).get(); // now the most recent
    await new MemorySession({ ...base, cookie: ids[3] }).set('k', 'new');
    assert.equal(await new MemorySession({ ...base, cookie: ids[1] }).get('k'), undefined);
    assert.equal(await new MemorySession({ ...base, cookie: ids[0] }).get('k'), ids[0]);
  });

  it('gc removes expired sessions off the JS thread and counts them', async () => {
    const store = new MemoryStore({ maxEntries: 1000 });
    for (let i = 0; i < 10; i++) store.apply(generateId(), 'a', '1', 20);
    store.apply(generateId(), 'a', '1', 60000);
    await sleep(40);
    const pending = store.gc();
    assert.ok(pending instanceof Promise);
    assert.equal(await pending, 10);
    assert.equal(store.size, 1);
    const opts = options();
    assert.equal(typeof (await new MemorySession(opts).gc()), 'number');
  });
});

describe('MemoryStore', () => {
  it('refuses invalid ids and malformed values with coded errors', () => {
    const store = new MemoryStore();
    assert.throws(() => store.load('../x', 0.5), { code: 'ERR_SESSION_INVALID_ID' });
    assert.throws(() => store.apply('a/b/c/d/e', 'a', '1', 1000), { code: 'ERR_SESSION_INVALID_ID' });
    // characters that narrow to id bytes (U+0141 to 'A', U+FF3F to '_') are not ids
    assert.throws(() => store.load('abcdefgh\u0141', 0.5), { code: 'ERR_SESSION_INVALID_ID' });
    assert.throws(() => store.load('abcdefgh\uff3f', 0.5), { code: 'ERR_SESSION_INVALID_ID' });
    assert.throws(() => store.load('a'.repeat(129), 0.5), { code: 'ERR_SESSION_INVALID_ID', message: /129/ });
    assert.throws(() => store.load(42, 0.5), /session id must be a string/);
    const id = generateId();
    for (const bad of ['{"a":', '', 'undefined', '1 2']) {
      assert.throws(() => store.apply(id, 'a', bad, 1000), { code: 'ERR_SESSION_VALUE' }, bad);
    }
    assert.throws(() => store.apply(id, 'a', null, 1000), { code: 'ERR_SESSION_VALUE' }, 'a name needs a value');
    assert.throws(() => store.apply(id, '\ud800', '1', 1000), { code: 'ERR_SESSION_VALUE' }, 'lone surrogate');
    assert.throws(() => store.apply(id, 'a', '1', 0), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => store.apply(id, 'a', '1', NaN), { code: 'ERR_SESSION_OPTIONS' });
    assert.equal(store.load(id, 0.5), null, 'nothing was written');
    store.apply(id, 'k\u00e9y \u{1f600}', '"v\u00e9 \u{1f600}"', 1000);
    store.apply(id, 'gone', '1', 1000);
    store.apply(id, 'gone', 'null', 1000);
    assert.deepEqual(JSON.parse(store.load(id, 0).data), { 'k\u00e9y \u{1f600}': 'v\u00e9 \u{1f600}' });
    store.apply(id, null, null, 1000);
    assert.ok(store.load(id, 0), 'a null name only refreshes the expiry');
  });

  it('hands back the data, refreshing it past the autoUpdate rate', async () => {
    const store = new MemoryStore();
    const id = generateId();
    store.apply(id, 'a', '[1,2]', 200);
    assert.deepEqual(store.load(id, 0.5), { data: '{"a":[1,2]}', refreshed: false });
    await sleep(120);
    assert.deepEqual(store.load(id, 0), { data: '{"a":[1,2]}', refreshed: false }, 'rate 0 never refreshes');
    assert.deepEqual(store.load(id, 0.5), { data: '{"a":[1,2]}', refreshed: true });
    await sleep(120); // past the first expiry, within the refreshed one
    assert.deepEqual(store.load(id, 0), { data: '{"a":[1,2]}', refreshed: false });
    store.destroy(id);
    assert.equal(store.load(id, 0.5), null);
  });
});

describe('MemoryStore by key', () => {
  it('reads one key without the rest, telling a missing key from a missing session', () => {
    const store = new MemoryStore();
    const id = generateId();
    assert.equal(store.loadKey(id, 'a', 0.5), null, 'no session');
    store.apply(id, 'a', '{"n":1}', 60000);
    store.apply(id, 'big', JSON.stringify('x'.repeat(100000)), 60000);
    assert.deepEqual(store.loadKey(id, 'a', 0.5), { value: '{"n":1}', refreshed: false });
    assert.deepEqual(store.loadKey(id, 'b', 0.5), { value: null, refreshed: false }, 'a live session without the key');
    assert.throws(() => store.loadKey(id, '\ud800', 0.5), { code: 'ERR_SESSION_VALUE' });
  });

  it('a handle keeps the value it read for the rest of the request', async () => {
    const opts = { cookie: generateId(), maxAge: 60000 };
    await new MemorySession(opts).set('cart', { items: [1] });
    const handle = new MemorySession(opts);
    const cart = await handle.get('cart');
    cart.items.push(2); // changed in place, as apps do before writing it back
    assert.equal(await handle.get('cart'), cart, 'the same object');
    await handle.set('cart', cart);
    assert.deepEqual(await new MemorySession(opts).get(), { cart: { items: [1, 2] } });
    assert.equal(await handle.get('missing'), undefined);
  });
});
