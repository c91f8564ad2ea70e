'use strict';
// DbSession and DbStore on the machine's MariaDB and PostgreSQL (a database of this file's
// own) and on SQLite; compatibility with think-session-mysql from npm, both directions;
// injection attempts; a server that goes away and comes back, through a proxy.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const { EventEmitter } = require('events');
const { DbSession, DbStore, generateId } = require('..');
const ThinkSessionMysql = require('think-session-mysql');
const thinkMysql = require('think-mysql');
const { freshDatabase, query } = require('./support/db');

const DATABASE = 'tsn_db_session';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ctx = () => ({ res: new EventEmitter(), cookie() {} });
const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-db-'));

const backends = {
  mysql: { type: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', database: DATABASE },
  postgresql: { url: `postgres://root@127.0.0.1:5432/${DATABASE}` },
  sqlite: { type: 'sqlite', database: path.join(folder, 'sessions.sqlite') },
};
before(() => {
  freshDatabase('mysql', DATABASE);
  freshDatabase('postgresql', DATABASE);
});
after(() => fs.rmSync(folder, { recursive: true, force: true }));

for (const [name, connection] of Object.entries(backends)) {
  describe(`DbSession on ${name}`, () => {
    const options = (extra = {}) => ({ ...connection, cookie: generateId(), maxAge: 3600000, ...extra });

    it('gets, sets, removes with null and clears; a new handle sees each write at once', async () => {
      const opts = options();
      const s = new DbSession(opts);
      assert.deepEqual(await s.get(), {});
      await s.set('user', { name: 'ann' });
      await s.set('n', 1);
      await s.set('n', null);
      assert.deepEqual(await new DbSession(opts).get(), { user: { name: 'ann' } });
      await s.delete();
      assert.deepEqual(await new DbSession(opts).get(), {});
    });

    it('keeps numbers and text exactly as JSON.stringify writes them', async () => {
      const opts = options();
      const values = {
        max: 2 ** 53 - 1,
        tenth: 0.1,
        big: 1e21,
        negZero: -0,
        tiny: 5e-324,
        nested: { a: [1, { b: 'c' }], ключ: 'значение 😀' },
        'k\u00e9y "q"\n': 'v\u00e9 \\ \u2028',
      };
      const s = new DbSession(opts);
      for (const [k, v] of Object.entries(values)) await s.set(k, v);
      const loaded = await new DbStore(connection).load(opts.cookie, 0);
      assert.deepEqual(loaded, { data: JSON.stringify(values), refreshed: false });
      assert.deepEqual(await new DbSession(opts).get(), JSON.parse(JSON.stringify(values)));
    });

    it('50 concurrent writers on one session each keep their key (G2)', async () => {
      const opts = options();
      await Promise.all(Array.from({ length: 50 }, (_, i) => new DbSession(opts).set(`k${i}`, i)));
      assert.equal(Object.keys(await new DbSession(opts).get()).length, 50);
    });

    it('refuses values JSON cannot hold and data over maxBytes, changing nothing', async () => {
      const opts = options({ maxBytes: 100 });
      const s = new DbSession(opts);
      await s.set('keep', 1);
      const cycle = {};
      cycle.self = cycle;
      for (const bad of [10n, cycle, () => 1, undefined]) {
        await assert.rejects(s.set('bad', bad), { code: 'ERR_SESSION_VALUE' });
      }
      await assert.rejects(s.set('big', 'x'.repeat(200)), { code: 'ERR_SESSION_TOO_LARGE' });
      assert.deepEqual(await new DbSession(opts).get(), { keep: 1 });
    });

    it('an id with SQL in it never reaches the database', async () => {
      const store = new DbStore(connection);
      for (const id of ["abcdefgh' OR '1'='1", 'abcdefgh; DROP TABLE session', '../../etc/passwd']) {
        assert.throws(() => store.load(id, 0), { code: 'ERR_SESSION_INVALID_ID' });
        assert.throws(() => store.apply(id, 'a', '1', 1000), { code: 'ERR_SESSION_INVALID_ID' });
      }
      const s = new DbSession(options({ cookie: "abcdefgh' OR '1'='1" }));
      await s.set('a', 1);
      assert.match(s.id, /^[A-Za-z0-9_-]{8,128}$/, 'a fresh id instead');
    });

    it('gc deletes expired rows and keeps live ones', async () => {
      const store = new DbStore({ ...connection, prefix: 'gc_' });
      const live = generateId();
      await store.apply(live, 'k', '1', 3600000);
      for (let i = 0; i < 30; i++) await store.apply(generateId(), 'k', '1', 1);
      await sleep(20);
      assert.ok((await store.gc()) >= 30);
      assert.equal(await store.gc(), 0);
      assert.deepEqual(await store.load(live, 0), { data: '{"k":1}', refreshed: false });
    });
  });
}

describe('DbSession options', () => {
  it('refuses a prefix that is not a plain identifier, and unknown types', () => {
    for (const prefix of ['x`; DROP TABLE users; --', 'a b', 'sess"', '1x', 'a.b']) {
      assert.throws(() => new DbStore({ ...backends.mysql, prefix }), { code: 'ERR_SESSION_OPTIONS' }, prefix);
    }
    assert.throws(() => new DbStore({ type: 'oracle', database: 'x' }), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => new DbStore({ type: 'mysql', host: '127.0.0.1' }), /needs the name of the database/);
  });

  it('an explicit dialect wins over the adapter key; options naming no database are refused, saying to set dialect', async () => {
    // think-session sets `type` to the adapter's key: 'db' here.
    const server = { host: '127.0.0.1', port: 5432, user: 'root', database: DATABASE };
    const pg = { ...server, type: 'db', dialect: 'postgresql', cookie: generateId(), maxAge: 60000 };
    await new DbSession(pg).set('a', 1);
    assert.deepEqual(await new DbSession(pg).get(), { a: 1 });
    const unnamed = { type: 'db', host: '127.0.0.1', port: 5432, database: DATABASE, cookie: generateId() };
    assert.throws(() => new DbSession(unnamed), { code: 'ERR_SESSION_OPTIONS', message: /dialect/ });
    assert.throws(() => new DbStore({ dialect: 'mysql', url: 'postgres://127.0.0.1/x' }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /dialect.*'mysql'.*postgresql URL/,
    });
    assert.throws(() => new DbStore({ dialect: 'oracle', database: 'x' }), { code: 'ERR_SESSION_OPTIONS' });
    // The key says mysql, the URL postgres: the URL wins over the key.
    const keyed = { type: 'mysql', url: backends.postgresql.url, cookie: generateId(), maxAge: 60000 };
    await new DbSession(keyed).set('b', 2);
    assert.deepEqual(await new DbSession(keyed).get(), { b: 2 });
  });

  it('reads the database from the adapter key, the URL, or think-mysql options', () => {
    assert.equal(DbSession.storeOptions({ type: 'postgresql', database: 'x' }).type, 'postgresql');
    assert.equal(DbSession.storeOptions({ type: 'db', host: 'h', database: 'x' }).type, undefined);
    assert.equal(DbSession.storeOptions({ type: 'db', url: 'postgres://h/x' }).type, undefined);
    assert.equal(DbSession.storeOptions({ connectionLimit: 3, database: 'x' }).poolSize, 3);
    assert.throws(() => DbSession.storeOptions({ type: 'db' }), { code: 'ERR_SESSION_OPTIONS' });
  });
});

describe('compatibility with think-session-mysql', () => {
  // Our handle gets type 'mysql' as think-session hands it over under the key `mysql`.
  const config = { host: '127.0.0.1', port: 3306, user: 'root', database: DATABASE, prefix: 'think_', maxAge: 3600000 };
  before(() => {
    // think-session-mysql's own DDL
    query(
      'mysql',
      DATABASE,
      `DROP TABLE IF EXISTS think_session; CREATE TABLE think_session (
        id int(11) unsigned NOT NULL AUTO_INCREMENT, cookie varchar(255) NOT NULL DEFAULT '',
        data text, expire bigint(11) NOT NULL DEFAULT '0', maxage int(11) NOT NULL DEFAULT '0',
        PRIMARY KEY (id), UNIQUE KEY cookie (cookie), KEY expire (expire)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8`,
    );
  });
  // think-session-mysql keeps one think-mysql pool per options object (less the cookie)
  after(() => thinkMysql.getInstance(config).close());

  it('reads what think-session-mysql wrote', async () => {
    const cookie = generateId();
    const c = ctx();
    const theirs = new ThinkSessionMysql({ ...config, cookie }, c, { autoUpdateRate: 0.5 });
    await theirs.set('user', { name: 'ann', roles: ['admin'] });
    await theirs.set('n', 0.1);
    c.res.emit('finish'); // it writes after the response, without waiting
    for (
      let i = 0;
      i < 50 && query('mysql', DATABASE, `SELECT 1 FROM think_session WHERE cookie='${cookie}'`).length === 0;
      i++
    ) {
      await sleep(50);
    }
    const ours = new DbSession({ ...config, type: 'mysql', cookie });
    assert.deepEqual(await ours.get(), { user: { name: 'ann', roles: ['admin'] }, n: 0.1 });
  });

  it('writes what think-session-mysql reads', async () => {
    const cookie = generateId();
    await new DbSession({ ...config, type: 'mysql', cookie }).set('user', { name: 'bob' });
    const [[expire, maxage]] = query(
      'mysql',
      DATABASE,
      `SELECT expire, maxage FROM think_session WHERE cookie='${cookie}'`,
    );
    assert.ok(Math.abs(Number(expire) - (Date.now() + 3600000)) < 60000, expire);
    assert.equal(maxage, '3600000');
    const theirs = new ThinkSessionMysql({ ...config, cookie }, ctx(), { autoUpdateRate: 0.5 });
    assert.deepEqual(await theirs.get(), { user: { name: 'bob' } });
  });
});

// A TCP proxy in front of a real server, to take it away and bring it back mid-test.
function proxy(port) {
  const sockets = new Set();
  let mode = 'forward'; // or 'refuse' (drops every connection), 'hang' (accepts, never answers)
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode === 'refuse') return client.destroy();
    if (mode === 'hang') return;
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const cut = () => sockets.forEach((s) => s.destroy());
      resolve({
        port: server.address().port,
        set(next) {
          mode = next;
          cut();
        },
        close: () => new Promise((r) => (cut(), server.close(r))),
      });
    });
  });
}

for (const [name, port] of [
  ['mysql', 3306],
  ['postgresql', 5432],
]) {
  describe(`DbSession when ${name} goes away and comes back`, () => {
    let gate;
    before(async () => {
      gate = await proxy(port);
    });
    after(() => gate && gate.close());

    it('rejects within the query timeout naming the database, then works again without a restart', async () => {
      const connection =
        name === 'mysql'
          ? { type: 'mysql', host: '127.0.0.1', port: gate.port, user: 'root', database: DATABASE }
          : { url: `postgres://root@127.0.0.1:${gate.port}/${DATABASE}` };
      const opts = { ...connection, prefix: 'outage_', cookie: generateId(), maxAge: 3600000, queryTimeout: 1000 };
      await new DbSession(opts).set('before', 1);

      for (const mode of ['refuse', 'hang']) {
        gate.set(mode);
        const started = Date.now();
        const err = await new DbSession(opts).get().catch((e) => e);
        assert.equal(err.code, 'ERR_SESSION_STORE', `${mode}: ${err}`);
        assert.match(err.message, new RegExp(`${name} 127\\.0\\.0\\.1:${gate.port}/${DATABASE}`));
        assert.ok(Date.now() - started < 2500, `${mode}: failed after ${Date.now() - started} ms`);
      }

      gate.set('forward');
      await new DbSession(opts).set('after', 2);
      assert.deepEqual(await new DbSession(opts).get(), { before: 1, after: 2 }, 'no acknowledged write lost');
    });
  });
}
