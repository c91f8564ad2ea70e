'use strict';
// ThinkJS 2.x. `install(think)` (or `require('think-session-native/thinkjs2')` in a bootstrap
// file, which calls it), and `type`
// in session.js ('memory' | 'file' | 'db' | 'redis') selects the native stores, reading the
// config the built-in adapters read and keeping their data formats. The session cookie is
// read, checked and signed here, in place of `think.session`: ids are validated (G5) and
// signatures checked in constant time, with `secret` a string or a list (first signs).
const os = require('os');
const path = require('path');
const native = require('../index.js');
const { SessionCore, InOrder, sessionError } = require('./session.js');
const { sharedStore, sharedMemoryPath } = require('./stores.js');

// The ThinkJS 2 app this glue is installed into (see install).
let think;

const DEFAULT_TIMEOUT = 86400; // seconds, ThinkJS 2's default
// Marks a config `think.session` below has parsed already (merged with its adapter's).
const PARSED = Symbol('think-session-native parsed config');
const gcRegistered = new Set();

// `think.parseConfig(config)` of a config object, made once per object: the per-request
// path reads the same session, db and redis config every time.
const parsedConfigs = new WeakMap();
function parsed(config, type) {
  let byType = parsedConfigs.get(config);
  if (!byType) parsedConfigs.set(config, (byType = new Map()));
  if (!byType.has(type)) byType.set(type, think.parseConfig(type === undefined ? config : { ...config, type }));
  return byType.get(type);
}

function logError(err) {
  (think.log || console.error)(`think-session-native: ${err.message}`, 'SESSION');
}

// The session core on a native store, behind ThinkJS 2's adapter interface: get, set(name,
// value, timeout), delete(name?), flush at the end of the request, gc(now). `storeOptions`
// maps the app's config onto the store's options (and may set the lifetime, `timeout`).
function adapterOf(kind, storeOptions) {
  return class extends SessionCore {
    // `conf`: the session config merged with its adapter's, the id as `cookie`, and
    // `newCookie` when the id was just issued.
    constructor(conf = {}) {
      const options = conf[PARSED] ? conf : think.parseConfig(think.config('session'), conf);
      // a store may set the lifetime (seconds) itself: redis's `timeout` replaces the session's
      const { timeout = options.timeout, ...store } = storeOptions(options);
      const seconds = Number(timeout ?? DEFAULT_TIMEOUT);
      const setCookie = typeof options.setCookie === 'function' ? options.setCookie : undefined;
      super(sharedStore(kind, store, 0), options.cookie, {
        fresh: Boolean(options.newCookie),
        strict: options.strict !== false && Boolean(setCookie),
        maxAge: (seconds > 0 ? seconds : DEFAULT_TIMEOUT) * 1000,
        autoUpdateRate: 0, // ThinkJS 2 slides the expiry in flush, and never re-sends the cookie
      });
      this.options = options;
      this.maxBytes = store.maxBytes;
      this.setCookie = setCookie;
      this.written = false;
      if (typeof this.id !== 'string') this.renew();
      // ThinkJS 2's gc timer calls gc(), once per store.
      this.gcType = `session_native_${this.store.key}`;
      if (!gcRegistered.has(this.gcType)) {
        gcRegistered.add(this.gcType);
        think.gc(this);
      }
    }

    issueId() {
      return native.generateId(this.options.idLength);
    }

    // ThinkJS 2 has no context to send a cookie on: think.session below hands the setter.
    sendCookie() {
      if (this.setCookie) this.setCookie(this.id);
    }

    // The data as the store has it, a JSON text per key: flush compares the data with it.
    onRead() {
      this.stored = snapshot(this.data);
    }

    onWrite(name, text) {
      if (!this.stored) return;
      if (text === 'null') delete this.stored[name];
      else this.stored[name] = text;
    }

    // `timeout` (seconds) gives the session a new lifetime from this write on.
    set(name, value, timeout) {
      if (timeout > 0) this.maxAge = Number(timeout) * 1000;
      this.written = true;
      return super.set(name, value);
    }

    // Without a name, clears the session (`this.session()`).
    delete(name) {
      this.written = true;
      if (name !== undefined && name !== null) return this.set(name, null);
      return super.delete().then(() => (this.stored = {}));
    }

    // After the response. ThinkJS 2 apps may change a value in place
    // (`(await this.session('cart')).items.push(x)`) and count on the built-in adapters
    // writing the whole data here: keys whose JSON differs from the store's are written
    // (each merged as a set would be). A session the request read and did not change gets a
    // new lifetime from now, as the built-in adapters give it, if it is still there: this
    // runs after the response, when another request may have moved or cleared it.
    flush() {
      const data = this.data;
      if (!data) return Promise.resolve();
      const stored = this.stored || {};
      const changed = Object.keys(data).filter((key) => JSON.stringify(data[key]) !== stored[key]);
      const removed = Object.keys(stored).filter((key) => !(key in data));
      const writes = [...changed.map((key) => [key, data[key]]), ...removed.map((key) => [key, null])];
      if (writes.length) return Promise.all(writes.map(([key, value]) => super.set(key, value))).catch(logError);
      if (this.written || changed.length + Object.keys(stored).length === 0) return Promise.resolve();
      return Promise.resolve()
        .then(() => this.touch())
        .catch(logError);
    }
  };
}

const snapshot = (data) => Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)]));

class MemoryAdapter extends adapterOf('memory', (o) => ({
  maxEntries: o.maxEntries,
  maxBytes: o.maxBytes,
})) {}

// `memory` in cluster mode: the memory shared by the app's workers (MemorySession's shared
// store). Its folder is `shared_path`: ThinkJS 2's session config has a `path` of its own,
// the file adapter's folder on disk.
const sharedPathOf = (o) => (o.shared_path ? path.resolve(o.shared_path) : sharedMemoryPath(think.ROOT_PATH));
class SharedMemoryAdapter extends adapterOf('shared', (o) => ({
  path: sharedPathOf(o),
  maxEntries: o.maxEntries,
  maxBytes: o.maxBytes,
  mapBytes: o.mapBytes,
  trustFolder: o.trust_folder ?? o.trustFolder,
})) {}

// adapter.file: `path` (default as the built-in's) and `path_depth`. The default folder is
// in the shared temporary folder: the store refuses it when another user made it first.
class FileAdapter extends adapterOf('file', (o) => ({
  sessionPath: path.resolve(o.path || path.join(os.tmpdir(), 'thinkjs')),
  format: 'thinkjs2',
  pathDepth: Number(o.path_depth || 1),
  maxBytes: o.maxBytes,
  trustFolder: o.trust_folder ?? o.trustFolder,
})) {}

// The app's `think.config('db')`: type mysql, postgresql or sqlite, with think-model's
// option names; SQLite's file is `<path>/<database>.sqlite`, as ThinkJS 2 places it.
function dbOptions(o) {
  const db = parsed(think.config('db'));
  const type = String(db.type || 'mysql').toLowerCase();
  if (type === 'mongo' || type === 'mongodb') {
    throw sessionError('ERR_SESSION_OPTIONS', "session type 'db' needs a SQL database (mysql, postgresql or sqlite)");
  }
  const database =
    type === 'sqlite'
      ? path.join(db.path || path.join(think.RUNTIME_PATH, 'sqlite'), `${db.database}.sqlite`)
      : db.database;
  const { host, port, user, password, prefix } = db;
  const number = port ? Number(port) : undefined;
  const trustFolder = o.trust_folder ?? o.trustFolder;
  return {
    dialect: type,
    host,
    port: number,
    user,
    password,
    database,
    prefix,
    maxBytes: o.maxBytes,
    poolSize: o.poolSize,
    trustFolder,
  };
}

class DbAdapter extends adapterOf('db', dbOptions) {}

// The app's `think.config('redis')`: host, port, password, db, and `timeout` (seconds) which,
// when set, is every session's lifetime, as with the built-in adapter.
class RedisAdapter extends adapterOf('redis', (o) => {
  const redis = parsed(think.config('redis'));
  return {
    host: redis.host,
    port: redis.port ? Number(redis.port) : undefined,
    password: redis.password,
    db: redis.db,
    format: 'thinkjs2',
    maxBytes: o.maxBytes,
    timeout: Number(redis.timeout) > 0 ? Number(redis.timeout) : o.timeout,
  };
}) {}

/**
 * The base of a custom session adapter (ThinkJS 2's "Extend Session"): implement how a
 * record is loaded and saved, and get, set, delete, flush and gc come with it. A record is
 * `{ data, expire }`: the data object and its expiry in ms since the epoch. Writes are saved
 * before they resolve, and writes to one session are made one after another in this
 * process, each on a fresh load (no lost update between two requests of one process; across
 * processes that takes a store that merges, as the native ones do).
 */
class SessionAdapter {
  constructor(conf = {}) {
    const options = think.parseConfig(think.config('session'), conf);
    this.options = options;
    this.cookie = options.cookie;
    this.newCookie = Boolean(options.newCookie);
    this.timeout = Number(options.timeout ?? DEFAULT_TIMEOUT);
    this.strict = options.strict !== false;
    this.trusted = this.newCookie; // issued here, or found in the store
    // This request's changes queue here even after regenerate() gives it a new id.
    this.queueKey = `${this.constructor.name}:${this.cookie}`;
    this.data = undefined;
    this.written = false;
    this.gcType = `session_native_custom_${this.constructor.name}`;
    if (!gcRegistered.has(this.gcType)) {
      gcRegistered.add(this.gcType);
      think.gc(this);
    }
  }

  /** @returns {Promise<{data: object, expire: number} | null>} the record of `id`, or null */
  load(id) {
    return Promise.reject(
      sessionError('ERR_SESSION_OPTIONS', `${this.constructor.name} must implement load(id) (${id})`),
    );
  }

  /** Stores `record` ({data, expire}) under `id`; `null` removes it. */
  save(id) {
    void id;
    return Promise.reject(
      sessionError('ERR_SESSION_OPTIONS', `${this.constructor.name} must implement save(id, record)`),
    );
  }

  /** Removes records expired at `now` (ThinkJS 2's gc timer passes it); resolves with how many went. */
  gc() {
    return Promise.resolve(0);
  }

  // The live record, or null. In strict mode an id the store does not know is replaced by
  // a fresh one (and cookie) before anything is written under it.
  async live() {
    const loaded = await this.load(this.cookie);
    const record = loaded && loaded.expire > Date.now() && loaded.data ? loaded : null;
    if (record) this.trusted = true;
    else if (!this.trusted && this.strict) this.renew();
    return record;
  }

  renew() {
    this.cookie = native.generateId(this.options.idLength);
    this.newCookie = true;
    this.trusted = true;
    if (typeof this.options.setCookie === 'function') this.options.setCookie(this.cookie);
  }

  // One change at a time per session in this process, each on a fresh load: the session
  // core's ordering, per session instead of per handle.
  queued(work) {
    const key = this.queueKey;
    let order = queues.get(key);
    if (!order) queues.set(key, (order = new InOrder()));
    const run = Promise.resolve(order.run(work));
    const forget = () => order.done() || queues.get(key) !== order || queues.delete(key);
    run.then(forget, forget);
    return run;
  }

  // `refresh`: only a live record gets a new lifetime; none is made.
  change(update, { refresh = false } = {}) {
    return this.queued(async () => {
      const live = await this.live();
      if (!live && refresh) return;
      const record = live || { data: {}, expire: 0 };
      const data = update(record.data);
      await this.save(this.cookie, data ? { data, expire: Date.now() + this.timeout * 1000 } : null);
      this.newCookie = false; // stored (or removed): regenerate() must look
      this.data = data || {};
    });
  }

  /**
   * Moves the session to a fresh id (and cookie): saved under the new id, then removed
   * under the old. An adapter whose store can do it in one step overrides this.
   */
  regenerate() {
    return this.queued(async () => {
      const record = this.newCookie ? null : await this.live();
      const from = this.cookie;
      this.renew();
      if (record) {
        await this.save(this.cookie, record);
        await this.save(from, null);
      }
      this.data = record ? record.data : {};
      return this.cookie;
    });
  }

  async get(name) {
    if (this.data === undefined) {
      const loaded = this.newCookie ? {} : ((await this.live()) || { data: {} }).data;
      if (this.data === undefined) this.data = loaded; // a write may have finished meanwhile
    }
    return name ? this.data[name] : this.data;
  }

  set(name, value, timeout) {
    if (timeout > 0) this.timeout = Number(timeout);
    try {
      value = JSON.parse(JSON.stringify(value) ?? 'null');
    } catch (err) {
      return Promise.reject(sessionError('ERR_SESSION_VALUE', `session value "${name}" cannot be stored as JSON`, err));
    }
    this.written = true;
    return this.change((data) => {
      if (value === null) delete data[name];
      else data[name] = value;
      return data;
    });
  }

  delete(name) {
    this.written = true;
    if (name === undefined || name === null) return this.change(() => null);
    return this.change((data) => (delete data[name], data));
  }

  flush() {
    if (this.written || !this.data || Object.keys(this.data).length === 0) return Promise.resolve();
    return this.change((data) => data, { refresh: true }).catch(logError);
  }
}
const queues = new Map();

// Chosen directly in session() below: ThinkJS 2's auto-reload (development) clears its
// adapter registry but not this module.
const ADAPTERS = { memory: MemoryAdapter, file: FileAdapter, db: DbAdapter, redis: RedisAdapter };

const clustered = () => Boolean(think.config('cluster_on'));

// The longest signed cookie looked at: an id of the longest length and its signature fit.
const MAX_COOKIE_LENGTH = 2 * native.MAX_ID_LENGTH;

/**
 * Installs the native adapters into a running ThinkJS 2 app (`install(think)`; requiring
 * `think-session-native/thinkjs2` from a bootstrap file does it): `type` 'memory', 'file',
 * 'db' and 'redis' in session.js select them, and the session cookie is read, checked and
 * signed here in place of `think.session`. Installing twice changes nothing.
 */
function install(app) {
  if (!app || typeof app.adapter !== 'function' || typeof app.session !== 'function') {
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      "think-session-native/thinkjs2 plugs into a running ThinkJS 2 app: require it from a file in src/common/bootstrap/ (e.g. `require('think-session-native/thinkjs2');`)",
    );
  }
  if (app.session === session) return;
  think = app;
  for (const [type, Adapter] of Object.entries(ADAPTERS)) think.adapter('session', type, Adapter);
  // A process's memory is not shared by cluster workers: ThinkJS 2 turns memory into file
  // there; this keeps memory, in memory the workers share, and says so once, at start-up.
  if (String(think.config('session').type || 'memory').toLowerCase() === 'memory' && clustered()) {
    try {
      const folder = sharedPathOf(parsed(think.config('session'), 'memory'));
      think.log(`in cluster mode, memory sessions are kept in memory the workers share (${folder})`, 'SESSION');
    } catch (err) {
      logError(err); // no shared memory: every request's session says so too
    }
  }
  think.session = session;
}

function session(http) {
  if (http._session) return http._session;
  const config = think.config('session');
  const name = config.name || 'thinkjs';
  const secrets = [].concat(config.secret || []).filter(Boolean);
  const cookieOptions = config.cookie || {};
  const idLength = cookieOptions.length || 32;
  const setCookie = (value) => {
    http.cookie(name, secrets.length ? native.sign(value, secrets[0]) : value, cookieOptions);
    http._cookie[name] = value;
  };
  const received = http.cookie(name);
  const readable = typeof received === 'string' && received.length <= (config.maxCookieLength ?? MAX_COOKIE_LENGTH);
  let id = readable && !secrets.length ? received : null;
  let resign = false; // signed with an older secret of the list: signed anew with the first
  if (readable && secrets.length) {
    id = native.unsign(received, secrets[0]);
    if (!id && secrets.length > 1) resign = Boolean((id = native.unsign(received, secrets.slice(1))));
  }
  let fresh = false;
  if (!id || !native.isValidId(id)) {
    id = native.generateId(idLength);
    setCookie(id);
    fresh = true;
  } else if (resign) setCookie(id);
  http._cookie[name] = id;
  const type = String(config.type || 'memory').toLowerCase();
  const conf = { ...parsed(config, type), cookie: id, newCookie: fresh, setCookie, idLength, [PARSED]: true };
  const Adapter =
    type === 'memory' && clustered() ? SharedMemoryAdapter : ADAPTERS[type] || think.adapter('session', type);
  http._session = new Adapter(conf);
  return http._session;
}

/**
 * Gives the session of this request a fresh id and cookie (`await regenerate(this.http)` in a
 * controller, at login or a change of privilege), keeping its data; the old id is left with
 * nothing. Resolves with the new id.
 */
async function regenerate(http) {
  if (!http || typeof http.cookie !== 'function') {
    throw sessionError('ERR_SESSION_OPTIONS', 'regenerate(http) takes the request: `regenerate(this.http)`');
  }
  const session = think.session(http);
  if (typeof session.regenerate !== 'function') {
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      `session adapter ${session.constructor.name} cannot regenerate: extend SessionAdapter from think-session-native/thinkjs2`,
    );
  }
  return session.regenerate();
}

module.exports = {
  install,
  MemoryAdapter,
  SharedMemoryAdapter,
  FileAdapter,
  DbAdapter,
  RedisAdapter,
  SessionAdapter,
  regenerate,
};
