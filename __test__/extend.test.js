'use strict';
// think-session-native/extend, the drop-in for think-session, on real ThinkJS apps over HTTP
// and beside think-session itself: the same answers and cookies for per-call options and bad
// input, a config without a handle, think-session's JavaScript handles (file, redis, mysql, and
// think-session-cookie, which keeps the data in the cookie), and the extend's typings.
// (The scenario suites run every store under both extends too.)
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');
const { EXTENDS, prepareApp, bootApp } = require('./support/app');
const { Client } = require('./support/http');
const { startServer } = require('./support/redis');
const { freshDatabase, query, peerTable } = require('./support/db');

const DROP_IN = 'think-session-native/extend';
const DATABASE = 'tsn_extend_peers';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One app for every run here (runs take turns): the config comes with each run.
const app = (extend, session, thinkjs = '4.0.0') =>
  prepareApp({
    name: 'extend',
    thinkjs,
    extend,
    session,
    dependencies: {
      'think-session-file': '^1.1.4',
      'think-session-redis': '^1.1.4',
      'think-session-mysql': '^2.0.6',
      'think-session-cookie': '^1.1.4',
    },
  });

const MEMORY = `{ type: 'memory', common: { cookie: { name: 'thinkjs' } },
  memory: { handle: require('think-session-native').MemorySession, maxAge: '1d' } }`;

const probe = (...args) => `/index/probe?args=${encodeURIComponent(JSON.stringify(args))}`;

// Requests in order, each from a named client: status, body and the session cookies sent,
// the ids named in the order they appear and each expiry in seconds from the response's date.
async function transcript(url, steps) {
  const ids = [];
  const name = (id) => {
    if (!ids.includes(id)) ids.push(id);
    return `id${ids.indexOf(id) + 1}`;
  };
  const clients = new Map();
  const out = [];
  for (const [who, route] of steps) {
    if (!clients.has(who)) clients.set(who, new Client(url));
    const res = await clients.get(who).request(route);
    const expiry = (date) => {
      const seconds = Math.round((Date.parse(date) - Date.parse(res.headers.date)) / 10000) * 10;
      return seconds < 0 ? 'past' : `+${seconds}s`;
    };
    const cookies = res.setCookies
      .filter((line) => line.startsWith('thinkjs='))
      .map((line) =>
        line
          .replace(/^thinkjs=([^;]*)/, (_, id) => `thinkjs=${id && name(id)}`)
          .replace(/expires=([^;]+)/, (_, date) => `expires=${expiry(date)}`),
      );
    out.push({ step: `${who}: ${route}`, status: res.status, body: res.body, cookies });
  }
  return out;
}

async function withApp(dir, env, work) {
  const running = await bootApp(dir, { env });
  try {
    return await work(running.url);
  } finally {
    running.stop();
  }
}

// What think-session does on a first visit, a later one, per-call options (on the call that
// makes the session or a later one) and bad input, through MemorySession.
const STEPS = [
  ['ann', '/index/counter'],
  ['ann', '/index/all'],
  ['ann', '/index/short?ms=60000'],
  ['ann', '/index/all?after=short'],
  ['ann', '/index/cookiepath?path=/index'],
  ['ann', probe(1, 'x')],
  ['ann', probe(1)],
  ['ann', probe('n')],
  ['ann', probe(null)],
  ['ann', '/index/all?after=clear'],
  ['bob', probe(1, 'x')],
  ['bob', '/index/all'],
  ['cyd', '/index/short?ms=60000'],
  ['dan', '/index/cookiepath?path=/index'],
];

for (const thinkjs of ['4.0.0', '3.2.15']) {
  describe(`the drop-in answers as think-session does (thinkjs@${thinkjs}, MemorySession)`, () => {
    const seen = {};
    before(async () => {
      for (const extend of EXTENDS) {
        seen[extend] = await withApp(app(extend, MEMORY, thinkjs), {}, (url) => transcript(url, STEPS));
      }
    });

    it('the same statuses, bodies and cookies, step by step', () => {
      assert.deepEqual(seen[DROP_IN], seen['think-session']);
    });

    it('per-call maxAge and cookie options: the cookie is sent again with them', () => {
      const step = (route) => seen[DROP_IN].find((s) => s.step === route);
      assert.deepEqual(step('ann: /index/counter').cookies, ['thinkjs=id1; path=/; expires=+86400s; httponly']);
      assert.deepEqual(step('ann: /index/all').cookies, []);
      assert.deepEqual(step('ann: /index/short?ms=60000').cookies, ['thinkjs=id1; path=/; expires=+60s; httponly']);
      assert.deepEqual(step('ann: /index/all').body, { n: 1 });
      assert.deepEqual(step('ann: /index/all?after=short').body, { n: 1, short: 'lived' });
      assert.deepEqual(step('ann: /index/cookiepath?path=/index').cookies, [
        'thinkjs=id1; path=/index; expires=+86400s; httponly',
      ]);
      // the first call of a request, with options: the new cookie has them
      assert.match(
        step('cyd: /index/short?ms=60000').cookies.join(),
        /^thinkjs=id\d; path=\/; expires=\+60s; httponly$/,
      );
      assert.match(
        step('dan: /index/cookiepath?path=/index').cookies.join(),
        /^thinkjs=id\d; path=\/index; expires=\+86400s; httponly$/,
      );
    });

    it('a name that is not a string throws where think-session throws, a session made first', () => {
      const threw = { threw: 'AssertionError', message: 'session.name must be a string' };
      const step = (route) => seen[DROP_IN].find((s) => s.step === route);
      assert.deepEqual(step(`ann: ${probe(1, 'x')}`).body, threw);
      assert.deepEqual(step(`bob: ${probe(1, 'x')}`).body, threw);
      assert.match(step(`bob: ${probe(1, 'x')}`).cookies.join(), /^thinkjs=id\d; path=\/; expires=\+86400s; httponly$/);
      assert.equal(step(`ann: ${probe(1)}`).body.threw, undefined, 'a get takes any name: the handle answers it');
      assert.deepEqual(step(`ann: ${probe('n')}`).body, { resolved: 1 });
      assert.deepEqual(step(`ann: ${probe(null)}`).body, { resolved: null });
      assert.deepEqual(step('ann: /index/all?after=clear').body, {});
    });
  });
}

describe('a session config without a handle', () => {
  const NO_HANDLE = `{ type: 'memory', common: { cookie: { name: 'thinkjs' } }, memory: { maxAge: '1d' } }`;
  for (const extend of EXTENDS) {
    it(`fails every session() call with a clear error under ${extend}`, async () => {
      await withApp(app(extend, NO_HANDLE), {}, async (url) => {
        const c = new Client(url);
        const res = await c.request(probe('n'));
        assert.equal(res.body.threw, 'AssertionError');
        assert.match(res.body.message, /^session\.handle must be a function/);
        if (extend === DROP_IN) assert.match(res.body.message, /got undefined for type 'memory'/);
        assert.equal((await c.request('/index/counter')).status, 500);
        assert.equal(c.session, undefined, 'no cookie either');
      });
    });
  }
});

// think-session's JavaScript handles, picked by TSN_PEER. They write after the response, so
// each request here waits a moment for the last one's write.
const PEERS = `{
  type: process.env.TSN_PEER,
  common: { cookie: { name: 'thinkjs' }, maxAge: '1d' },
  file: { handle: require('think-session-file'), sessionPath: path.join(think.ROOT_PATH, 'runtime/session') },
  redis: { handle: require('think-session-redis'), host: '127.0.0.1', port: Number(process.env.TSN_REDIS_PORT) },
  mysql: { handle: require('think-session-mysql'), host: '127.0.0.1', port: 3306, user: 'root', password: '',
    database: '${DATABASE}', prefix: 'think_' },
  cookie: { handle: require('think-session-cookie') },
}`;
const SETTLE = 100;

describe('think-session JavaScript handles', () => {
  let redis;
  before(async () => {
    redis = await startServer();
    freshDatabase('mysql', DATABASE);
    peerTable(DATABASE, 'think_session', 'thinkjs3'); // think-session-mysql's own DDL
  });
  after(() => redis && redis.close());

  for (const peer of ['file', 'redis', 'mysql', 'cookie']) {
    for (const extend of EXTENDS) {
      it(`think-session-${peer} under ${extend}: counter, login, clear`, async () => {
        const env = { TSN_PEER: peer, TSN_REDIS_PORT: String(redis.port) };
        const rows = () => Number(query('mysql', DATABASE, 'SELECT COUNT(*) FROM think_session')[0][0]);
        const rowsBefore = rows();
        await withApp(app(extend, PEERS), env, async (url) => {
          const get = async (c, route) => {
            const res = await c.request(route);
            await sleep(SETTLE);
            assert.equal(res.status, res.headers.location ? 302 : 200, `${peer}: ${route}`);
            return res;
          };
          const visitor = new Client(url);
          for (let n = 1; n <= 3; n++) assert.deepEqual((await get(visitor, '/index/counter')).body, { n });
          if (peer === 'cookie') assert.match(decodeURIComponent(visitor.session), /"n":3/, 'the data is the cookie');
          else assert.match(visitor.session, /^[0-9a-f-]{36}$/, 'a uuid');

          for (let i = 0; i < 3; i++) {
            const c = new Client(url);
            const login = await get(c, `/index/login?name=user${i}`);
            assert.deepEqual((await get(c, login.headers.location)).body, { user: `user${i}` });
          }

          const c = new Client(url);
          await get(c, '/index/set?key=user&value=ann');
          assert.deepEqual((await get(c, '/index/all')).body, { user: 'ann' });
          await get(c, '/index/clear?read=1');
          assert.deepEqual((await get(c, '/index/all')).body, {});
          assert.deepEqual((await get(c, '/index/counter')).body, { n: 1 });
        });
        if (peer === 'mysql') assert.ok(rows() > rowsBefore, 'the sessions are rows of its table');
      });
    }
  }
});

// A controller using the typings, compiled as ThinkJS apps in TypeScript are (ThinkJS's own
// typings need skipLibCheck).
describe('typings', () => {
  it('add session() to ThinkJS controllers and contexts, and refuse misuse', () => {
    const tsc = require.resolve('typescript/bin/tsc');
    const file = path.join(__dirname, 'support', 'extend-typings.ts');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', file];
    const run = spawnSync(process.execPath, [tsc, ...args], { cwd: path.join(__dirname, '..'), encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });
});
