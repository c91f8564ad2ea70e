'use strict';
// The handles the bench compares, by name, with the options each needs. `none` is the
// ceiling: no session work at all. `settle` waits for a write a peer makes after the
// response, so a cycle is only counted once its session has reached the store.
const os = require('os');
const path = require('path');
const { NativeSession, MemorySession, FileSession, RedisSession, DbSession } = require('..');
const ThinkSessionFile = require('think-session-file');
const ThinkSessionRedis = require('think-session-redis');
const ThinkSessionMysql = require('think-session-mysql');
const { JsMapSession } = require('./js-map-session');
const { query } = require('../__test__/support/db');

const workDir = process.env.BENCH_DIR || path.join(os.tmpdir(), `tsn-bench-${process.pid}`);
// The machine's Redis, in a database of the bench's own (emptied when the bench starts).
const REDIS_DB = 9;
const redis = { host: '127.0.0.1', port: Number(process.env.BENCH_REDIS_PORT || 6379), db: REDIS_DB };

// The machine's MariaDB and PostgreSQL, in a database of the bench's own (made anew when the
// bench starts), and a SQLite file in the work folder. Both sides get 10 connections.
const DB_NAME = 'tsn_bench';
const mysql = { host: '127.0.0.1', port: 3306, user: 'root', database: DB_NAME };
const sqliteFile = path.join(workDir, 'sessions.sqlite');

// think-session-mysql writes on 'finish' and drops the promise; this keeps it, so the
// adapter level can wait for the write. Nothing else changes.
class ThinkSessionMysqlKept extends ThinkSessionMysql {
  constructor(...args) {
    super(...args);
    const pool = this.mysql;
    this.mysql = Object.create(pool);
    this.mysql.execute = (sql) => (this.written = pool.execute(sql));
  }
}

// Writes that reached the database: the sum of every session's visit counter (a counter
// lost to an overwrite or still waiting to be written does not count).
const visits = {
  mysql: (table) => `SELECT COALESCE(SUM(JSON_EXTRACT(data, '$.visits')), 0) FROM ${table}`,
  postgresql: (table) => `SELECT COALESCE(SUM(CAST(CAST(data AS json)->>'visits' AS bigint)), 0) FROM ${table}`,
  sqlite: (table) => `SELECT COALESCE(SUM(json_extract(data, '$.visits')), 0) FROM ${table}`,
};
const sumOf =
  (kind, table, database = DB_NAME) =>
  () =>
    Number(query(kind, database, visits[kind](table))[0][0]);

// The glue's own cost: the native handle (session core, strict mode, cookie) on a store
// that answers at once and does nothing, so no crossing into the addon and no storage. It
// holds an empty session under every id, so strict mode keeps the client's id.
const EMPTY = Object.freeze({ data: '{}', refreshed: false });
const NO_KEY = Object.freeze({ value: null, refreshed: false });
const nothing = {
  sync: true,
  load: () => EMPTY,
  loadKey: () => NO_KEY,
  apply: () => undefined,
  touch: () => false,
  destroy: () => undefined,
  rename: () => false,
  gc: () => Promise.resolve(0),
};
class GlueOnlySession extends NativeSession {
  static storeOptionNames = [];

  static storeFor() {
    return nothing;
  }
}

const handles = {
  none: { handle: null },
  jsmap: { handle: JsMapSession },
  glue: { handle: GlueOnlySession },
  memory: { handle: MemorySession, options: { maxEntries: 2000000 } },
  // The store the workers of a clustered app share; its folder is the bench's own.
  shared: {
    handle: MemorySession,
    options: { maxEntries: 2000000, shared: true, path: path.join('/dev/shm', `tsn-bench-${path.basename(workDir)}`) },
  },
  tsfile: { handle: ThinkSessionFile, options: { sessionPath: path.join(workDir, 'think-session-file') } },
  file: { handle: FileSession, options: { sessionPath: path.join(workDir, 'file-session') } },
  // think-session-redis writes on 'finish'; a PING on its connection answers after that write.
  tsredis: { handle: ThinkSessionRedis, options: redis, settle: (handle) => handle.redis.redis.ping() },
  redis: { handle: RedisSession, options: redis },
  'redis-hash': { handle: RedisSession, options: { ...redis, format: 'hash' } },
  'redis-cache': { handle: RedisSession, options: { ...redis, cache: { maxEntries: 100000 } } },
  tsmysql: {
    handle: ThinkSessionMysqlKept,
    options: { ...mysql, prefix: 'tsm_', connectionLimit: 10 },
    settle: (handle) => handle.written,
    writes: sumOf('mysql', 'tsm_session'),
  },
  dbmysql: {
    handle: DbSession,
    options: { ...mysql, dialect: 'mysql', prefix: 'tsn_' },
    writes: sumOf('mysql', 'tsn_session'),
  },
  dbpg: {
    handle: DbSession,
    options: { url: `postgres://root@127.0.0.1:5432/${DB_NAME}`, prefix: 'tsn_' },
    writes: sumOf('postgresql', 'tsn_session'),
  },
  // think-session passes the adapter's key as `type`: the URL names SQLite.
  dbsqlite: {
    handle: DbSession,
    options: { url: `sqlite:${sqliteFile}`, prefix: 'tsn_' },
    writes: sumOf('sqlite', 'tsn_session', sqliteFile),
  },
};

function handleFor(variant) {
  if (!(variant in handles)) throw new Error(`unknown variant ${variant}; one of ${Object.keys(handles).join(', ')}`);
  return handles[variant];
}

module.exports = { handleFor, handles, REDIS_DB, redis, DB_NAME };
