'use strict';
// A drop-in for think-session 1.1.6 in a ThinkJS 3/4 app's src/config/extend.js:
//   module.exports = [require('think-session-native/extend')];
// Same contract (ctx.session() and controller.session(), one handle per request), but the
// config is parsed once per config object instead of on every call.
const assert = require('assert');
const crypto = require('crypto');
const ms = require('ms');

const DAY = 24 * 3600 * 1000;
const COOKIE_DEFAULTS = {
  name: 'thinkjs',
  autoUpdateRate: 0.5,
  path: '/',
  httpOnly: true,
  sameSite: false,
  signed: false,
  overwrite: false,
  encrypt: false,
};
// Where a request's handle is kept on its context.
const HANDLE = Symbol('think-session-native/extend handle');
// session config -> its parsed form and the cookie config it was parsed with. ctx.config()
// hands out the same objects on every call, so a config replaced (think.config('session',
// value)) is parsed anew; one changed in place is not.
const parsed = new WeakMap();

const isPlain = (value) => {
  const proto = value !== null && typeof value === 'object' && Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
};

// think-helper's extend (lodash.merge): plain objects and arrays are copied deeply, other
// values (handles, class instances) by reference, and undefined overwrites nothing.
function merge(target, ...sources) {
  for (const source of sources) {
    for (const key of source ? Object.keys(source) : []) {
      if (key === '__proto__') continue;
      const value = source[key];
      if (Array.isArray(value)) target[key] = merge(Array.isArray(target[key]) ? target[key] : [], value);
      else if (isPlain(value)) target[key] = merge(isPlain(target[key]) ? target[key] : {}, value);
      else if (value !== undefined || !(key in target)) target[key] = value;
    }
  }
  return target;
}

// Per-call options, as think-helper's isEmpty sees them: nothing, '', 0, false, [] and {} are none.
const given = (options) => Boolean(options) && (typeof options !== 'object' || Object.keys(options).length > 0);

// think-helper's parseAdapterConfig: `{ type, [type]: {...} }` (or one type's `{ handle }`)
// plus per-call options (a type name, a type's keys, or another `{ type, ... }`) -> that
// type's config, with `type`. ThinkJS merged `common` into each type when it loaded the file.
function adapterConfig(config, options) {
  const byType = ({ type, ...rest }) => ({ type, [type]: rest });
  let root = merge({}, config);
  if (!root.type) root.type = '_';
  if (root.handle) root = byType(root);
  let extra = options || {};
  if (typeof extra === 'string') extra = { type: extra };
  else if (!extra.type) extra = { type: root.type, [root.type]: extra };
  else if (extra.handle) extra = byType(extra);
  const all = merge({}, root, extra);
  const value = all[all.type] || {};
  value.type = all.type;
  return value;
}

// What think-session's constructor builds: the handle's options and its cookie options.
function parse(sessionConfig, cookieConfig, options) {
  const sessionOptions = adapterConfig(sessionConfig, options);
  if (sessionOptions.maxAge === undefined) sessionOptions.maxAge = DAY;
  const { maxAge, handle, type } = sessionOptions;
  if (typeof maxAge !== 'number') {
    sessionOptions.maxAge = ms(maxAge); // '1d' -> 86400000; throws on what is neither
    if (sessionOptions.maxAge === undefined) throw new Error(`think-ms('${maxAge}') result is undefined`);
  }
  assert(typeof handle === 'function', `session.handle must be a function (got ${typeof handle} for type '${type}')`);
  const cookieOptions = { ...COOKIE_DEFAULTS, ...cookieConfig, ...sessionOptions.cookie };
  cookieOptions.maxAge = sessionOptions.maxAge;
  return { cookieConfig, sessionOptions, cookieOptions };
}

function configOf(ctx) {
  const sessionConfig = ctx.config('session');
  const cookieConfig = ctx.config('cookie');
  if (sessionConfig === null || typeof sessionConfig !== 'object') return parse(sessionConfig, cookieConfig);
  let entry = parsed.get(sessionConfig);
  if (!entry || entry.cookieConfig !== cookieConfig) {
    entry = parse(sessionConfig, cookieConfig);
    parsed.set(sessionConfig, entry);
  }
  return entry;
}

function handleOf(ctx, options) {
  const custom = given(options); // rare: parsed on every call
  let handle = ctx[HANDLE];
  if (handle && !custom) return handle;
  const config = custom ? parse(ctx.config('session'), ctx.config('cookie'), options) : configOf(ctx);
  // The request's own copies: handles keep them, add to them (cookie, fresh) and change them.
  // Copied property by property: V8 reads the properties of an object made by a spread on
  // a slow path, which a handle reading its options on every request would pay (bench).
  const sessionOptions = Object.assign({}, config.sessionOptions);
  const cookieOptions = Object.assign({}, config.cookieOptions);
  const name = cookieOptions.name;
  if (handle) {
    // As think-session does: the handle takes the new options, and the cookie is sent again with them.
    handle.options = sessionOptions;
    handle.cookieOptions = cookieOptions;
    handle.maxAge = sessionOptions.maxAge;
    sessionOptions.cookie = ctx.cookie(name, undefined, cookieOptions);
    ctx.cookie(name, sessionOptions.cookie, cookieOptions);
    return handle;
  }
  const Handle = sessionOptions.handle;
  // Handles with `onlyCookie` (think-session-cookie) keep the data in the cookie: no id.
  if (!Handle.onlyCookie) {
    let cookie = ctx.cookie(name, undefined, cookieOptions);
    const fresh = !cookie;
    if (fresh) cookie = crypto.randomUUID();
    if (fresh || custom) ctx.cookie(name, cookie, cookieOptions);
    sessionOptions.cookie = cookie;
    sessionOptions.fresh = fresh;
  }
  handle = new Handle(sessionOptions, ctx, cookieOptions);
  ctx[HANDLE] = handle;
  return handle;
}

// null clears, no value gets (no name: the whole object), anything else sets. Like
// think-session, bad input throws here rather than in the promise.
function session(ctx, name, value, options) {
  const handle = handleOf(ctx, options);
  if (name === null) return Promise.resolve(handle.delete());
  if (value === undefined) return Promise.resolve(handle.get(name));
  assert(typeof name === 'string', 'session.name must be a string');
  return Promise.resolve(handle.set(name, value));
}

module.exports = {
  context: {
    session(name, value, options) {
      return session(this, name, value, options);
    },
  },
  controller: {
    session(name, value, options) {
      return session(this.ctx, name, value, options);
    },
  },
};
