'use strict';
const path = require('path');
const { runScenarios, assertOnlySessionIds } = require('./support/scenarios');
const { freshDatabase, query } = require('./support/db');

const DATABASE = 'tsn_db_scenarios';
freshDatabase('mysql', DATABASE);
freshDatabase('postgresql', DATABASE);

const cookies = (kind, database, table) => query(kind, database, `SELECT cookie FROM ${table}`).map(([c]) => c);

// think-session passes the adapter's key as `type`: here it names the database.
runScenarios({
  name: 'db-mysql',
  session: `{
  type: 'mysql',
  common: { cookie: { name: 'thinkjs' } },
  mysql: { handle: require('think-session-native').DbSession, host: '127.0.0.1', user: 'root', database: '${DATABASE}', prefix: 'think_', maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(cookies('mysql', DATABASE, 'think_session')),
});

runScenarios({
  name: 'db-postgresql',
  session: `{
  type: 'postgresql',
  common: { cookie: { name: 'thinkjs' } },
  postgresql: { handle: require('think-session-native').DbSession, url: 'postgres://root@127.0.0.1:5432/${DATABASE}', maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(cookies('postgresql', DATABASE, 'session')),
});

// No connection configured: the embedded default, SQLite in the app's runtime folder.
runScenarios({
  name: 'db-sqlite',
  session: `{
  type: 'db',
  common: { cookie: { name: 'thinkjs' } },
  db: { handle: require('think-session-native').DbSession, maxAge: '1d' }
}`,
  afterForged: (dir) => assertOnlySessionIds(cookies('sqlite', path.join(dir, 'runtime', 'session.sqlite'), 'session')),
});
