'use strict';
// ThinkJS 3.x/4.x handles (think-session's `new Handle(options, ctx, cookieOptions)`): the
// session core (session.js) with think-session's options, cookie and context. Each store's
// handle is a declaration: its store kind and the options that choose the store.
const path = require('path');
const native = require('../index.js');
const { SessionCore, sessionError, toMs, DAY } = require('./session.js');
const { sharedStore, sharesMemory, sharedMemoryPath } = require('./stores.js');

// Where a request's handle is kept on its context, for regenerate(ctx).
const HANDLE = Symbol('think-session-native handle');

// Lists (Redis nodes) compare as text: they may be changed in place.
const optionValue = (value) => (value !== null && typeof value === 'object' ? JSON.stringify(value) : value);

class NativeSession extends SessionCore {
  constructor(options = {}, ctx = undefined, cookieOptions = {}) {
    const rate = options.autoUpdate === false ? 0 : (cookieOptions.autoUpdateRate ?? 0.5);
    const store = new.target.storeFor(options);
    super(store, options.cookie, {
      fresh: Boolean(options.fresh),
      // Strict mode is about ids from cookies: a handle made by hand (no context to send a
      // cookie on) keeps the id it is given.
      strict: options.strict !== false && Boolean(ctx || options.setCookie),
      maxAge: toMs(options.maxAge, 'maxAge', DAY),
      autoUpdateRate: rate,
      byKey: store.sync,
    });
    this.options = options;
    this.ctx = ctx;
    this.cookieOptions = cookieOptions;
    this.maxBytes = options.maxBytes;
    if (ctx && typeof ctx === 'object') ctx[HANDLE] = this;
    const maxLength = options.maxCookieLength ?? native.MAX_ID_LENGTH;
    // think-session's own fresh ids are uuid v4 (122 random bits): ours carry 190.
    if (typeof this.id !== 'string' || this.id.length > maxLength || (options.fresh && ctx)) this.renew();
  }

  // Handles with equal store options share one store. Most apps have one config, so the
  // last store is kept and the per-request handle builds no key.
  static storeFor(options) {
    const names = this.storeOptionNames;
    if (!names) throw new Error('NativeSession is a base class; use MemorySession or another store handle');
    const last = this.lastStore;
    if (
      last &&
      last.owner === this &&
      options.gcInterval === last.gcInterval &&
      names.every((name, i) => optionValue(options[name]) === last.values[i])
    ) {
      return last.store;
    }
    const values = names.map((name) => optionValue(options[name]));
    const store = sharedStore(this.kindOf(options), this.storeOptions(options), options.gcInterval);
    this.lastStore = { owner: this, values, gcInterval: options.gcInterval, store };
    return store;
  }

  /** The kind of store the options choose: by default the handle's. */
  static kindOf() {
    return this.kind;
  }

  /** The native store's options from the handle's (its JS peer's names): by default the same names. */
  static storeOptions(options) {
    const picked = {};
    for (const name of this.storeOptionNames) picked[name] = options[name];
    return picked;
  }

  // `overwrite` drops a Set-Cookie of the same name sent earlier in this response (the id
  // think-session issued, or the one this handle replaced).
  sendCookie() {
    if (!this.ctx || typeof this.ctx.cookie !== 'function') return;
    const options = { ...this.cookieOptions, maxAge: this.maxAge, overwrite: true };
    this.ctx.cookie(options.name || 'thinkjs', this.id, options);
  }

  gc() {
    return Promise.resolve(this.store.gc());
  }
}

/**
 * Gives the session of this request a fresh id (ThinkJS 3/4: `await regenerate(this.ctx)`
 * in a controller, at login or a change of privilege), keeping its data; the old id is left
 * with nothing. Resolves with the new id.
 */
async function regenerate(ctx) {
  if (!ctx || typeof ctx !== 'object') {
    throw sessionError('ERR_SESSION_OPTIONS', 'regenerate(ctx) takes the request context: `regenerate(this.ctx)`');
  }
  if (!ctx[HANDLE] && typeof ctx.session === 'function') await ctx.session();
  const handle = ctx[HANDLE];
  if (!handle) {
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      "regenerate(ctx) needs the session handled by think-session-native: set `handle` in the session adapter config to one of this package's handles",
    );
  }
  return handle.regenerate();
}

// In process memory, or, when the app runs several workers (or `shared: true`), in memory
// shared by the app's workers (an LMDB map on /dev/shm; `path` names another folder).
class MemorySession extends NativeSession {
  static kind = 'memory';
  static storeOptionNames = ['maxEntries', 'maxBytes', 'shared', 'path', 'mapBytes', 'trustFolder'];

  static kindOf(options) {
    return sharesMemory(options.shared) ? 'shared' : 'memory';
  }

  static storeOptions(options) {
    const { maxEntries, maxBytes } = options;
    if (this.kindOf(options) === 'memory') return { maxEntries, maxBytes };
    const root = (global.think && global.think.ROOT_PATH) || process.cwd();
    const folder = options.path ? path.resolve(options.path) : sharedMemoryPath(root);
    return { path: folder, maxEntries, maxBytes, mapBytes: options.mapBytes, trustFolder: options.trustFolder };
  }
}

// think-session-file's layout and options, so swapping the handle keeps every session.
class FileSession extends NativeSession {
  static kind = 'file';
  static storeOptionNames = ['sessionPath', 'format', 'pathDepth', 'maxBytes', 'trustFolder', 'maxPending'];

  static storeOptions(options) {
    return { ...super.storeOptions(options), sessionPath: FileSession.sessionPath(options) };
  }

  static sessionPath(options) {
    if (options.sessionPath) return path.resolve(options.sessionPath);
    if (global.think && global.think.RUNTIME_PATH) return path.join(global.think.RUNTIME_PATH, 'session');
    throw sessionError('ERR_SESSION_OPTIONS', 'FileSession needs `sessionPath`, the folder of the session files');
  }
}

// think-session-redis's options (those of ioredis: host, port, password, db, keyPrefix,
// sentinels with name), plus `url`, `cluster`, `prefix` and timeouts.
class RedisSession extends NativeSession {
  static kind = 'redis';
  static storeOptionNames = [
    ...['url', 'host', 'port', 'username', 'password', 'db', 'cluster', 'sentinels', 'masterName', 'name'],
    ...[
      'prefix',
      'keyPrefix',
      'format',
      'connectTimeout',
      'commandTimeout',
      'maxBytes',
      'maxPending',
      'replicas',
      'cache',
    ],
  ];

  static storeOptions(options) {
    const url = (node) =>
      typeof node === 'string' ? node : `redis://${node.host || '127.0.0.1'}:${node.port || 6379}`;
    const list = (value, name) => {
      if (value === undefined) return undefined;
      if (!Array.isArray(value) || value.length === 0) {
        throw sessionError('ERR_SESSION_OPTIONS', `RedisSession option ${name} must be a non-empty list of nodes`);
      }
      return value.map(url);
    };
    return {
      url: options.url,
      host: options.host,
      port: options.port === undefined ? undefined : Number(options.port),
      username: options.username,
      password: options.password,
      db: options.db === undefined ? undefined : Number(options.db),
      cluster: list(options.cluster, 'cluster'),
      sentinels: list(options.sentinels, 'sentinels'),
      masterName: options.masterName ?? options.name,
      prefix: options.prefix ?? options.keyPrefix,
      format: options.format,
      connectTimeout: toMs(options.connectTimeout, 'connectTimeout'),
      commandTimeout: toMs(options.commandTimeout, 'commandTimeout'),
      maxBytes: options.maxBytes,
      maxPending: options.maxPending,
      replicas: options.replicas,
      cache: options.cache === true ? {} : options.cache || undefined,
    };
  }
}

// think-session-mysql's options (those of think-mysql: host, port, user, password, database,
// prefix, connectionLimit) on MySQL/MariaDB, PostgreSQL or SQLite. think-session passes the
// adapter's key as `type`: name it 'mysql', 'postgresql' or 'sqlite', or give a `url`.
// Without any connection option the sessions go to SQLite in the app's runtime folder.
const DB_CONNECTION = ['url', 'host', 'port', 'user', 'password', 'database'];

class DbSession extends NativeSession {
  static kind = 'db';
  static storeOptionNames = [
    ...['dialect', 'type', ...DB_CONNECTION, 'prefix', 'poolSize', 'connectionLimit'],
    ...['connectTimeout', 'queryTimeout', 'createTable', 'maxBytes', 'trustFolder', 'maxPending'],
  ];

  static storeOptions(options) {
    const named = ['mysql', 'mariadb', 'postgresql', 'postgres', 'pg', 'sqlite', 'sqlite3'];
    let type = named.includes(String(options.type).toLowerCase()) ? options.type : undefined;
    let database = options.database;
    // No connection option at all: the embedded default. Connection options that name no
    // database kind are refused by the store, saying to set `dialect`.
    const connection = DB_CONNECTION.some((name) => options[name] !== undefined);
    if (options.dialect === undefined && type === undefined && !connection) {
      type = 'sqlite';
      database = DbSession.embeddedPath();
    }
    return {
      dialect: options.dialect,
      type,
      url: options.url,
      host: options.host,
      port: options.port === undefined ? undefined : Number(options.port),
      user: options.user,
      password: options.password,
      database,
      prefix: options.prefix,
      poolSize: options.poolSize ?? options.connectionLimit,
      connectTimeout: toMs(options.connectTimeout, 'connectTimeout'),
      queryTimeout: toMs(options.queryTimeout, 'queryTimeout'),
      createTable: options.createTable,
      maxBytes: options.maxBytes,
      trustFolder: options.trustFolder,
      maxPending: options.maxPending,
    };
  }

  static embeddedPath() {
    if (global.think && global.think.RUNTIME_PATH) return path.join(global.think.RUNTIME_PATH, 'session.sqlite');
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      'DbSession needs a database: `url`, or host/user/database (MySQL), or `database` as a SQLite file path',
    );
  }
}

module.exports = { NativeSession, MemorySession, FileSession, RedisSession, DbSession, regenerate };
