/* Typings of the ThinkJS glue (lib/). The native part below is generated from the Rust code. */

/** Codes carried by every error the package raises, as `error.code`. */
export type SessionErrorCode =
  | 'ERR_SESSION_INVALID_ID'
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_SESSION_VALUE'
  | 'ERR_SESSION_OPTIONS'
  | 'ERR_SESSION_STORE';

export interface SessionError extends Error {
  code: SessionErrorCode;
}

/** Options think-session passes to a handle (from the `session` adapter config). */
export interface SessionOptions {
  /** The session id: think-session passes the cookie value here. */
  cookie?: string;
  /** True when think-session just issued the id, so there is nothing to load. */
  fresh?: boolean;
  /** Lifetime in ms, or a string such as '1d'. Default one day. */
  maxAge?: number | string;
  /** Refresh the record and the cookie when less than `autoUpdateRate` of maxAge is left. Default true. */
  autoUpdate?: boolean;
  /** How often expired records are collected, in ms or '1h'-style. Default one hour. */
  gcInterval?: number | string;
  /**
   * Strict mode (default true): an id from a cookie that the store holds no session under is
   * never adopted; the request gets a fresh id and cookie before anything is written.
   */
  strict?: boolean;
  /** Cookies longer than this are not looked up: a fresh session instead. Default 128. */
  maxCookieLength?: number;
}

export interface MemorySessionOptions extends SessionOptions {
  /** Most sessions kept per process; past it the least recently used goes. Default 100000. */
  maxEntries?: number;
  /** Most bytes of JSON per session; a bigger write rejects with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
}

/** Cookie options think-session passes as the third argument. */
export interface SessionCookieOptions {
  name?: string;
  autoUpdateRate?: number;
  [option: string]: unknown;
}

/** A ThinkJS 3.x/4.x session handle (the `handle` of the `session` adapter config). */
export declare class NativeSession {
  constructor(options?: SessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
  /** The session id in use (a fresh one when the cookie was not a valid id). */
  readonly id: string;
  /** One value, or the whole data object when `name` is empty. */
  get(name?: string): Promise<any>;
  /** Stores `value` (null removes the key); resolves once the store has it. */
  set(name: string, value: unknown): Promise<void>;
  /** Clears the session; resolves once the store has dropped it. */
  delete(): Promise<void>;
  /** Persists the session and moves its expiry to now + maxAge. */
  update(): Promise<void>;
  /** Moves the data to a fresh id and sends its cookie; the old id is left with nothing. Resolves with the new id. */
  regenerate(): Promise<string>;
  /** Removes expired sessions; resolves with how many went. */
  gc(): Promise<number>;
}

/**
 * Session regeneration for ThinkJS 3/4: `await regenerate(this.ctx)` in a controller at login
 * or a change of privilege. The data moves to a fresh id in one store operation, the old id
 * is left with nothing, and the new cookie is sent. Resolves with the new id.
 */
export declare function regenerate(ctx: object): Promise<string>;

/** Sessions in this process's memory, outside the V8 heap. */
export declare class MemorySession extends NativeSession {
  constructor(options?: MemorySessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

/** The memory store behind MemorySession, for direct use: JSON text in and out, synchronous. */
export declare class MemoryStore {
  constructor(options?: MemoryStoreOptions);
  /** The slot the native side knows this store by. */
  readonly slot: number;
  /** The session's data as JSON text, or null; a leading space marks a read that also refreshed the expiry. */
  load(id: string, autoUpdateRate: number): string | null;
  /**
   * Sets key `name` to `value`, JSON text ('null' removes the key), and the expiry to now +
   * maxAgeMs, creating the session when missing. A null `name` only sets the expiry.
   */
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): void;
  /** Moves the expiry of a live session to now + maxAgeMs, creating nothing; false when there is none. */
  touch(id: string, maxAgeMs: number): boolean;
  destroy(id: string): void;
  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from: string, to: string): boolean;
  /** Removes expired sessions on a worker thread; resolves with how many went. */
  gc(): Promise<number>;
  /** Sessions held, live or not yet collected. */
  readonly size: number;
}

export interface FileSessionOptions extends SessionOptions {
  /** The folder of the session files. Default: `runtime/session` of the ThinkJS app. */
  sessionPath?: string;
  /** 'thinkjs3' (think-session-file's files, the default) or 'thinkjs2' (ThinkJS 2's file adapter). */
  format?: 'thinkjs3' | 'thinkjs2';
  /** With 'thinkjs2': how many leading characters of the id become folders. Default 1. */
  pathDepth?: number;
  /** Most bytes of JSON per session; a bigger write rejects with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
}

/** One file per session, in think-session-file's layout; compatible both ways. */
export declare class FileSession extends NativeSession {
  constructor(options?: FileSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

/** The file store behind FileSession, for direct use: JSON text in and out, off the JS thread. */
export declare class FileStore {
  constructor(options: FileStoreOptions);
  readonly slot: number;
  load(id: string, autoUpdateRate: number): Promise<string | null>;
  /** As MemoryStore.apply, resolved once the file has the change. */
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>;
  /** As MemoryStore.touch. */
  touch(id: string, maxAgeMs: number): Promise<boolean>;
  destroy(id: string): Promise<void>;
  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from: string, to: string): Promise<boolean>;
  gc(): Promise<number>;
}

/** A Redis node: a URL, or host and port as ioredis takes them. */
export type RedisNode = string | { host?: string; port?: number };

/** think-session-redis's options (those of ioredis), plus `url`, `cluster` and timeouts. */
export interface RedisSessionOptions extends SessionOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url?: string;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 6379. */
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  /** Redis Cluster: some of its nodes; the rest are found, MOVED and ASK followed. */
  cluster?: RedisNode[];
  /** Sentinels watching the master named `name` (or `masterName`); failovers are followed. */
  sentinels?: RedisNode[];
  name?: string;
  masterName?: string;
  /** Prepended to each id to make its key (ioredis' `keyPrefix` is read too). Default none. */
  prefix?: string;
  keyPrefix?: string;
  /** 'thinkjs3' (think-session-redis's records, the default) or 'thinkjs2'. */
  format?: 'thinkjs3' | 'thinkjs2';
  /** Milliseconds (or '3s'-style) a connection attempt may take. Default 3000. */
  connectTimeout?: number | string;
  /** Milliseconds (or '3s'-style) any call may take, reconnecting included. Default 3000. */
  commandTimeout?: number | string;
  /** Most bytes of JSON per session; a bigger write rejects with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
}

/** Sessions in Redis, in think-session-redis's format; one server, a cluster or Sentinel. */
export declare class RedisSession extends NativeSession {
  constructor(options?: RedisSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

/** The Redis store behind RedisSession, for direct use: JSON text in and out. */
export declare class RedisStore {
  constructor(options?: RedisStoreOptions);
  readonly slot: number;
  load(id: string, autoUpdateRate: number): Promise<string | null>;
  /** As MemoryStore.apply, merged on the server by a script; resolved once Redis has it. */
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>;
  /** As MemoryStore.touch. */
  touch(id: string, maxAgeMs: number): Promise<boolean>;
  destroy(id: string): Promise<void>;
  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from: string, to: string): Promise<boolean>;
  /** Redis expires sessions by itself: resolves with 0. */
  gc(): Promise<number>;
}

/**
 * think-session-mysql's options (those of think-mysql), on MySQL/MariaDB, PostgreSQL or
 * SQLite. Which database: the adapter's key in the session config when it is 'mysql',
 * 'postgresql' or 'sqlite' (think-session passes it as `type`), else the scheme of `url`,
 * else MySQL when a host, user or database is given, else SQLite in `runtime/session.sqlite`.
 */
export interface DbSessionOptions extends SessionOptions {
  type?: string;
  /** `mysql://user:password@host:port/database`, `postgres://…` or `sqlite:path`. */
  url?: string;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 3306 (MySQL) or 5432 (PostgreSQL). */
  port?: number;
  user?: string;
  password?: string;
  /** The database; with SQLite the path of its file. */
  database?: string;
  /** The table is `<prefix>session`: letters, digits and _ only. Default ''. */
  prefix?: string;
  /** Most connections open at once (think-mysql's `connectionLimit` is read too). Default 10. */
  poolSize?: number;
  connectionLimit?: number;
  /** Milliseconds (or '3s'-style) a connection attempt may take. Default 2000. */
  connectTimeout?: number | string;
  /** Milliseconds (or '3s'-style) any call may take, waiting for a connection included. Default 3000. */
  queryTimeout?: number | string;
  /** Create the table when it is missing. Default true. */
  createTable?: boolean;
  /** Most bytes of JSON per session (lowered to what the `data` column holds). Default 1 MiB. */
  maxBytes?: number;
}

/** Sessions in a database table, in think-session-mysql's and ThinkJS 2's layout. */
export declare class DbSession extends NativeSession {
  constructor(options?: DbSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

/** The database store behind DbSession, for direct use: JSON text in and out. */
export declare class DbStore {
  constructor(options?: DbStoreOptions);
  readonly slot: number;
  load(id: string, autoUpdateRate: number): Promise<string | null>;
  /** As MemoryStore.apply, merged by compare-and-set; resolved once the row is committed. */
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>;
  /** As MemoryStore.touch. */
  touch(id: string, maxAgeMs: number): Promise<boolean>;
  destroy(id: string): Promise<void>;
  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from: string, to: string): Promise<boolean>;
  /** Deletes expired rows in batches of 1000; resolves with how many went. */
  gc(): Promise<number>;
}

/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** As memoryStoreApply; resolves once the merged row is committed (G1, G2). */
export declare function dbStoreApply(slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>

/**
 * Creates a database store and returns its slot. Nothing connects until the first call;
 * every call runs on the I/O thread and resolves once the database has committed.
 */
export declare function dbStoreCreate(options: DbStoreOptions): number

export declare function dbStoreDestroy(slot: number, id: string): Promise<void>

/** Deletes expired rows in batches of 1000; resolves with how many went. */
export declare function dbStoreGc(slot: number): Promise<number>

/** As memoryStoreLoad, from the database. */
export declare function dbStoreLoad(slot: number, id: string, autoUpdateRate: number): Promise<string | null>

export interface DbStoreOptions {
  /** 'mysql' (or 'mariadb'), 'postgresql' or 'sqlite'; implied by `url`. */
  type?: string
  /** `mysql://user:password@host:port/database`, `postgres://…` or `sqlite:path`. */
  url?: string
  /** Default '127.0.0.1'. */
  host?: string
  /** Default 3306 (MySQL) or 5432 (PostgreSQL). */
  port?: number
  user?: string
  password?: string
  /** The database; with SQLite, the path of its file (created when missing). */
  database?: string
  /** The table is `<prefix>session`; letters, digits and _ only. Default ''. */
  prefix?: string
  /** Most connections open at once. Default 10. */
  poolSize?: number
  /** Milliseconds a connection attempt may take. Default 2000. */
  connectTimeout?: number
  /** Milliseconds any call may take, waiting for a connection included. Default 3000. */
  queryTimeout?: number
  /** Create the table when it is missing. Default true. */
  createTable?: boolean
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number
}

/**
 * Moves the live session of `from` to `to` (regeneration); resolves with false when
 * `from` has none.
 */
export declare function dbStoreRename(slot: number, from: string, to: string): Promise<boolean>

/** As memoryStoreTouch. */
export declare function dbStoreTouch(slot: number, id: string, maxAgeMs: number): Promise<boolean>

/** As memoryStoreApply, on the session file under the store's lock. */
export declare function fileStoreApply(slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>

/**
 * Creates a store of one file per session and returns its slot. Every call on it runs
 * on the libuv thread pool and resolves once the file system has the change.
 */
export declare function fileStoreCreate(options: FileStoreOptions): number

export declare function fileStoreDestroy(slot: number, id: string): Promise<void>

/** Removes expired and unreadable session files on a worker thread; resolves with how many went. */
export declare function fileStoreGc(slot: number): Promise<number>

/**
 * The data of the live session as JSON text, or null; as memoryStoreLoad, a leading
 * space marks a read that also refreshed the expiry.
 */
export declare function fileStoreLoad(slot: number, id: string, autoUpdateRate: number): Promise<string | null>

export interface FileStoreOptions {
  /** The folder of the session files; an absolute path. */
  sessionPath: string
  /** 'thinkjs3' (think-session-file's layout, the default) or 'thinkjs2'. */
  format?: string
  /** With 'thinkjs2': how many leading characters of the id become folders. Default 1. */
  pathDepth?: number
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number
}

/**
 * Moves the live session of `from` to `to` (regeneration) with one rename(2);
 * resolves with false when `from` has none.
 */
export declare function fileStoreRename(slot: number, from: string, to: string): Promise<boolean>

/** As memoryStoreTouch, on the session file under the store's lock. */
export declare function fileStoreTouch(slot: number, id: string, maxAgeMs: number): Promise<boolean>

/**
 * A fresh session id from the operating system's secure random source: `length`
 * characters of `[A-Za-z0-9_]` (as ThinkJS 2's `cookie.length`), 32 when not given (190
 * bits), never fewer than 22 (130 bits).
 */
export declare function generateId(length?: number | undefined | null): string

/** True when `id` may be used as a session id: `[A-Za-z0-9_-]`, 8 to 128 characters. */
export declare function isValidId(id: string): boolean

/**
 * Sets key `name` to `value` (JSON text; `"null"` removes the key) and the expiry to
 * now + `maxAgeMs`, creating the record when missing. A null `name` only sets the expiry.
 */
export declare function memoryStoreApply(slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number): void

/**
 * Creates a store of sessions in this process's memory, outside the V8 heap, and returns
 * its slot. Every call on it is synchronous: the work is shorter than a thread hop.
 */
export declare function memoryStoreCreate(options?: MemoryStoreOptions | undefined | null): number

export declare function memoryStoreDestroy(slot: number, id: string): void

/** Removes expired records on a worker thread; resolves with how many went. */
export declare function memoryStoreGc(slot: number): Promise<number>

/**
 * The data of the live session as JSON text, or null. When less than `autoUpdateRate`
 * of its lifetime is left the expiry is refreshed too, and the text then starts with a
 * space (which JSON.parse ignores) so the caller knows to send the cookie again.
 */
export declare function memoryStoreLoad(slot: number, id: string, autoUpdateRate: number): string | null

export interface MemoryStoreOptions {
  /** Most sessions kept; past it the least recently used goes. Default 100000. */
  maxEntries?: number
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number
}

/** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
export declare function memoryStoreRename(slot: number, from: string, to: string): boolean

/** Records held, live or not yet collected. */
export declare function memoryStoreSize(slot: number): number

/**
 * Moves the expiry of a live session to now + `maxAgeMs`, creating nothing; false when
 * there is none (a read-only request's refresh must not bring back a moved session).
 */
export declare function memoryStoreTouch(slot: number, id: string, maxAgeMs: number): boolean

/** As memoryStoreApply; merged on the Redis server by a script (G2). */
export declare function redisStoreApply(slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>

/**
 * Creates a Redis store and returns its slot. Nothing connects until the first call;
 * every call runs on the I/O thread and resolves once Redis has answered.
 */
export declare function redisStoreCreate(options: RedisStoreOptions): number

export declare function redisStoreDestroy(slot: number, id: string): Promise<void>

/** Redis expires sessions by itself; resolves with 0. */
export declare function redisStoreGc(slot: number): Promise<number>

/** As memoryStoreLoad, from Redis. */
export declare function redisStoreLoad(slot: number, id: string, autoUpdateRate: number): Promise<string | null>

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Default: from host and port. */
  url?: string
  /** Default '127.0.0.1'. */
  host?: string
  /** Default 6379. */
  port?: number
  username?: string
  password?: string
  db?: number
  /** Redis Cluster: URLs of some of its nodes. */
  cluster?: Array<string>
  /** Sentinel: the Sentinels' URLs; `masterName` names the master they watch. */
  sentinels?: Array<string>
  masterName?: string
  /** Prepended to each id to make its key. Default none, as think-session-redis. */
  prefix?: string
  /** 'thinkjs3' (think-session-redis's records, the default) or 'thinkjs2'. */
  format?: string
  /** Milliseconds a connection attempt may take. Default 3000. */
  connectTimeout?: number
  /** Milliseconds any call may take, reconnecting included. Default 3000. */
  commandTimeout?: number
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number
}

/**
 * Moves the live session of `from` to `to` (regeneration); resolves with false when
 * `from` has none.
 */
export declare function redisStoreRename(slot: number, from: string, to: string): Promise<boolean>

/** As memoryStoreTouch. */
export declare function redisStoreTouch(slot: number, id: string, maxAgeMs: number): Promise<boolean>

/**
 * `value` signed with `secret` in ThinkJS 2's cookie format: `value.` followed by the
 * HMAC-SHA256 in base64 without padding.
 */
export declare function sign(value: string, secret: string): string

/**
 * The value of a cookie `sign` made with one of `secrets` (a secret or a list: the first
 * signs, any verifies), or null when the signature is missing, truncated or foreign.
 * Signatures are compared in constant time.
 */
export declare function unsign(cookie: string, secrets: string | string[]): string | null
