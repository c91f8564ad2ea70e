'use strict';
// ThinkJS 3.x/4.x handles (think-session's `new Handle(options, ctx, cookieOptions)`).
// Storage logic lives in Rust; this file maps the request lifecycle onto a store.
const ms = require('ms');
const native = require('../index.js');
const path = require('path');
const { MemoryStore, FileStore, RedisStore, DbStore } = require('./stores.js');

const DAY = 24 * 3600 * 1000;
// The longest id taken from a cookie: longer ones are not looked up (the id validator's limit).
const MAX_COOKIE_LENGTH = 128;
// Every store's default `maxBytes`.
const DEFAULT_MAX_BYTES = 1024 * 1024;
// Where a request's handle is kept on its context, for regenerate(ctx).
const HANDLE = Symbol('think-session-native handle');
const HOUR = 3600 * 1000;

function sessionError(code, message, cause) {
  const error = new Error(message, cause ? { cause } : undefined);
  error.code = code;
  return error;
}

function toMs(value, name, fallback) {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === 'string' ? ms(value) : value;
  if (typeof n !== 'number' || !(n >= 0) || !Number.isFinite(n)) {
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      `session option ${name} must be ms or a string like '1d', got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

// One store per kind and configuration per process, so `new Handle()` per request is cheap.
const stores = new Map();

// setInterval takes at most 2^31-1 ms; a longer interval would fire every millisecond.
const MAX_INTERVAL = 2 ** 31 - 1;

function sharedStore(key, options, create) {
  let store = stores.get(key);
  if (store) return store;
  const interval = Math.min(toMs(options.gcInterval, 'gcInterval', HOUR), MAX_INTERVAL);
  store = create();
  stores.set(key, store);
  if (interval > 0) {
    let running = false;
    const timer = setInterval(() => {
      if (running) return; // the last run is still going: skip this tick
      running = true;
      store
        .gc()
        .catch((err) => {
          const logger = global.think && global.think.logger;
          (logger || console).error(`think-session-native: gc failed: ${err.message}`);
        })
        .finally(() => (running = false));
    }, interval);
    timer.unref();
  }
  return store;
}

// Lists (Redis nodes) compare as text: they may be changed in place.
const storeValue = (value) => (value !== null && typeof value === 'object' ? JSON.stringify(value) : value);

const isPromise = (value) => value !== null && typeof value === 'object' && typeof value.then === 'function';

// Store methods answer synchronously (memory) or with a promise (I/O stores); the handle
// awaits only promises, so an in-memory request pays for no needless microtask hops.
class NativeSession {
  constructor(options = {}, ctx = undefined, cookieOptions = {}) {
    this.options = options;
    this.ctx = ctx;
    this.cookieOptions = cookieOptions;
    this.maxAge = toMs(options.maxAge, 'maxAge', DAY);
    this.store = this.constructor.storeFor(options);
    // Strict mode is about ids from cookies: a handle made by hand (no context to send a
    // cookie on) keeps the id it is given.
    this.strict = options.strict !== false && Boolean(ctx || options.setCookie);
    this.fresh = Boolean(options.fresh);
    this.trusted = this.fresh; // the id was issued here, or the store has a session under it
    this.id = options.cookie;
    this.data = undefined; // loaded lazily, on the first get
    this.changes = undefined; // this request's writes made while a load was in flight
    this.loading = undefined;
    this.tail = undefined; // the last store call still in flight: the next one waits for it
    if (this.fresh) this.receive(null); // a fresh id has nothing in the store
    if (ctx && typeof ctx === 'object') ctx[HANDLE] = this;
    const maxLength = options.maxCookieLength ?? MAX_COOKIE_LENGTH;
    // think-session's own fresh ids are uuid v4 (122 random bits): ours carry 190.
    if (typeof this.id !== 'string' || this.id.length > maxLength || (this.fresh && ctx)) this.renew();
  }

  // A handle class names the options that choose its store (`storeOptionNames`) and makes
  // the store (`createStore`); handles with equal values share one. Most apps have one
  // config, so the last store is kept and the per-request handle builds no key.
  static storeFor(options) {
    const names = this.storeOptionNames;
    if (!names) throw new Error('NativeSession is a base class; use MemorySession or another store handle');
    const last = this.lastStore;
    if (last && last.owner === this && names.every((name, i) => storeValue(options[name]) === last.values[i])) {
      return last.store;
    }
    const values = names.map((name) => storeValue(options[name]));
    const store = sharedStore(`${this.name}:${JSON.stringify(values)}`, options, () => this.createStore(options));
    this.lastStore = { owner: this, values, store };
    return store;
  }

  // G5: the store refuses an id outside the shape of the ids ThinkJS issues; the request
  // then gets a fresh session and cookie instead of reaching the store with the cookie.
  renew() {
    this.id = this.issueId();
    this.fresh = true;
    this.trusted = true;
    if (!this.loading) this.receive(null);
    this.sendCookie();
  }

  // Calls `store[method](id, a, b)`. An id the store refuses (not the shape of an id
  // ThinkJS issues) gets a fresh one, and the call is made again under it. Calls of one
  // handle reach an asynchronous store in the order they were made (an un-awaited set
  // followed by another must not land second).
  callStore(method, a, b, c) {
    if (this.tail) {
      const queued = this.tail.then(() => this.invokeStore(method, a, b, c));
      this.settle(queued);
      return queued;
    }
    const result = this.invokeStore(method, a, b, c);
    if (isPromise(result)) this.settle(result);
    return result;
  }

  settle(promise) {
    const tail = promise.then(
      () => undefined,
      () => undefined,
    );
    this.tail = tail;
    tail.then(() => {
      if (this.tail === tail) this.tail = undefined;
    });
  }

  invokeStore(method, a, b, c) {
    const id = this.id;
    let result;
    try {
      result = this.store[method](id, a, b, c);
    } catch (err) {
      return this.retryWithFreshId(err, id, method, a, b, c);
    }
    return isPromise(result) ? result.catch((err) => this.retryWithFreshId(err, id, method, a, b, c)) : result;
  }

  retryWithFreshId(err, id, method, a, b, c) {
    if (err.code !== 'ERR_SESSION_INVALID_ID') throw err;
    if (this.id === id) this.renew();
    return method === 'load' ? null : this.store[method](this.id, a, b, c);
  }

  issueId() {
    return native.generateId();
  }

  // `overwrite` drops a Set-Cookie of the same name sent earlier in this response (the id
  // think-session issued, or the one this handle replaced).
  sendCookie() {
    if (!this.ctx || typeof this.ctx.cookie !== 'function') return;
    const options = { ...this.cookieOptions, maxAge: this.maxAge, overwrite: true };
    this.ctx.cookie(options.name || 'thinkjs', this.id, options);
  }

  // Strict mode: nothing is written under an id the client chose. An id the store has no
  // session under is replaced by a fresh one (on the load, see receive) before any write.
  trust() {
    if (this.trusted || !this.strict) return undefined;
    if (this.data === undefined) return this.load();
    this.renew(); // cleared before it was known: nothing to keep
    return undefined;
  }

  // Loads the data once per request; returns a promise only while a store read is in flight.
  load() {
    if (this.data !== undefined) return undefined;
    if (this.loading) return this.loading;
    const rate = this.options.autoUpdate === false ? 0 : (this.cookieOptions.autoUpdateRate ?? 0.5);
    const text = this.fresh ? null : this.callStore('load', rate);
    if (!isPromise(text)) return this.receive(text);
    const loading = text.then(
      (value) => (this.loading === loading ? this.receive(value) : undefined),
      (err) => {
        this.loading = undefined; // the next call tries again
        throw err;
      },
    );
    this.loading = loading;
    return loading;
  }

  // The store answers with the data's JSON text, starting with a space when the read also
  // refreshed the expiry (autoUpdate, as think-session-file does it): the cookie follows.
  receive(text) {
    if (text === null && !this.trusted && this.strict) this.renew();
    else if (text !== null) this.trusted = true;
    const data = text === null ? {} : JSON.parse(text);
    if (this.changes) {
      for (const [name, value] of this.changes) {
        if (value === null) delete data[name];
        else data[name] = value;
      }
      this.changes = undefined;
    }
    this.data = data;
    this.loading = undefined;
    if (text !== null && text.charCodeAt(0) === 32) this.sendCookie();
  }

  async get(name) {
    const pending = this.load();
    if (pending) await pending;
    return name ? this.data[name] : this.data;
  }

  async set(name, value) {
    if (typeof name !== 'string') {
      throw sessionError('ERR_SESSION_VALUE', `session name must be a string, got ${typeof name}`);
    }
    let text;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw sessionError('ERR_SESSION_VALUE', `session value "${name}" cannot be stored as JSON: ${err.message}`, err);
    }
    if (text === undefined) {
      throw sessionError(
        'ERR_SESSION_VALUE',
        `session value "${name}" is ${typeof value}, which JSON cannot hold; use null to remove a key`,
      );
    }
    // A value longer than the limit cannot fit whatever else the session holds: refused
    // before it is copied to the store (which checks the merged record exactly).
    const limit = this.options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (text.length > limit) {
      throw sessionError(
        'ERR_SESSION_TOO_LARGE',
        `session value "${name}" is ${text.length} characters of JSON, over the limit of ${limit} bytes (raise \`maxBytes\` or store less); nothing was written`,
      );
    }
    const known = this.trust();
    if (known) await known;
    const pending = this.callStore('apply', name, text, this.maxAge);
    if (pending) await pending;
    this.fresh = false; // the store holds a record now: regenerate() must move it
    const local = text === 'null' ? null : value; // NaN, Infinity and the like store as null: removed
    if (this.data) {
      if (local === null) delete this.data[name];
      else this.data[name] = local;
    } else if (this.loading) {
      (this.changes || (this.changes = new Map())).set(name, local);
    }
  }

  async delete() {
    const pending = this.callStore('destroy');
    if (pending) await pending;
    this.data = {};
    this.changes = undefined;
    this.loading = undefined;
  }

  async update() {
    const known = this.trust();
    if (known) await known;
    const pending = this.callStore('apply', null, null, this.maxAge);
    if (pending) await pending;
    this.fresh = false;
    this.sendCookie();
  }

  // Session regeneration (at login or any change of privilege): the data moves to a fresh
  // id in one store operation, the old id is left with nothing, and the cookie follows.
  // Writes this handle started before go first.
  async regenerate() {
    if (this.tail) await this.tail;
    if (this.loading) await this.loading.catch(() => undefined);
    const to = this.issueId();
    // The store moves only a live session, so an id it does not know moves nothing.
    const moved = this.fresh ? false : this.callStore('rename', to);
    const kept = isPromise(moved) ? await moved : moved;
    this.id = to;
    this.fresh = !kept;
    this.trusted = true;
    if (!kept) {
      this.changes = undefined;
      this.receive(null);
    }
    this.sendCookie();
    return to;
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

class MemorySession extends NativeSession {
  static storeOptionNames = ['maxEntries', 'maxBytes'];

  static createStore({ maxEntries, maxBytes }) {
    return new MemoryStore({ maxEntries, maxBytes });
  }
}

// think-session-file's layout and options, so swapping the handle keeps every session.
class FileSession extends NativeSession {
  static storeOptionNames = ['sessionPath', 'format', 'pathDepth', 'maxBytes'];

  static createStore(options) {
    const { format, pathDepth, maxBytes } = options;
    return new FileStore({ sessionPath: FileSession.sessionPath(options), format, pathDepth, maxBytes });
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
  static storeOptionNames = [
    ...['url', 'host', 'port', 'username', 'password', 'db', 'cluster', 'sentinels', 'masterName', 'name'],
    ...['prefix', 'keyPrefix', 'format', 'connectTimeout', 'commandTimeout', 'maxBytes'],
  ];

  static createStore(options) {
    return new RedisStore(RedisSession.storeOptions(options));
  }

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
    };
  }
}

// think-session-mysql's options (those of think-mysql: host, port, user, password, database,
// prefix, connectionLimit) on MySQL/MariaDB, PostgreSQL or SQLite. think-session passes the
// adapter's key as `type`: name it 'mysql', 'postgresql' or 'sqlite', or give a `url`.
// Without any connection option the sessions go to SQLite in the app's runtime folder.
const DB_CONNECTION = ['url', 'host', 'port', 'user', 'password', 'database'];

class DbSession extends NativeSession {
  static storeOptionNames = [
    ...['type', ...DB_CONNECTION, 'prefix', 'poolSize', 'connectionLimit'],
    ...['connectTimeout', 'queryTimeout', 'createTable', 'maxBytes'],
  ];

  static createStore(options) {
    return new DbStore(DbSession.storeOptions(options));
  }

  static storeOptions(options) {
    const named = ['mysql', 'mariadb', 'postgresql', 'postgres', 'pg', 'sqlite', 'sqlite3'];
    let type = named.includes(String(options.type).toLowerCase()) ? options.type : undefined;
    let database = options.database;
    if (type === undefined && options.url === undefined) {
      if (DB_CONNECTION.some((name) => options[name] !== undefined)) type = 'mysql';
      else {
        type = 'sqlite';
        database = DbSession.embeddedPath();
      }
    }
    return {
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

module.exports = { NativeSession, MemorySession, FileSession, RedisSession, DbSession, regenerate, sessionError };
