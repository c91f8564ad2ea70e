/* Typings of `think-session-native/extend`, the drop-in for think-session 1.1.6 in a ThinkJS
 * 3/4 app's src/config/extend.js: `module.exports = [require('think-session-native/extend')]`. */

/**
 * Per-call options of `session()`: another session type's name, or keys merged into the
 * session config for this request (`maxAge`, `cookie` options, `type`, ...). The request's
 * handle takes them and the cookie is sent again with them.
 */
export type SessionCallOptions =
  | string
  | {
      type?: string;
      /** Lifetime in ms, or a string such as '2h'. */
      maxAge?: number | string;
      /** Cookie options (path, domain, secure, sameSite, ...) over `config('cookie')`. */
      cookie?: Record<string, unknown>;
      [key: string]: unknown;
    };

/** `session()` as the extend adds it to ThinkJS's context and controller. */
export interface SessionMethods {
  /** The whole session data object. */
  session(name?: undefined, value?: undefined, options?: SessionCallOptions): Promise<Record<string, any>>;
  /** One value, undefined when unset. */
  session(name: string, value?: undefined, options?: SessionCallOptions): Promise<any>;
  /** Clears the session. */
  session(name: null, value?: undefined, options?: SessionCallOptions): Promise<void>;
  /** Sets one value (null removes the key, with this package's handles). */
  session(name: string, value: unknown, options?: SessionCallOptions): Promise<void>;
}

/** ThinkJS extend: `session()` on `ctx` and on controllers (which use `this.ctx`'s). */
export declare const context: SessionMethods;
export declare const controller: SessionMethods;

declare module 'thinkjs' {
  interface Context extends SessionMethods {}
  interface Controller extends SessionMethods {}
}
