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
  /** Removes expired sessions; resolves with how many went. */
  gc(): Promise<number>;
}

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
  /** Merges a JSON object of changes (null removes a key) and sets the expiry to now + maxAgeMs. */
  apply(id: string, changes: string, maxAgeMs: number): void;
  destroy(id: string): void;
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
  apply(id: string, changes: string, maxAgeMs: number): Promise<void>;
  destroy(id: string): Promise<void>;
  gc(): Promise<number>;
}
