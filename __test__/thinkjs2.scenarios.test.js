'use strict';
// The scenario suite on a real ThinkJS 2.2.25 app with `think-session-native/thinkjs2` in a
// bootstrap file: every session type (db on MariaDB, PostgreSQL and SQLite), with and
// without a signing secret (a list of two: the first signs).
const { before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { runScenarios, assertOnlySessionIds: onlyIds } = require('./support/scenarios');
const { startServer } = require('./support/redis');
const { freshDatabase, query } = require('./support/db');
const { sign } = require('..');

const DATABASE = 'tsn_thinkjs2_scenarios';
let redis;
before(async () => {
  freshDatabase('mysql', DATABASE);
  freshDatabase('postgresql', DATABASE);
  redis = await startServer();
});
after(() => redis && redis.close());

const cookies = (kind, database) => query(kind, database, 'SELECT cookie FROM think_session').map(([c]) => c);

// ThinkJS 2's file layout: <path>/<c0>/<c1>/<id>.json (path_depth 2).
function sessionFiles(dir) {
  const out = [];
  const walk = (folder, depth) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        assert.ok(depth < 2 && entry.name.length === 1, `unexpected folder ${full}`);
        walk(full, depth + 1);
      } else {
        assert.match(entry.name, /\.json$/, `unexpected file ${full}`);
        out.push(entry.name.slice(0, -5));
      }
    }
  };
  walk(path.join(dir, 'runtime', 'session'), 0);
  return out;
}

const types = {
  memory: { env: {} },
  // a custom adapter on SessionAdapter (support/app.js)
  kv: { env: {} },
  file: { env: {}, afterForged: (dir) => onlyIds(sessionFiles(dir)) },
  redis: {
    env: () => ({ TSN_REDIS_PORT: String(redis.port) }),
    afterForged: () => onlyIds(redis.cli('--scan').split('\n').filter(Boolean)),
  },
  'db-mysql': {
    env: { TSN_DB: 'mysql', TSN_DB_NAME: DATABASE },
    afterForged: () => onlyIds(cookies('mysql', DATABASE)),
  },
  'db-postgresql': {
    env: { TSN_DB: 'postgresql', TSN_DB_NAME: DATABASE },
    afterForged: () => onlyIds(cookies('postgresql', DATABASE)),
  },
  'db-sqlite': {
    env: { TSN_DB: 'sqlite' },
    afterForged: (dir) => onlyIds(cookies('sqlite', path.join(dir, 'runtime', 'sqlite', 'sessions.sqlite'))),
  },
};

for (const [name, type] of Object.entries(types)) {
  for (const secret of ['', 'new-secret,old-secret']) {
    const env = () => ({
      TSN_TYPE: name.split('-')[0],
      TSN_SECRET: secret,
      ...(typeof type.env === 'function' ? type.env() : type.env),
    });
    runScenarios({
      name: `thinkjs2 ${name}${secret ? ' signed' : ''}`,
      app: 'thinkjs2-scenarios',
      thinkjs: ['2.2.25'],
      env,
      signed: Boolean(secret),
      sign: secret ? (id, key = 'new-secret') => sign(id, key) : undefined,
      readsSlide: true,
      afterForged: type.afterForged,
    });
  }
}
