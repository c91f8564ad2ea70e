'use strict';
// The scenario suite, written once and run for every store: it boots a real ThinkJS app
// configured with the handle under test and speaks HTTP to it with a cookie jar.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { EXTENDS, prepareApp, prepareThinkjs2App, bootApp } = require('./app');
const { Client } = require('./http');

const ID = /^[A-Za-z0-9_-]{8,128}$/;
// A signed cookie (ThinkJS 2 with `secret`) is `id.signature`, URI-encoded.
const SIGNED = /^[A-Za-z0-9_-]{8,128}\.[A-Za-z0-9+/]{43}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {object} store
 * @param {string} store.name      short name, used for the app folder
 * @param {string} [store.session] JS source of the `exports.session` adapter config (ThinkJS 3/4)
 * @param {string[]} [store.thinkjs] ThinkJS versions to run on; '2.x' ones boot the ThinkJS 2
 *   app of support/app.js, configured by `store.env`
 * @param {string[]} [store.extends] what provides `session()` on ThinkJS 3/4 (support/app.js
 *   EXTENDS): each version runs under each; default think-session and the drop-in
 * @param {object | (() => object)} [store.env] environment of the app process
 * @param {boolean} [store.signed] cookies are signed (`id.signature`)
 * @param {boolean} [store.readsSlide] a request that reads the session gives it a new lifetime
 * @param {number} [store.workers] worker processes of the app
 * @param {(dir: string) => void} [store.afterForged] store-specific check that forged cookies touched nothing (dir: the app)
 * @param {(id: string, secret?: string) => string} [store.sign] signs an id as the app does
 *   (`secret` defaults to the app's first); given for signed stores
 */
function runScenarios(store) {
  for (const thinkjs of store.thinkjs || ['4.0.0', '3.2.15']) {
    for (const extend of thinkjs.startsWith('2.') ? [undefined] : store.extends || EXTENDS) {
      scenarios(store, thinkjs, extend);
    }
  }
}

function scenarios(store, thinkjs, extend) {
  const workers = `${store.workers || 1} worker${store.workers > 1 ? 's' : ''}`;
  describe(`${store.name} on thinkjs@${thinkjs}${extend ? ` with ${extend}` : ''} (${workers})`, () => {
    let app;
    let dir;
    const client = () => new Client(app.url);
    const cookieShape = store.signed ? SIGNED : ID;
    const cookieOf = (c) => decodeURIComponent(c.session);

    before(async () => {
      dir = thinkjs.startsWith('2.')
        ? prepareThinkjs2App({ name: store.app || store.name, thinkjs })
        : prepareApp({ name: store.name, thinkjs, session: store.session, extend });
      const env = typeof store.env === 'function' ? store.env() : store.env;
      app = await bootApp(dir, { workers: store.workers || 1, env });
    });
    after(() => app && app.stop());

    it('counts visits across requests', async () => {
      const c = client();
      for (let n = 1; n <= 5; n++) {
        const res = await c.request('/index/counter');
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { n });
      }
      assert.match(cookieOf(c), cookieShape);
    });

    it('a login that redirects is seen by the redirected request (200 of 200)', async () => {
      let seen = 0;
      for (let i = 0; i < 200; i++) {
        const c = client();
        const login = await c.request(`/index/login?name=user${i}`);
        assert.equal(login.status, 302);
        const next = await c.request(login.headers.location);
        if (next.status === 200 && next.body.user === `user${i}`) seen++;
      }
      assert.equal(seen, 200);
    });

    it('50 concurrent requests setting different keys all survive', async () => {
      const c = client();
      await c.request('/index/counter');
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => c.request(`/index/set?key=k${i}&value=v${i}`)),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        Array(50).fill(200),
      );
      const all = await c.request('/index/all');
      const missing = Array.from({ length: 50 }, (_, i) => `k${i}`).filter((k) => all.body[k] !== `v${k.slice(1)}`);
      assert.deepEqual(missing, [], `keys lost: ${missing.join(',')}`);
      assert.equal(all.body.n, 1);
    });

    it('clear empties the session', async () => {
      const c = client();
      await c.request('/index/set?key=user&value=ann');
      assert.deepEqual((await c.request('/index/all')).body, { user: 'ann' });
      assert.equal((await c.request('/index/clear')).status, 200);
      assert.deepEqual((await c.request('/index/all')).body, {});
      assert.deepEqual((await c.request('/index/counter')).body, { n: 1 });
    });

    it('a session past its maxAge is gone', async () => {
      const c = client();
      const short = await c.request('/index/short?ms=400');
      // On ThinkJS 2 a read gives the session a new lifetime: the app reads it back itself.
      if (store.readsSlide) assert.equal(short.body.stored, 'lived');
      else assert.equal((await c.request('/index/all')).body.short, 'lived');
      await sleep(600);
      assert.deepEqual((await c.request('/index/all')).body, {});
    });

    it('forged cookies get a fresh session and touch nothing else', async () => {
      const victim = client();
      await victim.request('/index/set?key=owner&value=victim');
      const forged = [
        '../../x',
        '../session-evil/x',
        'x'.repeat(10000),
        Buffer.from('сессия-ключ-0123456789').toString('latin1'),
        '',
        victim.session.replace(/.$/, '/'),
        '%2e%2e%2f%2e%2e%2fx',
        "abcdefgh' OR '1'='1",
        '*',
      ];
      for (const value of forged) {
        const c = client();
        const res = await c.request('/index/counter', { rawCookie: `thinkjs=${value}` });
        assert.equal(res.status, 200, `cookie ${JSON.stringify(value.slice(0, 40))}`);
        assert.deepEqual(res.body, { n: 1 });
        assert.match(cookieOf(c), cookieShape);
        assert.notEqual(c.session, value);
        assert.deepEqual((await c.request('/index/counter')).body, { n: 2 }, 'the fresh session works');
      }
      assert.deepEqual((await victim.request('/index/all')).body, { owner: 'victim' });
      if (store.afterForged) store.afterForged(dir);
    });

    // Strict mode: an id the store does not know (here one of a valid shape, correctly
    // signed where the app signs) is replaced, and nothing is ever stored under it.
    it('a client-chosen id is never adopted', async () => {
      const chosen = `chosen_by_the_client_${process.pid}_${Date.now()}`;
      const cookie = store.sign ? encodeURIComponent(store.sign(chosen)) : chosen;
      for (const path of ['/index/counter', '/index/set?key=user&value=mallory', '/index/all']) {
        const c = client();
        const res = await c.request(path, { rawCookie: `thinkjs=${cookie}` });
        assert.equal(res.status, 200, path);
        assert.ok(c.session && c.session !== cookie, `${path}: a fresh cookie replaces the chosen one`);
        assert.ok(!cookieOf(c).startsWith(chosen), path);
        assert.match(cookieOf(c), cookieShape);
      }
      const again = client();
      assert.deepEqual((await again.request('/index/all', { rawCookie: `thinkjs=${cookie}` })).body, {});
      assert.ok(!cookieOf(again).startsWith(chosen), 'still nothing stored under the chosen id');
    });

    it('regeneration moves the data to a new id and leaves the old one dead', async () => {
      const c = client();
      await c.request('/index/set?key=user&value=ann');
      const old = c.session;
      const res = await c.request('/index/regenerate');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.before, { user: 'ann' });
      assert.notEqual(c.session, old, 'a new cookie');
      assert.match(cookieOf(c), cookieShape);
      assert.ok(cookieOf(c).startsWith(res.body.id), 'the cookie carries the id regenerate() returned');
      assert.deepEqual((await c.request('/index/all')).body, { user: 'ann', regenerated: true });
      const attacker = client();
      const stale = await attacker.request('/index/all', { rawCookie: `thinkjs=${old}` });
      assert.deepEqual(stale.body, {}, 'the old id reads nothing');
      assert.notEqual(attacker.session, old, 'and is not kept');
      assert.deepEqual((await c.request('/index/counter')).body, { n: 1 }, 'the new id keeps working');
      const fresh = client();
      const first = await fresh.request('/index/regenerate');
      assert.deepEqual(first.body.before, {});
      assert.deepEqual((await fresh.request('/index/all')).body, { regenerated: true });
      // a first visit that writes, then regenerates in the same request: the write moves too
      const visitor = client();
      await visitor.request('/index/regenerate?key=cart&value=1');
      assert.deepEqual((await visitor.request('/index/all')).body, { cart: '1', regenerated: true });
    });

    if (thinkjs.startsWith('2.')) {
      it('a session cleared while a request read it stays cleared (the refresh after the response makes none)', async () => {
        const c = client();
        await c.request('/index/set?key=user&value=ann');
        const cleared = c.session;
        assert.equal((await c.request('/index/clearedelsewhere')).status, 200);
        await sleep(100); // ThinkJS 2 flushes after the response
        assert.deepEqual((await c.request('/index/all')).body, {});
        assert.notEqual(c.session, cleared, 'the cleared id is not taken up again');
      });
    }

    if (store.sign) {
      it('signatures: rotation keeps listed secrets, anything else gets a fresh session', async () => {
        const c = client();
        await c.request('/index/set?key=user&value=ann');
        const id = cookieOf(c).split('.')[0];
        const withSignature = async (cookie) => {
          const other = client();
          const res = await other.request('/index/all', { rawCookie: `thinkjs=${encodeURIComponent(cookie)}` });
          return { body: res.body, cookie: other.session && decodeURIComponent(other.session) };
        };
        // an older secret still in the list: the session, and a cookie signed with the first
        assert.deepEqual(await withSignature(store.sign(id, 'old-secret')), {
          body: { user: 'ann' },
          cookie: store.sign(id),
        });
        assert.deepEqual(await withSignature(store.sign(id)), { body: { user: 'ann' }, cookie: undefined });
        const signed = store.sign(id);
        const forgeries = [
          store.sign(id, 'retired-secret'),
          signed.slice(0, -1),
          signed.slice(0, -10),
          `${id}.`,
          id,
          signed.slice(0, -1) + (signed.endsWith('A') ? 'B' : 'A'),
          `${id}x.${signed.split('.')[1]}`,
        ];
        for (const forged of forgeries) {
          const { body, cookie } = await withSignature(forged);
          assert.deepEqual(body, {}, forged);
          assert.ok(cookie && !cookie.startsWith(`${id}.`), `${forged}: a fresh session`);
        }
      });
    }
  });
}

/** Forged cookies must leave nothing in a store but entries named by session ids. */
function assertOnlySessionIds(names, where = 'the store') {
  assert.ok(names.length > 0, `${where} holds sessions`);
  for (const name of names) assert.match(name, ID, `unexpected entry ${name} in ${where}`);
}

module.exports = { runScenarios, assertOnlySessionIds };
