'use strict';
// ThinkJS 2.2.25 with and without think-session-native/thinkjs2, on the same stores: sessions
// written by the built-in file, redis and db adapters are read by the native ones and the
// other way round, with signed cookies; the signature format is ThinkJS 2's own; memory in
// cluster mode is the memory the workers share (ThinkJS 2's own turns it into file).
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const native = require('..');
const { prepareThinkjs2App, bootApp } = require('./support/app');
const { Client } = require('./support/http');
const { startServer } = require('./support/redis');
const { freshDatabase, peerTable } = require('./support/db');
const { sharedMemoryPath } = require('../lib/stores.js');

const DATABASE = 'tsn_thinkjs2_compat';
const SECRET = 'compat-secret';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir;
let redis;
before(async () => {
  dir = prepareThinkjs2App({ name: 'thinkjs2-compat' });
  redis = await startServer();
  freshDatabase('mysql', DATABASE);
  peerTable(DATABASE, 'think_session', 'thinkjs2'); // ThinkJS 2's own DDL (no maxage column)
});
after(() => redis && redis.close());

describe('think-session-native/thinkjs2 outside a ThinkJS 2 app', () => {
  it('says where to load it', () => {
    assert.throws(() => require('../lib/install-thinkjs2.js'), {
      code: 'ERR_SESSION_OPTIONS',
      message: /src\/common\/bootstrap/,
    });
  });
});

describe('ThinkJS 2 signed cookies', () => {
  it("sign and unsign agree with ThinkJS 2's Cookie.sign on random inputs", () => {
    const Cookie = require(path.join(dir, 'node_modules', 'thinkjs', 'lib', 'util', 'cookie.js')).default;
    for (let i = 0; i < 2000; i++) {
      const value = native.generateId(22 + (i % 60));
      const secret = crypto.randomBytes(1 + (i % 40)).toString(i % 2 ? 'base64' : 'latin1');
      const theirs = Cookie.sign(value, secret);
      assert.equal(native.sign(value, secret), theirs, `${value} / ${JSON.stringify(secret)}`);
      assert.equal(native.unsign(theirs, [SECRET, secret]), value);
      assert.equal(Cookie.unsign(native.sign(value, secret), secret), value);
    }
  });

  it('rejects tampered, truncated and foreign signatures; a listed old secret still verifies', () => {
    const id = native.generateId(32);
    const signed = native.sign(id, 'old');
    assert.equal(native.unsign(signed, ['new', 'old']), id);
    assert.equal(native.unsign(signed, ['new']), null);
    assert.equal(native.unsign(signed.slice(0, -1), 'old'), null);
    assert.equal(native.unsign(signed.replace(id[0], id[0] === 'a' ? 'b' : 'a'), 'old'), null);
    assert.equal(native.unsign(id, 'old'), null);
  });
});

// Boots the app on `type` with the built-in adapters (native: false) or the native ones.
async function boot(type, native, env = {}) {
  return bootApp(dir, {
    env: {
      TSN_TYPE: type,
      TSN_NATIVE: native ? '1' : '0',
      TSN_SECRET: SECRET,
      TSN_REDIS_PORT: String(redis.port),
      TSN_DB: 'mysql',
      TSN_DB_NAME: DATABASE,
      ...env,
    },
  });
}

for (const type of ['file', 'redis', 'db']) {
  describe(`ThinkJS 2 ${type} sessions survive the switch to native and back`, () => {
    it('built-in → native → built-in', async () => {
      const jar = new Map(); // one browser across the three apps
      const client = (app) => Object.assign(new Client(app.url), { jar });
      let app = await boot(type, false);
      let c = client(app);
      try {
        assert.equal((await c.request('/index/set?key=user&value=ann')).status, 200);
        await sleep(300); // the built-in adapters write after the response
      } finally {
        app.stop();
      }
      const cookie = c.session;
      assert.ok(cookie && decodeURIComponent(cookie).includes('.'), 'a signed cookie');

      app = await boot(type, true);
      c = client(app);
      try {
        assert.deepEqual((await c.request('/index/all')).body, { user: 'ann' });
        await c.request('/index/set?key=role&value=admin');
        assert.equal(c.session, cookie, 'the cookie is kept');
      } finally {
        app.stop();
      }

      app = await boot(type, false);
      c = client(app);
      try {
        assert.deepEqual((await c.request('/index/all')).body, { user: 'ann', role: 'admin' });
      } finally {
        app.stop();
      }
    });
  });
}

describe('ThinkJS 2 values changed in place', () => {
  it('are written at the end of the request, as the built-in adapters write them', async () => {
    for (const type of ['file', 'redis', 'memory']) {
      const app = await boot(type, true);
      try {
        const c = new Client(app.url);
        for (const value of ['a', 'b']) {
          await c.request(`/index/inplace?value=${value}`);
          await sleep(100); // ThinkJS 2 flushes after the response
        }
        assert.deepEqual((await c.request('/index/all')).body, { items: ['a', 'b'] }, type);
      } finally {
        app.stop();
      }
    }
  });
});

describe('ThinkJS 2 writes', () => {
  // Anything written after the response races the client's next request: a late copy of an
  // old value undoes a newer one, or brings back a session regenerate() has moved away.
  it('are made once, before the response, on a first visit and after', async () => {
    // every write is one transaction (MULTI, SET, EXEC)
    const merges = () => {
      const [, calls = 0] = /cmdstat_exec:calls=(\d+)/.exec(redis.cli('info', 'commandstats')) || [];
      return Number(calls);
    };
    const app = await boot('redis', true);
    try {
      const c = new Client(app.url);
      for (const [path, writes] of [
        ['/index/set?key=user&value=ann', 1], // first visit
        ['/index/set?key=role&value=admin', 1],
        ['/index/counter', 1],
        ['/index/all', 1], // a read gives the session a new lifetime
      ]) {
        const before = merges();
        assert.equal((await c.request(path)).status, 200, path);
        await sleep(100); // ThinkJS 2 flushes after the response
        assert.equal(merges() - before, writes, path);
      }
    } finally {
      app.stop();
    }
  });
});

describe('ThinkJS 2 memory sessions in cluster mode', () => {
  it('are kept in memory the workers share, said at start-up', async () => {
    const shared = sharedMemoryPath(dir);
    fs.rmSync(shared, { recursive: true, force: true });
    const app = await bootApp(dir, { workers: 2, env: { TSN_TYPE: 'memory', TSN_SECRET: '' } });
    try {
      const c = new Client(app.url);
      const pids = new Set();
      // each request on a new connection: the cluster hands them to the workers in turn
      for (let n = 1; n <= 8; n++) {
        const res = await c.request('/index/counter', { newConnection: true });
        assert.deepEqual(res.body, { n });
      }
      for (let i = 0; i < 4; i++) pids.add((await c.request('/index/ping', { newConnection: true })).body.pid);
      assert.equal(pids.size, 2, 'two workers serve');
      assert.ok(app.output.join('').includes(`memory sessions are kept in memory the workers share (${shared})`));
      assert.ok(fs.existsSync(path.join(shared, 'data.mdb')), 'in the shared store');
    } finally {
      app.stop();
    }
  });
});
