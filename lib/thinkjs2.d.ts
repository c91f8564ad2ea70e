/* Typings of `think-session-native/thinkjs2`. Requiring it (from a ThinkJS 2 bootstrap file)
 * installs the native session adapters for `type` 'memory', 'file', 'db' and 'redis'. */

/** Installs the native adapters into a running ThinkJS 2 app (`think`); installing twice changes nothing. */
export declare function install(think: object): void;

/** A session as a custom adapter loads and saves it. */
export interface SessionRecord {
  /** The session's data object. */
  data: Record<string, unknown>;
  /** When it expires, in ms since the epoch. */
  expire: number;
}

/** ThinkJS 2's session adapter interface, as the native adapters implement it. */
interface ThinkJs2SessionAdapter {
  /** One value, or the whole data object when `name` is empty. */
  get(name?: string): Promise<any>;
  /** Stores `value` (null removes the key) before resolving; `timeout` (seconds) gives the session a new lifetime. */
  set(name: string, value: unknown, timeout?: number): Promise<void>;
  /** Removes one key, or the whole session when `name` is empty. */
  delete(name?: string): Promise<void>;
  /** Called by ThinkJS 2 after the response: moves the expiry of a session this request read. */
  flush(): Promise<void>;
  /** Removes expired sessions; resolves with how many went. */
  gc(now?: number): Promise<number>;
  /** Moves the session to a fresh id and signed cookie, leaving the old id with nothing; resolves with the new id. */
  regenerate(): Promise<string>;
}

export declare class MemoryAdapter implements ThinkJs2SessionAdapter {
  constructor(conf?: object);
  get(name?: string): Promise<any>;
  set(name: string, value: unknown, timeout?: number): Promise<void>;
  delete(name?: string): Promise<void>;
  flush(): Promise<void>;
  gc(now?: number): Promise<number>;
  regenerate(): Promise<string>;
}
export declare class FileAdapter extends MemoryAdapter {}
export declare class DbAdapter extends MemoryAdapter {}
export declare class RedisAdapter extends MemoryAdapter {}

/**
 * The base of a custom adapter (`src/common/adapter/session/<name>.js`): implement `load`
 * and `save`; get, set, delete, flush and gc come with it.
 */
export declare class SessionAdapter implements ThinkJs2SessionAdapter {
  constructor(conf?: object);
  /** The session id of this request. */
  readonly cookie: string;
  /** The session's lifetime in seconds (session.js `timeout`). */
  timeout: number;
  /** The record stored under `id`, or null. */
  load(id: string): Promise<SessionRecord | null>;
  /** Stores `record` under `id`; null removes it. */
  save(id: string, record: SessionRecord | null): Promise<void>;
  get(name?: string): Promise<any>;
  set(name: string, value: unknown, timeout?: number): Promise<void>;
  delete(name?: string): Promise<void>;
  flush(): Promise<void>;
  gc(now?: number): Promise<number>;
  /** Saves the record under a fresh id, then removes the old one; override when the store can move it in one step. */
  regenerate(): Promise<string>;
}

/**
 * Session regeneration for ThinkJS 2: `await regenerate(this.http)` in a controller at login
 * or a change of privilege. Resolves with the new id.
 */
export declare function regenerate(http: object): Promise<string>;
