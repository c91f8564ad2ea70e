'use strict';
// ThinkJS 3.x/4.x handles (think-session's `new Handle(options, ctx, cookieOptions)`).
// Storage logic lives in Rust; this file maps the request lifecycle onto a store.
const ms = require('ms');
const native = require('../index.js');

const DAY = 24 * 3600 * 1000;
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
    throw sessionError('ERR_SESSION_OPTIONS', `session option ${name} must be ms or a string like '1d', got ${JSON.stringify(value)}`);
  }
  return n;
}

// One store per kind and configuration per process, so `new Handle()` per request is cheap.
const stores = new Map();

function sharedStore(key, options, create) {
  let store = stores.get(key);
  if (store) return store;
  store = create();
  stores.set(key, store);
  const interval = toMs(options.gcInterval, 'gcInterval', HOUR);
  if (interval > 0) {
    const timer = setInterval(() => {
      store.gc().catch((err) => {
        const logger = global.think && global.think.logger;
        (logger || console).error(`think-session-native: gc failed: ${err.message}`);
      });
    }, interval);
    timer.unref();
  }
  return store;
}

class NativeSession {
  constructor(options = {}, ctx = undefined, cookieOptions = {}) {
    this.options = options;
    this.ctx = ctx;
    this.cookieOptions = cookieOptions;
    this.maxAge = toMs(options.maxAge, 'maxAge', DAY);
    this.store = this.constructor.storeFor(options);
    this.fresh = Boolean(options.fresh);
    this.id = options.cookie;
    this.data = undefined; // loaded lazily, on the first get
    this.changes = undefined; // this request's writes made before the load finished
    this.loading = undefined;
    // G5: a cookie that is not an id we issue never reaches the store.
    if (typeof this.id !== 'string' || !native.isValidId(this.id)) {
      this.id = native.generateId();
      this.fresh = true;
      this.sendCookie();
    }
  }

  static storeFor() {
    throw new Error('NativeSession is a base class; use MemorySession or another store handle');
  }

  sendCookie() {
    if (!this.ctx || typeof this.ctx.cookie !== 'function') return;
    const options = { ...this.cookieOptions, maxAge: this.maxAge };
    this.ctx.cookie(options.name || 'thinkjs', this.id, options);
  }

  load() {
    if (this.loading) return this.loading;
    const read = this.fresh ? Promise.resolve(null) : Promise.resolve().then(() => this.store.load(this.id));
    const loading = read.then(
      (text) => (this.loading === loading ? this.receive(text) : undefined),
      (err) => {
        this.loading = undefined; // the next call tries again
        throw err;
      },
    );
    this.loading = loading;
    return loading;
  }

  async receive(text) {
    const record = text === null ? null : JSON.parse(text);
    const data = record ? record.data : {};
    if (this.changes) {
      for (const [name, value] of this.changes) {
        if (value === null) delete data[name];
        else data[name] = value;
      }
      this.changes = undefined;
    }
    this.data = data;
    // As think-session-file: a session keeps the lifetime it was written with.
    if (record) this.maxAge = record.maxAgeMs;
    const rate = this.cookieOptions.autoUpdateRate === undefined ? 0.5 : this.cookieOptions.autoUpdateRate;
    if (record && this.options.autoUpdate !== false && (record.expiresAtMs - Date.now()) / this.maxAge < rate) {
      await this.store.touch(this.id, this.maxAge);
      this.sendCookie();
    }
  }

  async get(name) {
    await this.load();
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
      throw sessionError('ERR_SESSION_VALUE', `session value "${name}" is ${typeof value}, which JSON cannot hold; use null to remove a key`);
    }
    await this.store.apply(this.id, `{${JSON.stringify(name)}:${text}}`, this.maxAge);
    if (this.data) {
      if (value === null) delete this.data[name];
      else this.data[name] = value;
    } else {
      (this.changes || (this.changes = new Map())).set(name, value);
    }
  }

  async delete() {
    await this.store.destroy(this.id);
    this.data = {};
    this.changes = undefined;
    this.loading = Promise.resolve();
  }

  async update() {
    await this.store.apply(this.id, '{}', this.maxAge);
    this.sendCookie();
  }

  gc() {
    return Promise.resolve(this.store.gc());
  }
}

class MemorySession extends NativeSession {
  static storeFor(options) {
    const { maxEntries, maxBytes } = options;
    return sharedStore(`memory:${maxEntries}:${maxBytes}`, options, () => new native.MemoryStore({ maxEntries, maxBytes }));
  }
}

module.exports = { NativeSession, MemorySession, sessionError };
