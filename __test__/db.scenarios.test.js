'use strict';
const assert = require('node:assert/strict');
const path = require('path');
const { execFileSync } = require('child_process');
const { runScenarios } = require('./support/scenarios');
const { freshDatabase, query } = require('./support/db');

const DATABASE = 'tsn_db_scenarios';
freshDatabase('mysql', DATABASE);
freshDatabase('postgresql', DATABASE);

const ID = /^[A-Za-z0-9_-]{8,128}$/;
function onlySessionRows(rows) {
  assert.ok(rows.length > 0, 'the store holds sessions');
  for (const [cookie] of rows) assert.match(cookie, ID, `unexpected row ${cookie}`);
}

// think-session passes the adapter's key as `type`: here it names the database.
runScenarios({
  name: 'db-mysql',
  session: `{
  type: 'mysql',
  common: { cookie: { name: 'thinkjs' } },
  mysql: { handle: require('think-session-native').DbSession, host: '127.0.0.1', user: 'root', database: '${DATABASE}', prefix: 'think_', maxAge: '1d' }
}`,
  afterForged: () => onlySessionRows(query('mysql', DATABASE, 'SELECT cookie FROM think_session')),
});

runScenarios({
  name: 'db-postgresql',
  session: `{
  type: 'postgresql',
  common: { cookie: { name: 'thinkjs' } },
  postgresql: { handle: require('think-session-native').DbSession, url: 'postgres://root@127.0.0.1:5432/${DATABASE}', maxAge: '1d' }
}`,
  afterForged: () => onlySessionRows(query('postgresql', DATABASE, 'SELECT cookie FROM session')),
});

// No connection configured: the embedded default, SQLite in the app's runtime folder.
runScenarios({
  name: 'db-sqlite',
  session: `{
  type: 'db',
  common: { cookie: { name: 'thinkjs' } },
  db: { handle: require('think-session-native').DbSession, maxAge: '1d' }
}`,
  afterForged: (dir) => {
    const file = path.join(dir, 'runtime', 'session.sqlite');
    const out = execFileSync('sqlite3', [file, 'SELECT cookie FROM session'], { encoding: 'utf8' });
    onlySessionRows(
      out
        .split('\n')
        .filter(Boolean)
        .map((line) => [line]),
    );
  },
});
