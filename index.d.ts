/* Typings of the ThinkJS glue (lib/). The native part below is generated from the Rust code. */

/** Codes carried by every error the package raises, as `error.code`. */
export type SessionErrorCode =
  | 'ERR_SESSION_INVALID_ID'
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_SESSION_VALUE'
  | 'ERR_SESSION_OPTIONS'
  | 'ERR_SESSION_BUSY'
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

export interface MemorySessionOptions extends SessionOptions, MemoryStoreOptions, Partial<SharedMemoryStoreOptions> {
  /**
   * Keep the sessions in memory shared by the app's workers (SharedMemoryStore) rather than in
   * this process. Default: shared when the app runs more than one worker, so that a user's
   * next request finds the session whichever worker serves it.
   */
  shared?: boolean;
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

/** A session's data as a store hands it over. */
export interface Loaded {
  /** The data object as JSON text. */
  data: string;
  /** The read also moved the expiry forward (less than `autoUpdateRate` of the lifetime was left): send the cookie again. */
  refreshed: boolean;
}

/** One key of a session as a store hands it over. */
export interface LoadedKey {
  /** The key's value as JSON text; null when the session has no such key. */
  value: string | null;
  /** As Loaded.refreshed. */
  refreshed: boolean;
}

/**
 * A native store opened by kind ('memory', 'file', 'redis' or 'db') with that store's
 * options; `MemoryStore`, `FileStore`, `RedisStore` and `DbStore` fix the kind.
 */
export declare class NativeStore {
  constructor(kind: 'memory' | 'file' | 'redis' | 'db', options?: object);
  /** The slot the addon knows this store by. */
  readonly slot: number;
  /** True when every call but gc answers synchronously (the memory store). */
  readonly sync: boolean;
  load(id: string, autoUpdateRate: number): Loaded | null | Promise<Loaded | null>;
  loadKey(id: string, name: string, autoUpdateRate: number): LoadedKey | null | Promise<LoadedKey | null>;
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): void | Promise<void>;
  touch(id: string, maxAgeMs: number): boolean | Promise<boolean>;
  destroy(id: string): void | Promise<void>;
  rename(from: string, to: string): boolean | Promise<boolean>;
  gc(): Promise<number>;
  /** Lets go of the store's connections (a database pool closes); every later call fails. */
  close(): Promise<void>;
  /** Sessions held, live or not yet collected, where the store can tell (memory); else null. */
  readonly size: number | null;
}

export interface MemoryStoreOptions {
  /** Most sessions kept; past it the least recently used goes. Default 100000. */
  maxEntries?: number;
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
}

export interface SharedMemoryStoreOptions extends MemoryStoreOptions {
  /**
   * The folder of the store, on tmpfs; every process that names it shares the sessions. For
   * MemorySession: `/dev/shm/think-session-native-<uid>/<hash of the app's root>` by default.
   */
  path: string;
  /** The most bytes the shared map may hold. Default 1 GiB (tmpfs holds only what is written). */
  mapBytes?: number;
  /** Use a folder another user owns or may write in, or a link (see FileStoreOptions). Default false. */
  trustFolder?: boolean;
}

/**
 * The memory store shared by processes (an app's workers): an LMDB map on tmpfs. Synchronous
 * as MemoryStore; past `maxEntries` the session written longest ago goes.
 */
export declare class SharedMemoryStore extends MemoryStore {
  constructor(options: SharedMemoryStoreOptions);
}

/** The memory store behind MemorySession, for direct use: JSON text in and out, synchronous. */
export declare class MemoryStore extends NativeStore {
  constructor(options?: MemoryStoreOptions);
  /** The session's data, or null; `refreshed` when the read also moved the expiry forward. */
  load(id: string, autoUpdateRate: number): Loaded | null;
  /** One key of the session, read without the rest; null when there is no live session. */
  loadKey(id: string, name: string, autoUpdateRate: number): LoadedKey | null;
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

/** A store whose calls all answer with promises (files, Redis, databases). */
declare class AsyncStore extends NativeStore {
  load(id: string, autoUpdateRate: number): Promise<Loaded | null>;
  loadKey(id: string, name: string, autoUpdateRate: number): Promise<LoadedKey | null>;
  /** As MemoryStore.apply, resolved once the store has the change (G1). */
  apply(id: string, name: string | null, value: string | null, maxAgeMs: number): Promise<void>;
  /** As MemoryStore.touch. */
  touch(id: string, maxAgeMs: number): Promise<boolean>;
  destroy(id: string): Promise<void>;
  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from: string, to: string): Promise<boolean>;
  gc(): Promise<number>;
}

export interface FileSessionOptions extends SessionOptions, Partial<FileStoreOptions> {
  /** The folder of the session files. Default: `runtime/session` of the ThinkJS app. */
  sessionPath?: string;
}

/** One file per session, in think-session-file's layout; compatible both ways. */
export declare class FileSession extends NativeSession {
  constructor(options?: FileSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

export interface FileStoreOptions {
  /** The folder of the session files; an absolute path. */
  sessionPath: string;
  /** 'thinkjs3' (think-session-file's layout, the default) or 'thinkjs2'. */
  format?: 'thinkjs3' | 'thinkjs2';
  /** With 'thinkjs2': how many leading characters of the id become folders. Default 1. */
  pathDepth?: number;
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
  /**
   * Use the folder even when another user owns it, others may write in it, or it is a symbolic
   * link (refused by default, with ERR_SESSION_OPTIONS or ERR_SESSION_STORE naming the fix):
   * every user who can reach it can read and plant sessions. Default false.
   */
  trustFolder?: boolean;
  /** Most calls that may wait on the store at once; past it a call rejects at once with ERR_SESSION_BUSY. Default 1024. */
  maxPending?: number;
}

/** The file store behind FileSession, for direct use: JSON text in and out, off the JS thread. */
export declare class FileStore extends AsyncStore {
  constructor(options: FileStoreOptions);
}

/** A Redis node: a URL, or host and port as ioredis takes them. */
export type RedisNode = string | { host?: string; port?: number };

/** think-session-redis's options (those of ioredis), plus `url`, `cluster` and timeouts. */
export interface RedisSessionOptions
  extends SessionOptions, Omit<RedisStoreOptions, 'cluster' | 'sentinels' | 'connectTimeout' | 'commandTimeout'> {
  /** Redis Cluster: some of its nodes; the rest are found, MOVED and ASK followed. */
  cluster?: RedisNode[];
  /** Sentinels watching the master named `name` (or `masterName`); failovers are followed. */
  sentinels?: RedisNode[];
  name?: string;
  /** ioredis' name for `prefix`. */
  keyPrefix?: string;
  /** Milliseconds (or '3s'-style) a connection attempt may take. Default 3000. */
  connectTimeout?: number | string;
  /** Milliseconds (or '3s'-style) any call may take, reconnecting included. Default 3000. */
  commandTimeout?: number | string;
}

/** Sessions in Redis, in think-session-redis's format; one server, a cluster or Sentinel. */
export declare class RedisSession extends NativeSession {
  constructor(options?: RedisSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Default: from host and port. */
  url?: string;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 6379. */
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  /** Redis Cluster: URLs of some of its nodes. */
  cluster?: string[];
  /** Sentinel: the Sentinels' URLs; `masterName` names the master they watch. */
  sentinels?: string[];
  masterName?: string;
  /** Prepended to each id to make its key. Default none, as think-session-redis. */
  prefix?: string;
  /** 'thinkjs3' (think-session-redis's records, the default), 'thinkjs2', or 'hash' (a Redis hash per session, a field per key; not the peers' format). */
  format?: 'thinkjs3' | 'thinkjs2' | 'hash';
  /** Replicas that must confirm each write (Redis WAIT) before it resolves, so an acknowledged write survives a failover; one server over redis:// (refused over TLS, with sentinels or cluster). Default 0. */
  replicas?: number;
  /** A read cache in this process, kept coherent by Redis (client-side caching, Redis 7+): a cached read answers synchronously. One server over redis://, formats 'thinkjs3' and 'thinkjs2'. Off by default; `true` is `{}`. */
  cache?: boolean | { /** Sessions kept, least recently used dropped first. Default 10000. */ maxEntries?: number };
  /** Milliseconds a connection attempt may take. Default 3000. */
  connectTimeout?: number;
  /** Milliseconds any call may take, reconnecting included. Default 3000. */
  commandTimeout?: number;
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
  /** Most calls that may wait on the store at once; past it a call rejects at once with ERR_SESSION_BUSY. Default 1024. */
  maxPending?: number;
}

/** The Redis store behind RedisSession, for direct use: JSON text in and out; gc resolves with 0 (Redis expires keys itself). */
export declare class RedisStore extends AsyncStore {
  constructor(options?: RedisStoreOptions);
}

/**
 * think-session-mysql's options (those of think-mysql), on MySQL/MariaDB, PostgreSQL or
 * SQLite. Which database: the adapter's key in the session config when it is 'mysql',
 * 'postgresql' or 'sqlite' (think-session passes it as `type`), else the scheme of `url`,
 * else MySQL when a host, user or database is given, else SQLite in `runtime/session.sqlite`.
 */
export interface DbSessionOptions extends SessionOptions, Omit<DbStoreOptions, 'connectTimeout' | 'queryTimeout'> {
  /** think-mysql's name for `poolSize`. */
  connectionLimit?: number;
  /** Milliseconds (or '3s'-style) a connection attempt may take. Default 2000. */
  connectTimeout?: number | string;
  /** Milliseconds (or '3s'-style) any call may take, waiting for a connection included. Default 3000. */
  queryTimeout?: number | string;
}

/** Sessions in a database table, in think-session-mysql's and ThinkJS 2's layout. */
export declare class DbSession extends NativeSession {
  constructor(options?: DbSessionOptions, ctx?: object, cookieOptions?: SessionCookieOptions);
}

export interface DbStoreOptions {
  /** Which database: 'mysql' (or 'mariadb'), 'postgresql' or 'sqlite'. Wins over `type` (which think-session sets to the adapter's key); `url`'s scheme must agree. */
  dialect?: 'mysql' | 'mariadb' | 'postgresql' | 'postgres' | 'sqlite';
  /** The same names; think-session sets it to the adapter's key. `url`'s scheme wins over it. */
  type?: string;
  /** `mysql://user:password@host:port/database`, `postgres://…` or `sqlite:path`. */
  url?: string;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 3306 (MySQL) or 5432 (PostgreSQL). */
  port?: number;
  user?: string;
  password?: string;
  /** The database; with SQLite, the path of its file (created when missing). */
  database?: string;
  /** The table is `<prefix>session`; letters, digits and _ only. Default ''. */
  prefix?: string;
  /** Most connections open at once. Default 10. */
  poolSize?: number;
  /** Milliseconds a connection attempt may take. Default 2000. */
  connectTimeout?: number;
  /** Milliseconds any call may take, waiting for a connection included. Default 3000. */
  queryTimeout?: number;
  /** Create the table when it is missing. Default true. */
  createTable?: boolean;
  /** Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB. */
  maxBytes?: number;
  /** SQLite: use the file's folder even when another user owns it or may write in it (see FileStoreOptions). Default false. */
  trustFolder?: boolean;
  /** Most calls that may wait on the store at once; past it a call rejects at once with ERR_SESSION_BUSY. Default 1024. */
  maxPending?: number;
}

/** The database store behind DbSession, for direct use: JSON text in and out; gc deletes expired rows in batches of 1000. */
export declare class DbStore extends AsyncStore {
  constructor(options?: DbStoreOptions);
}

/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** How this binary was built: 'release' or 'debug' (`npm pack` refuses a debug one). */
export declare function buildProfile(): string

/** Most bytes of JSON per session when a store's `maxBytes` is not given (1 MiB). */
export declare const DEFAULT_MAX_BYTES: number

/**
 * A fresh session id from the operating system's secure random source: `length`
 * characters of `[A-Za-z0-9_]` (as ThinkJS 2's `cookie.length`), 32 when not given (190
 * bits), never fewer than 22 (130 bits).
 */
export declare function generateId(length?: number | undefined | null): string

/** True when `id` may be used as a session id: `[A-Za-z0-9_-]`, 8 to 128 characters. */
export declare function isValidId(id: string): boolean

/**
 * The longest session id, and so the longest session cookie, that is looked up; a
 * longer one gets a fresh session.
 */
export declare const MAX_ID_LENGTH: number

/**
 * `value` signed with `secret` in ThinkJS 2's cookie format: `value.` followed by the
 * HMAC-SHA256 in base64 without padding.
 */
export declare function sign(value: string, secret: string): string

/**
 * Sets key `name` to `value` (JSON text; `"null"` removes the key) and the expiry to now
 * + `maxAgeMs`, creating the session when missing; a null `name` only sets the expiry.
 * Done when the store has it (G1), merged into what others wrote (G2).
 */
export declare function storeApply(slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number): void | Promise<void>

/** Closes the store's connections (a database pool); every later call fails. */
export declare function storeClose(slot: number): Promise<void>

export declare function storeDestroy(slot: number, id: string): void | Promise<void>

/** Removes expired sessions off the JavaScript thread (G7); resolves with how many went. */
export declare function storeGc(slot: number): Promise<number>

/** True when every call of the store but gc answers synchronously (the memory store). */
export declare function storeIsSync(slot: number): boolean

/**
 * The live session's data (JSON text), and whether the read also moved the expiry
 * forward (less than `autoUpdateRate` of the lifetime was left); null when none.
 */
export declare function storeLoad(slot: number, id: string, autoUpdateRate: number): Loaded | null | Promise<Loaded | null>

/**
 * One key of the live session: its value (JSON text, or null when the session has no
 * such key) and whether the read moved the expiry forward; null when there is no live
 * session. A store that keeps keys apart (memory) reads nothing else.
 */
export declare function storeLoadKey(slot: number, id: string, name: string, autoUpdateRate: number): LoadedKey | null | Promise<LoadedKey | null>

/**
 * Opens the store `kind` ('memory', 'file', 'redis' or 'db') with its options as JSON
 * text (the option names of the store's JS peer) and returns its slot. Nothing connects
 * until the first call.
 */
export declare function storeOpen(kind: string, options: string): number

/** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
export declare function storeRename(slot: number, from: string, to: string): boolean | Promise<boolean>

/** Sessions the store holds, live or not yet collected, where it can tell at no cost. */
export declare function storeSize(slot: number): number | null

/**
 * Moves the expiry of a live session to now + `maxAgeMs`, creating nothing; false when
 * there is none (a read-only request's refresh must not bring back a session moved or
 * cleared meanwhile).
 */
export declare function storeTouch(slot: number, id: string, maxAgeMs: number): boolean | Promise<boolean>

/**
 * The value of a cookie `sign` made with one of `secrets` (a secret or a list: the first
 * signs, any verifies), or null when the signature is missing, truncated or foreign.
 * Signatures are compared in constant time.
 */
export declare function unsign(cookie: string, secrets: string | string[]): string | null
