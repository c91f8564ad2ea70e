'use strict';
// RedisSession and RedisStore against real servers started here: a standalone server
// (stopped and started again mid-test), a 3-master cluster and a Sentinel-watched master.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('events');
const { execFileSync } = require('child_process');
const { RedisSession, RedisStore, generateId } = require('..');
const ThinkSessionRedis = require('think-session-redis');
const { startServer, startCluster, startSentinel, waitFor } = require('./support/redis');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Tries `call` up to 50 times, 200 ms apart; true once it succeeds.
async function eventually(call) {
  for (let i = 0; i < 50; i++) {
    try {
      await call();
      return true;
    } catch {
      await sleep(200);
    }
  }
  return false;
}
const ctx = () => ({ res: new EventEmitter(), cookie() {} });

describe('RedisSession on one server', () => {
  let server;
  const options = (extra = {}) => ({ port: server.port, cookie: generateId(), maxAge: 3600000, ...extra });
  before(async () => {
    server = await startServer();
  });
  after(() => server && server.close());

  it('gets, sets, removes with null and clears; a new handle sees each write at once', async () => {
    const opts = options();
    const s = new RedisSession(opts);
    assert.deepEqual(await s.get(), {});
    await s.set('user', { name: 'ann' });
    await s.set('n', 1);
    await s.set('n', null);
    assert.deepEqual(await new RedisSession(opts).get(), { user: { name: 'ann' } });
    await s.delete();
    assert.deepEqual(await new RedisSession(opts).get(), {});
    assert.equal(server.cli('exists', opts.cookie), '0');
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
    const s = new RedisSession(opts);
    for (const [k, v] of Object.entries(values)) await s.set(k, v);
    const text = JSON.parse(server.cli('get', opts.cookie)).data;
    assert.equal(JSON.stringify(text), JSON.stringify(JSON.parse(JSON.stringify(values))));
    assert.match(
      server.cli('get', opts.cookie),
      /"max":9007199254740991,"tenth":0\.1,"big":1e\+21,"negZero":0,"tiny":5e-324/,
    );
    assert.deepEqual(await new RedisSession(opts).get(), JSON.parse(JSON.stringify(values)));
  });

  it('50 concurrent writers on one session each keep their key (G2)', async () => {
    const opts = options();
    await Promise.all(Array.from({ length: 50 }, (_, i) => new RedisSession(opts).set(`k${i}`, i)));
    const data = await new RedisSession(opts).get();
    assert.equal(Object.keys(data).length, 50);
  });

  it('writers on three connections to one session, racing, each keep their key', async () => {
    // Distinct options make distinct stores, each writing on a connection of its own: their
    // transactions collide (EXEC aborts) and are made again, none overwriting another.
    const cookie = generateId();
    const stores = [1000, 2000, 3000].map((commandTimeout) => options({ cookie, commandTimeout }));
    const before = server.cli('info', 'commandstats');
    await Promise.all(Array.from({ length: 300 }, (_, i) => new RedisSession(stores[i % 3]).set(`k${i}`, i)));
    const data = await new RedisSession(stores[0]).get();
    assert.equal(Object.keys(data).length, 300);
    assert.deepEqual(data.k299, 299);
    // No script ran for these writes: WATCH, GET, MULTI, SET, EXEC.
    const evals = (stats) => Number((/cmdstat_evalsha:calls=(\d+)/.exec(stats) || [0, 0])[1]);
    assert.equal(evals(server.cli('info', 'commandstats')), evals(before));
  });

  it('writes the record as think-session-redis does: key = id, PX maxAge', async () => {
    const opts = options({ maxAge: 60000 });
    const before = Date.now();
    await new RedisSession(opts).set('a', 1);
    const record = JSON.parse(server.cli('get', opts.cookie));
    assert.deepEqual(Object.keys(record), ['data', 'maxAge', 'expires']);
    assert.deepEqual(record.data, { a: 1 });
    assert.equal(record.maxAge, 60000);
    assert.ok(record.expires >= before + 60000 && record.expires <= Date.now() + 60000);
    const ttl = Number(server.cli('pttl', opts.cookie));
    assert.ok(ttl > 58000 && ttl <= 60000, `pttl ${ttl}`);
  });

  it('reads what think-session-redis wrote, and it reads ours (G4)', async () => {
    const theirs = options();
    const peer = new ThinkSessionRedis({ ...theirs, host: '127.0.0.1' }, ctx(), { autoUpdateRate: 0.5 });
    await peer.set('user', { name: 'ann', n: 2 ** 53 - 1 });
    await peer.set('\ud800', 'a key JSON.stringify writes escaped');
    peer.ctx.res.emit('finish');
    await waitFor(() => server.cli('exists', theirs.cookie) === '1', 'the peer to write');
    await sleep(50);
    const ours = new RedisSession(theirs);
    assert.deepEqual(await ours.get('user'), { name: 'ann', n: 2 ** 53 - 1 });
    await ours.set('visits', 3);

    const back = new ThinkSessionRedis({ ...theirs, host: '127.0.0.1' }, ctx(), { autoUpdateRate: 0.5 });
    assert.deepEqual(await back.get(), {
      user: { name: 'ann', n: 2 ** 53 - 1 },
      '\ud800': 'a key JSON.stringify writes escaped',
      visits: 3,
    });
    // The peer's ioredis clients would keep the process alive and reconnect forever.
    for (const handle of [peer, back]) handle.redis.redis.disconnect();
  });

  it('an expired record is gone, and maxAge bounds it on the server too (G6)', async () => {
    const opts = options({ maxAge: 150 });
    await new RedisSession(opts).set('a', 1);
    assert.deepEqual(await new RedisSession(opts).get(), { a: 1 });
    await sleep(200);
    assert.deepEqual(await new RedisSession(opts).get(), {});
    assert.equal(server.cli('exists', opts.cookie), '0');
  });

  it('refreshes the expiry and the cookie past the autoUpdate rate', async () => {
    const opts = options({ maxAge: 400 });
    await new RedisSession(opts).set('a', 1);
    await sleep(250);
    const sent = [];
    const s = new RedisSession(
      opts,
      { cookie: (name, value) => sent.push(value) },
      { name: 'sid', autoUpdateRate: 0.5 },
    );
    assert.deepEqual(await s.get(), { a: 1 });
    assert.deepEqual(sent, [opts.cookie]);
    await sleep(250); // past the first expiry, within the refreshed one
    assert.deepEqual(await new RedisSession(opts).get(), { a: 1 });
  });

  it('rejects bad input with coded errors and writes nothing', async () => {
    const opts = options({ maxBytes: 100 });
    const s = new RedisSession(opts);
    await assert.rejects(s.set('big', 'x'.repeat(200)), { code: 'ERR_SESSION_TOO_LARGE' });
    await assert.rejects(s.set('n', 10n), { code: 'ERR_SESSION_VALUE' });
    const cyclic = {};
    cyclic.self = cyclic;
    await assert.rejects(s.set('c', cyclic), { code: 'ERR_SESSION_VALUE' });
    assert.equal(server.cli('exists', opts.cookie), '0');
    const store = new RedisStore({ port: server.port });
    assert.throws(() => store.load('../../x', 0.5), { code: 'ERR_SESSION_INVALID_ID' });
    assert.throws(() => new RedisStore({ port: server.port, format: 'xml' }), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => new RedisSession({ cookie: generateId(), cluster: [] }), { code: 'ERR_SESSION_OPTIONS' });
  });

  it('a prefix and a db keep sessions apart', async () => {
    const opts = options({ prefix: 'sess:', db: 3 });
    await new RedisSession(opts).set('a', 1);
    assert.equal(server.cli('-n', '3', 'exists', `sess:${opts.cookie}`), '1');
    assert.equal(server.cli('exists', opts.cookie), '0');
    assert.deepEqual(await new RedisSession(opts).get(), { a: 1 });
  });

  it('the ThinkJS 2 format stores the data object itself', async () => {
    const opts = options({ format: 'thinkjs2', maxAge: 60000 });
    await new RedisSession(opts).set('a', 1);
    await new RedisSession(opts).set('b', 'x');
    assert.deepEqual(JSON.parse(server.cli('get', opts.cookie)), { a: 1, b: 'x' });
    assert.deepEqual(await new RedisSession(opts).get(), { a: 1, b: 'x' });
  });
});

// One server over plain TCP is driven by Node's own event loop (src/store/redis/on_loop.rs):
// the handshake, large replies and writes split over many reads and writes, a connection
// the server drops, and a process with nothing else to do.
describe("RedisSession with format: 'hash'", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server && server.close());
  const options = (extra = {}) => ({
    port: server.port,
    format: 'hash',
    cookie: generateId(),
    maxAge: 3600000,
    ...extra,
  });

  it('keeps one field per key with its exact JSON text, and 50 concurrent writers keep all 50', async () => {
    const opts = options();
    await new RedisSession(opts).set('user', { name: 'ann' });
    await new RedisSession(opts).set('n', 0.1);
    assert.equal(server.cli('hget', opts.cookie, 'n'), '0.1');
    assert.equal(server.cli('hget', opts.cookie, 'user'), '{"name":"ann"}');
    await new RedisSession(opts).set('n', null);
    assert.equal(server.cli('hexists', opts.cookie, 'n'), '0');
    await Promise.all(Array.from({ length: 50 }, (_, i) => new RedisSession(opts).set(`k${i}`, i)));
    const data = await new RedisSession(opts).get();
    assert.equal(Object.keys(data).length, 51);
    assert.deepEqual(data.user, { name: 'ann' });
    const ttl = Number(server.cli('pttl', opts.cookie));
    assert.ok(ttl > 3500000 && ttl <= 3600000, `TTL ${ttl}`);
    await new RedisSession(opts).delete();
    assert.equal(server.cli('exists', opts.cookie), '0');
  });

  it('a key of the other format is an error naming its type and the option, and stays as it was', async () => {
    const theirs = options({ format: undefined });
    await new RedisSession(theirs).set('a', 1);
    const before = server.cli('get', theirs.cookie);
    await assert.rejects(new RedisSession({ ...theirs, format: 'hash' }).get(), (err) => {
      assert.equal(err.code, 'ERR_SESSION_STORE');
      assert.match(err.message, /holds a string.*"hash"/);
      return true;
    });
    assert.equal(server.cli('get', theirs.cookie), before);
    const ours = options();
    await new RedisSession(ours).set('a', 1);
    await assert.rejects(new RedisSession({ ...ours, format: 'thinkjs3' }).set('b', 2), {
      code: 'ERR_SESSION_STORE',
      message: /holds a hash.*"thinkjs3"/,
    });
    assert.equal(server.cli('hexists', ours.cookie, 'b'), '0');
    assert.throws(() => new RedisStore({ port: server.port, format: 'hashes' }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /'thinkjs3', 'thinkjs2' or 'hash'/,
    });
  });

  it('regeneration moves the hash, and an expired session is not read', async () => {
    const store = new RedisStore({ port: server.port, format: 'hash' });
    const [from, to] = [generateId(), generateId()];
    await store.apply(from, 'a', '1', 60000);
    assert.equal(await store.rename(from, to), true);
    assert.equal(server.cli('exists', from), '0');
    assert.equal((await store.load(to, 0)).data, '{"a":1}');
    await store.apply(from, 'b', '2', 100);
    await sleep(150);
    assert.equal(await store.load(from, 0), null);
  });
});

describe('RedisSession with replicas', () => {
  let master;
  let replica;
  before(async () => {
    master = await startServer();
    replica = await startServer({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    await waitFor(() => replica.cli('info', 'replication').includes('master_link_status:up'), 'the replica');
  });
  after(async () => {
    await Promise.all([replica && replica.close(), master && master.close()]);
  });

  it('a write resolves once the replica has it; more replicas than the master has reject and say so', async () => {
    const opts = { port: master.port, cookie: generateId(), replicas: 1, commandTimeout: 1000 };
    await new RedisSession(opts).set('a', 1);
    assert.equal(JSON.parse(replica.cli('get', opts.cookie)).data.a, 1, 'on the replica when set() resolved');
    const hashed = { ...opts, cookie: generateId(), format: 'hash' };
    await new RedisSession(hashed).set('b', 2);
    assert.equal(replica.cli('hget', hashed.cookie, 'b'), '2', 'on the replica when set() resolved');
    const two = { ...opts, cookie: generateId(), replicas: 2 };
    await assert.rejects(new RedisSession(two).set('a', 1), (err) => {
      assert.equal(err.code, 'ERR_SESSION_STORE');
      assert.match(err.message, /1 of the 2 replicas.*1 connected replicas/);
      return true;
    });
    assert.throws(() => new RedisStore({ port: master.port, replicas: -1 }), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => new RedisStore({ cluster: [`redis://127.0.0.1:${master.port}`], replicas: 1 }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /replicas/,
    });
  });
});

describe('RedisSession with a read cache', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server && server.close());
  const isPromise = (value) => value !== null && typeof value === 'object' && typeof value.then === 'function';
  // A read the cache answers: tracking starts on the first call, so a few tries at most.
  async function cachedLoad(store, id) {
    for (let i = 0; i < 50; i++) {
      const answer = store.load(id, 0);
      if (!isPromise(answer)) return answer;
      await answer;
      await sleep(10);
    }
    throw new Error('the cache never answered');
  }
  const record = (data) => JSON.stringify({ data, maxAge: 60000, expires: Date.now() + 60000 });

  it('answers a read synchronously, and the next read sees a write, a delete or a flush by another client', async () => {
    const store = new RedisStore({ port: server.port, cache: { maxEntries: 100 } });
    const id = generateId();
    await store.apply(id, 'n', '1', 60000);
    assert.deepEqual(await cachedLoad(store, id), { data: '{"n":1}', refreshed: false });
    await store.apply(id, 'm', '2', 60000);
    const afterOwnWrite = store.load(id, 0);
    assert.ok(!isPromise(afterOwnWrite), 'its own write stays cached');
    assert.deepEqual(afterOwnWrite, { data: '{"n":1,"m":2}', refreshed: false });
    server.cli('set', id, record({ n: 42 }), 'px', '60000');
    assert.deepEqual(await store.load(id, 0), { data: '{"n":42}', refreshed: false });
    assert.deepEqual(await cachedLoad(store, id), { data: '{"n":42}', refreshed: false });
    server.cli('del', id);
    assert.equal(await store.load(id, 0), null);
    await store.apply(id, 'x', '1', 60000);
    await cachedLoad(store, id);
    server.cli('flushall');
    assert.equal(await store.load(id, 0), null);
  });

  it('a write or logout by another process is seen by the next cached read; racing writers keep every key', async () => {
    const options = { port: server.port, cache: {} };
    const a = new RedisStore(options);
    // Another worker: its own process, store and connections.
    const otherProcess = (code) =>
      execFileSync(process.execPath, [
        '-e',
        `const s = new (require(${JSON.stringify(require.resolve('..'))}).RedisStore)(${JSON.stringify(options)});
         (async () => { ${code} })().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`,
      ]);
    const id = generateId();
    await a.apply(id, 'user', '"ann"', 60000);
    await cachedLoad(a, id);
    otherProcess(`await s.apply(${JSON.stringify(id)}, 'cart', '[1]', 60000);`);
    assert.deepEqual(await a.load(id, 0), { data: '{"user":"ann","cart":[1]}', refreshed: false });
    await cachedLoad(a, id);
    otherProcess(`await s.destroy(${JSON.stringify(id)});`);
    assert.equal(await a.load(id, 0), null, 'a logout in another process is seen at once');
    // Two caches in one process write on connections of their own: their rounds collide.
    const b = new RedisStore({ ...options, commandTimeout: 2999 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).apply(id, `k${i}`, String(i), 60000)));
    assert.equal(Object.keys(JSON.parse(server.cli('get', id)).data).length, 100);
  });

  it('empties when its connection drops, and is used again once tracking is back', async () => {
    const store = new RedisStore({ port: server.port, cache: {}, commandTimeout: 2998 });
    const id = generateId();
    await store.apply(id, 'n', '1', 60000);
    await cachedLoad(store, id);
    server.cli('client', 'kill', 'type', 'normal'); // the store's connections (not redis-cli's own)
    server.cli('set', id, record({ n: 2 }), 'px', '60000');
    assert.deepEqual(await store.load(id, 0), { data: '{"n":2}', refreshed: false });
    assert.deepEqual(await cachedLoad(store, id), { data: '{"n":2}', refreshed: false });
    server.cli('set', id, record({ n: 3 }), 'px', '60000');
    assert.deepEqual(await store.load(id, 0), { data: '{"n":3}', refreshed: false });
  });

  it('a server that refuses tracking fails the read saying so; options it cannot work with are refused', async () => {
    const user = `tsn-cache-${process.pid}`;
    server.cli('acl', 'setuser', user, 'on', '>pw', '~*', '&*', '+@all', '-client|tracking');
    const store = new RedisStore({ port: server.port, username: user, password: 'pw', cache: {} });
    const id = generateId();
    await store.apply(id, 'n', '1', 60000);
    let refused;
    for (let i = 0; i < 50 && !refused; i++) {
      try {
        await store.load(id, 0);
        await sleep(10);
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused, 'a read fails once tracking is refused');
    assert.equal(refused.code, 'ERR_SESSION_STORE');
    assert.match(refused.message, /refused client-side caching.*remove `cache`/);
    const refuse = (options, pattern) =>
      assert.throws(() => new RedisStore({ port: server.port, ...options }), {
        code: 'ERR_SESSION_OPTIONS',
        message: pattern,
      });
    refuse({ cache: { maxEntries: 0 } }, /maxEntries/);
    refuse({ cache: { entries: 5 } }, /entries/);
    refuse({ cache: {}, format: 'hash' }, /cache.*'hash'/);
    refuse({ cache: {}, cluster: [`redis://127.0.0.1:${server.port}`] }, /cache.*Cluster/);
  });
});

describe('RedisSession on the event loop', () => {
  let server;
  before(async () => {
    server = await startServer({ password: 'secret pass' });
  });
  after(() => server && server.close());
  const base = () => ({ port: server.port, password: 'secret pass', cookie: generateId(), maxAge: 3600000 });

  it('sends AUTH and SELECT first, and a refused AUTH is an error naming Redis', async () => {
    const opts = { ...base(), db: 5 };
    await new RedisSession(opts).set('a', 1);
    assert.equal(server.cli('-n', '5', 'exists', opts.cookie), '1');
    assert.deepEqual(await new RedisSession(opts).get(), { a: 1 });
    const wrong = { ...opts, password: 'wrong' };
    await assert.rejects(new RedisSession(wrong).get(), (err) => {
      assert.equal(err.code, 'ERR_SESSION_STORE');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}.*(WRONGPASS|invalid|password)`, 'i'));
      return true;
    });
  });

  it('moves a 4 MB session through many reads and writes, and 64 parallel writers through one connection', async () => {
    const opts = { ...base(), maxBytes: 8 * 1024 * 1024 };
    const big = 'x'.repeat(4 * 1024 * 1024);
    await new RedisSession(opts).set('big', big);
    await new RedisSession(opts).set('small', 1);
    assert.deepEqual(await new RedisSession(opts).get(), { big, small: 1 });
    const parallel = base();
    await Promise.all(Array.from({ length: 64 }, (_, i) => new RedisSession(parallel).set(`k${i}`, i)));
    assert.equal(Object.keys(await new RedisSession(parallel).get()).length, 64);
  });

  it('a connection the server drops fails only the calls on it; the next call connects again', async () => {
    const opts = base();
    await new RedisSession(opts).set('n', 0);
    const calls = Array.from({ length: 32 }, (_, i) => new RedisSession({ ...opts }).set(`k${i}`, i));
    server.cli('client', 'kill', 'type', 'normal');
    const settled = await Promise.allSettled(calls);
    for (const result of settled) {
      if (result.status === 'rejected') assert.equal(result.reason.code, 'ERR_SESSION_STORE');
    }
    await new RedisSession(opts).set('after', 1);
    assert.equal(await new RedisSession(opts).get('after'), 1);
  });

  it('a script that makes one call gets its answer and exits by itself', () => {
    const script = `
      const { RedisStore } = require(${JSON.stringify(require.resolve('..'))});
      const store = new RedisStore({ port: ${server.port}, password: 'secret pass' });
      store.apply('${generateId()}', 'a', '1', 60000).then(() => console.log('written'));`;
    const run = require('child_process').spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      timeout: 15000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'written');
  });
});

describe('RedisSession when Redis goes down and comes back', () => {
  let server;
  before(async () => {
    // Persistence on, so a restart keeps what was acknowledged.
    server = await startServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  });
  after(() => server && server.close());

  it('fails fast with an error naming Redis, then recovers without a restart (G3)', async () => {
    const base = { port: server.port, maxAge: 3600000, commandTimeout: 1000, connectTimeout: 500 };
    const acknowledged = [];
    for (let i = 0; i < 20; i++) {
      const cookie = generateId();
      await new RedisSession({ ...base, cookie }).set('i', i);
      acknowledged.push(cookie);
    }
    await server.stop();
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const s = new RedisSession({ ...base, cookie: generateId() });
      await assert.rejects(s.get(), (err) => {
        assert.equal(err.code, 'ERR_SESSION_STORE');
        assert.match(err.message, new RegExp(`redis.*127\\.0\\.0\\.1:${server.port}`));
        return true;
      });
      await assert.rejects(s.set('x', 1), { code: 'ERR_SESSION_STORE' });
      assert.ok(Date.now() - started < 2500, `failed after ${Date.now() - started} ms`);
    }
    await server.start();
    const recovered = await eventually(() => new RedisSession({ ...base, cookie: generateId() }).set('after', 1));
    assert.ok(recovered, 'calls succeed again once Redis is back');
    for (const [i, cookie] of acknowledged.entries()) {
      assert.equal(await new RedisSession({ ...base, cookie }).get('i'), i, 'no acknowledged write lost');
    }
  });

  it('a server that accepts and never answers fails within the command timeout', async () => {
    const net = require('net');
    const sockets = [];
    const silent = net.createServer((socket) => sockets.push(socket)).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const s = new RedisSession({ port: silent.address().port, cookie: generateId(), commandTimeout: 300 });
    const started = Date.now();
    await assert.rejects(s.get(), { code: 'ERR_SESSION_STORE', message: /300 ms|timed out/i });
    assert.ok(Date.now() - started < 1500);
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
});

describe('RedisSession over TLS', () => {
  let server;
  before(async () => {
    server = await startServer({ tls: true });
  });
  after(() => server && server.close());

  it('speaks rediss://, and refuses a certificate it cannot verify unless told not to', async () => {
    const cookie = generateId();
    const insecure = { url: `${server.url}/#insecure`, cookie, commandTimeout: 2000 };
    await new RedisSession(insecure).set('a', 1);
    assert.deepEqual(await new RedisSession(insecure).get(), { a: 1 });
    await assert.rejects(new RedisSession({ url: server.url, cookie, commandTimeout: 2000 }).get(), {
      code: 'ERR_SESSION_STORE',
      message: /certificate/,
    });
  });
});

describe('RedisSession on a 3-master cluster', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(() => cluster && cluster.close());

  it('spreads sessions over every master and merges concurrent writes', async () => {
    const base = { cluster: cluster.urls, maxAge: 3600000 };
    for (let i = 0; i < 60; i++) await new RedisSession({ ...base, cookie: generateId() }).set('i', i);
    for (const node of cluster.nodes) assert.ok(Number(node.cli('dbsize')) > 0, `master ${node.port} holds sessions`);
    const cookie = generateId();
    await Promise.all(Array.from({ length: 50 }, (_, i) => new RedisSession({ ...base, cookie }).set(`k${i}`, i)));
    assert.equal(Object.keys(await new RedisSession({ ...base, cookie }).get()).length, 50);
  });
});

describe('RedisSession through Sentinel', () => {
  let setup;
  before(async () => {
    setup = await startSentinel();
  });
  after(() => setup && setup.close());

  it('finds the master, and finds the new one after a failover', async () => {
    const base = { sentinels: [{ host: '127.0.0.1', port: setup.sentinel.port }], name: 'mymaster', maxAge: 3600000 };
    const cookie = generateId();
    await new RedisSession({ ...base, cookie }).set('a', 1);
    assert.equal(setup.master.cli('exists', cookie), '1');
    await waitFor(() => setup.replica.cli('exists', cookie) === '1', 'replication');
    // Sentinel refuses (NOGOODREPLICA) until it has judged the replica fit: ask until it starts.
    await waitFor(
      () => setup.sentinel.cli('sentinel', 'failover', 'mymaster') === 'OK',
      'the failover to start',
      30000,
    );
    await waitFor(
      () => setup.sentinel.cli('sentinel', 'get-master-addr-by-name', 'mymaster').includes(String(setup.replica.port)),
      'the failover',
    );
    const written = await eventually(() => new RedisSession({ ...base, cookie }).set('b', 2));
    assert.ok(written, 'writes reach the new master');
    assert.deepEqual(await new RedisSession({ ...base, cookie }).get(), { a: 1, b: 2 });
  });
});

describe('a Redis that accepts connections and never answers', () => {
  let silent;
  before(async () => {
    // holds every connection and says nothing; neither keeps the test process alive
    silent = require('net').createServer((socket) => socket.unref());
    silent.unref();
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  after(() => silent.close());

  it('bounds the calls waiting on it: past maxPending a call is refused at once with ERR_SESSION_BUSY', async () => {
    const { port } = silent.address();
    const options = { port, maxPending: 2, connectTimeout: 400, commandTimeout: 800 };
    const store = new RedisStore(options);
    const id = generateId();
    const outcome = (promise) =>
      promise.then(
        () => null,
        (err) => err,
      );
    const waiting = [outcome(store.load(id, 0)), outcome(store.load(id, 0))];
    const started = Date.now();
    assert.throws(() => store.load(id, 0), { code: 'ERR_SESSION_BUSY', message: /2 calls are waiting.*maxPending/ });
    // through handles (which share a store of their own), as a rejected promise
    const handles = [1, 2, 3].map(
      () => new RedisSession({ ...options, cookie: generateId(), maxAge: 3600000 }, ctx(), {}),
    );
    waiting.push(outcome(handles[0].get('k')), outcome(handles[1].get('k')));
    await assert.rejects(handles[2].set('k', 1), { code: 'ERR_SESSION_BUSY' });
    assert.ok(Date.now() - started < 300, 'refused at once, not after the timeout');
    for (const err of await Promise.all(waiting)) assert.equal(err && err.code, 'ERR_SESSION_STORE');
    // the answered (failed) calls no longer count: the next one is admitted and fails as the store does
    await assert.rejects(store.load(id, 0), { code: 'ERR_SESSION_STORE' });
    assert.throws(() => new RedisStore({ port, maxPending: 0 }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /maxPending/,
    });
  });
});
