'use strict';
// One request's session over a native store: the state machine the ThinkJS 3/4 handles and
// the ThinkJS 2 adapters share. Storage logic is in Rust; this maps a request's calls onto
// at most one store read and one store write per call (ARCHITECTURE.md, "Request path").
const ms = require('ms');
const native = require('../index.js');

const DAY = 24 * 3600 * 1000;

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

const isPromise = (value) => value !== null && typeof value === 'object' && typeof value.then === 'function';

// Where the id stands with the store.
const ID = {
  // Sent by the client: in strict mode nothing is written under it before a read finds a
  // session there (G5).
  UNVERIFIED: 0,
  // Issued here: the store holds nothing under it yet, so there is nothing to read or move.
  ISSUED: 1,
  // The store holds, or held, a session under it.
  KNOWN: 2,
};

// The data while the store read is in flight; writes made meanwhile wait in `changes` and
// are laid over the data read.
class Reading {
  constructor(promise) {
    this.promise = promise;
    this.changes = new Map();
  }
}

// Store calls of one session made one after another (an un-awaited set followed by another
// must not land second). Synchronous calls run at once while nothing is queued.
class InOrder {
  constructor() {
    this.tail = undefined;
  }

  run(call) {
    if (!this.tail) {
      const result = call();
      if (isPromise(result)) this.follow(result);
      return result;
    }
    const queued = this.tail.then(call);
    this.follow(queued);
    return queued;
  }

  follow(promise) {
    const tail = promise.then(
      () => undefined,
      () => undefined,
    );
    this.tail = tail;
    tail.then(() => {
      if (this.tail === tail) this.tail = undefined;
    });
  }

  done() {
    return this.tail;
  }
}

/**
 * The core of a session handle. Subclasses give it its store and id and may override the
 * hooks `issueId()`, `sendCookie()`, `onRead()` (the data was read) and `onWrite(name,
 * text)` (a key reached the store).
 */
class SessionCore {
  constructor(store, id, { fresh = false, strict = true, maxAge = DAY, autoUpdateRate = 0, byKey = false } = {}) {
    this.store = store;
    this.id = id;
    this.idState = fresh ? ID.ISSUED : ID.UNVERIFIED;
    this.strict = strict;
    this.maxAge = maxAge;
    this.autoUpdateRate = autoUpdateRate;
    // undefined (not read yet), a Reading (read in flight), or the data object.
    this.loaded = fresh ? {} : undefined;
    // A store that answers at once and keeps keys apart is asked for one key at a time, so
    // a request pays for the keys it touches, not for the whole session; the values read
    // are kept here for the request.
    this.byKey = byKey;
    this.values = undefined;
    this.order = new InOrder();
    if (fresh) this.onRead();
  }

  /** The data object once read; undefined before, and while the read is in flight. */
  get data() {
    const loaded = this.loaded;
    return loaded instanceof Reading ? undefined : loaded;
  }

  /** The data object; a promise only while a store read is in flight. */
  read() {
    const loaded = this.loaded;
    if (loaded !== undefined) return loaded instanceof Reading ? loaded.promise : loaded;
    const result = this.call('load', this.autoUpdateRate);
    if (!isPromise(result)) return this.receive(result);
    const reading = new Reading(
      result.then(
        (answer) => (this.loaded === reading ? this.receive(answer) : this.read()),
        (err) => {
          if (this.loaded === reading) this.loaded = undefined; // the next call tries again
          throw err;
        },
      ),
    );
    this.loaded = reading;
    return reading.promise;
  }

  // The store's answer: `{ data, refreshed }` or null. A refreshed read sends the cookie
  // again (think-session's autoUpdate).
  receive(answer) {
    const pending = this.loaded instanceof Reading ? this.loaded.changes : undefined;
    if (answer === null && this.idState === ID.UNVERIFIED && this.strict) this.renew();
    else if (answer !== null) this.idState = ID.KNOWN;
    const data = answer === null ? {} : JSON.parse(answer.data);
    if (pending) for (const [name, value] of pending) assign(data, name, value);
    this.loaded = data;
    this.onRead();
    if (answer !== null && answer.refreshed) this.sendCookie();
    return data;
  }

  async get(name) {
    if (typeof name === 'string' && name && this.byKey && this.loaded === undefined) return this.readKey(name);
    const data = this.data || (await this.read());
    return name ? data[name] : data;
  }

  // One key, from a store that answers at once (see byKey).
  readKey(name) {
    const values = this.values || (this.values = new Map());
    if (values.has(name)) return values.get(name);
    const answer = this.call('loadKey', name, this.autoUpdateRate);
    if (answer === null) {
      // no live session: every key is missing
      if (this.idState === ID.UNVERIFIED && this.strict) this.renew();
      else this.loaded = {};
      return undefined;
    }
    this.idState = ID.KNOWN;
    if (answer.refreshed) this.sendCookie();
    const value = answer.value === null ? undefined : JSON.parse(answer.value);
    values.set(name, value);
    return value;
  }

  async set(name, value) {
    const text = jsonOf(name, value, this.maxBytes ?? native.DEFAULT_MAX_BYTES);
    const verified = this.verify(name);
    if (verified) await verified;
    const pending = this.call('apply', name, text, this.maxAge);
    if (pending) await pending;
    this.idState = ID.KNOWN;
    const local = text === 'null' ? null : value; // NaN, Infinity and the like store as null: removed
    const loaded = this.loaded;
    if (loaded instanceof Reading) loaded.changes.set(name, local);
    else if (loaded !== undefined) assign(loaded, name, local);
    if (this.values) this.values.set(name, local === null ? undefined : local);
    this.onWrite(name, text);
  }

  /** Clears the session: the store drops it. */
  async delete() {
    const pending = this.call('destroy');
    if (pending) await pending;
    this.loaded = {};
    this.values = undefined;
  }

  /** Persists the session and moves its expiry to now + maxAge. */
  async update() {
    const verified = this.verify();
    if (verified) await verified;
    const pending = this.call('apply', null, null, this.maxAge);
    if (pending) await pending;
    this.idState = ID.KNOWN;
    this.sendCookie();
  }

  /** Moves the expiry of the live session forward, creating none; false when there is none. */
  touch() {
    return this.call('touch', this.maxAge);
  }

  // Session regeneration (at login or any change of privilege): the data moves to a fresh
  // id in one store operation, the old id is left with nothing, and the cookie follows.
  // Writes this session started before go first.
  async regenerate() {
    if (this.order.done()) await this.order.done();
    if (this.loaded instanceof Reading) await this.loaded.promise.catch(() => undefined);
    const to = this.issueId();
    // The store moves only a live session, so an id it does not know moves nothing.
    const moved = this.idState === ID.ISSUED ? false : this.call('rename', to);
    const kept = isPromise(moved) ? await moved : moved;
    this.id = to;
    this.idState = kept ? ID.KNOWN : ID.ISSUED;
    if (!kept) {
      this.loaded = {};
      this.values = undefined;
      this.onRead();
    }
    this.sendCookie();
    return to;
  }

  gc() {
    return this.store.gc();
  }

  // Strict mode: nothing is written under an id the client chose until a read finds a
  // session under it; an id the store has none under is replaced first (see receive).
  // A store asked by key is asked for the key about to be written.
  verify(name) {
    if (this.idState !== ID.UNVERIFIED || !this.strict) return undefined;
    if (this.loaded === undefined && this.byKey && name) return void this.readKey(name);
    if (this.loaded === undefined || this.loaded instanceof Reading) return this.read();
    this.renew(); // cleared before it was known: nothing to keep
    return undefined;
  }

  // A fresh id and cookie: for an id the store refuses (not the shape of an id ThinkJS
  // issues, G5) or, in strict mode, one it holds nothing under.
  renew() {
    this.id = this.issueId();
    this.idState = ID.ISSUED;
    if (!(this.loaded instanceof Reading)) {
      this.loaded = {};
      this.values = undefined;
      this.onRead();
    }
    this.sendCookie();
  }

  // Calls `store[method](id, ...)` in order. An id the store refuses gets a fresh one, and
  // the call is made again under it.
  call(method, a, b, c) {
    return this.order.run(() => {
      const id = this.id;
      let result;
      try {
        result = this.store[method](id, a, b, c);
      } catch (err) {
        return this.retry(err, id, method, a, b, c);
      }
      return isPromise(result) ? result.catch((err) => this.retry(err, id, method, a, b, c)) : result;
    });
  }

  retry(err, id, method, a, b, c) {
    if (err.code !== 'ERR_SESSION_INVALID_ID') throw err;
    if (this.id === id) this.renew();
    return method === 'load' || method === 'loadKey' ? null : this.store[method](this.id, a, b, c);
  }

  issueId() {
    return native.generateId();
  }

  sendCookie() {}

  onRead() {}

  onWrite() {}
}

function assign(data, name, value) {
  if (value === null) delete data[name];
  else data[name] = value;
}

// The JSON text of a value, or an error that says why it cannot be stored. A value longer
// than the limit cannot fit whatever else the session holds: refused before it is copied to
// the store (which checks the merged record exactly).
function jsonOf(name, value, limit) {
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
  if (text.length > limit) {
    throw sessionError(
      'ERR_SESSION_TOO_LARGE',
      `session value "${name}" is ${text.length} characters of JSON, over the limit of ${limit} bytes (raise \`maxBytes\` or store less); nothing was written`,
    );
  }
  return text;
}

module.exports = { SessionCore, InOrder, sessionError, toMs, DAY };
