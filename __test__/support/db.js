'use strict';
// The machine's MariaDB and PostgreSQL, and SQLite files, reached with their command-line
// clients: each test file makes a database of its own, empty at start. A server that is
// not running fails the test that needs it, with the command that would start it.
const { execFileSync } = require('child_process');

const START = {
  mysql: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
  postgresql: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
};

const CLIENTS = {
  mysql: (database, sql) => [
    'mysql',
    ['-h127.0.0.1', '-P3306', '-uroot', '-N', '-B', '-e', sql, ...(database ? [database] : [])],
  ],
  postgresql: (database, sql) => [
    'psql',
    [
      '-h',
      '127.0.0.1',
      '-p',
      '5432',
      '-U',
      'root',
      '-d',
      database || 'test',
      '-At',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      sql,
    ],
  ],
  // `database`: the file's path
  sqlite: (database, sql) => ['sqlite3', ['-separator', '|', database, sql]],
};

function client(kind, database, sql) {
  const [cmd, args] = CLIENTS[kind](database, sql);
  try {
    return execFileSync(cmd, args, { stdio: 'pipe', encoding: 'utf8' });
  } catch (err) {
    const hint = START[kind] ? ` (is the server running? ${START[kind]})` : '';
    throw new Error(`${cmd} failed${hint}: ${err.stderr || err.message}`, { cause: err });
  }
}

/** Drops and creates database `name` on the `kind` ('mysql' | 'postgresql') server. */
function freshDatabase(kind, name) {
  if (kind === 'mysql') client(kind, null, `DROP DATABASE IF EXISTS ${name}; CREATE DATABASE ${name}`);
  else {
    client(kind, null, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    client(kind, null, `CREATE DATABASE ${name}`);
  }
}

/** Runs `sql` in database `name` (SQLite: the file); the rows as arrays of column texts. */
function query(kind, name, sql) {
  return client(kind, name, sql)
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(kind === 'mysql' ? '\t' : '|'));
}

/**
 * Creates MariaDB table `table` in `database` with the JS peers' own DDL: think-session-mysql's
 * (format 'thinkjs3', with `maxage`) or ThinkJS 2's db adapter's ('thinkjs2', without).
 */
function peerTable(database, table, format) {
  const maxage = format === 'thinkjs3' ? `maxage int(11) NOT NULL DEFAULT '0',` : '';
  const expireDefault = format === 'thinkjs3' ? ` DEFAULT '0'` : '';
  query(
    'mysql',
    database,
    `CREATE TABLE ${table} (id int(11) unsigned NOT NULL AUTO_INCREMENT,
      cookie varchar(255) NOT NULL DEFAULT '', data text, expire bigint(11) NOT NULL${expireDefault}, ${maxage}
      PRIMARY KEY (id), UNIQUE KEY cookie (cookie), KEY expire (expire)) ENGINE=InnoDB DEFAULT CHARSET=utf8`,
  );
}

module.exports = { freshDatabase, query, peerTable };
