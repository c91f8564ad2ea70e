// Compiled by `npm run lint` (tsc --noEmit --strict): the typings describe what a user writes.
import {
  DbSession,
  DbStore,
  FileSession,
  FileStore,
  MemorySession,
  MemoryStore,
  SharedMemoryStore,
  NativeSession,
  type Loaded,
  type LoadedKey,
  DEFAULT_MAX_BYTES,
  MAX_ID_LENGTH,
  RedisSession,
  RedisStore,
  SessionError,
  generateId,
  sign,
  unsign,
  isValidId,
  regenerate,
} from '..';

const session: typeof NativeSession = MemorySession;
export const adapter = {
  type: 'memory',
  common: { cookie: { name: 'thinkjs' }, maxAge: '1d' },
  memory: { handle: session, maxEntries: 100000, maxBytes: 65536 },
};

export async function use(ctx: object): Promise<number> {
  const handle = new MemorySession({ cookie: generateId(), maxAge: 3600000 }, ctx, { name: 'thinkjs' });
  await handle.set('user', { name: 'ann' });
  const user: unknown = await handle.get('user');
  await handle.update();
  const renamed: string = await regenerate(ctx);
  const moved: boolean = new MemoryStore().rename(renamed, generateId());
  await handle.delete();
  const shared = new SharedMemoryStore({ path: '/dev/shm/app-sessions', maxEntries: 10, mapBytes: 1 << 26 });
  shared.apply(handle.id, 'a', '1', 1000);
  new MemorySession({ shared: true, path: '/dev/shm/app-sessions', cookie: handle.id });
  const store = new MemoryStore({ maxEntries: 10 });
  store.apply(handle.id, 'a', '1', 1000);
  store.apply(handle.id, null, null, 1000);
  const touched: boolean = store.touch(handle.id, 1000);
  const loaded: Loaded | null = store.load(handle.id, 0.5);
  const text = loaded && !loaded.refreshed ? loaded.data : null;
  const key: string | null = store.loadKey(handle.id, 'a', 0.5)?.value ?? null;
  return (user && text && key && moved && touched && isValidId(handle.id) ? 1 : 0) + (await handle.gc()) + store.size;
}

export function codeOf(err: SessionError): string {
  return err.code;
}

export async function useFiles(): Promise<number> {
  const handle = new FileSession({ sessionPath: '/tmp/sessions', format: 'thinkjs3', maxAge: '1d' });
  await handle.set('k', 1);
  const store = new FileStore({ sessionPath: '/tmp/sessions', format: 'thinkjs2', pathDepth: 2 });
  await store.apply(handle.id, 'a', '1', 1000);
  const loaded: Loaded | null = await store.load(handle.id, 0.5);
  const one: LoadedKey | null = await store.loadKey(handle.id, 'a', 0.5);
  return (loaded && one && one.value ? 1 : 0) + (await store.gc());
}

export async function useRedis(): Promise<number> {
  const single = new RedisSession({ host: '127.0.0.1', port: 6379, db: 2, keyPrefix: 'sess:', commandTimeout: '2s' });
  await single.set('k', 1);
  const cluster = { handle: RedisSession, cluster: [{ host: '10.0.0.1', port: 7000 }, 'redis://10.0.0.2:7000'] };
  const sentinel = { handle: RedisSession, sentinels: [{ host: '10.0.0.3', port: 26379 }], name: 'mymaster' };
  const store = new RedisStore({ url: 'rediss://cache.example:6380/1', prefix: 'sess:', format: 'thinkjs2' });
  await store.apply(single.id, 'a', '1', 1000);
  return (cluster.cluster.length + sentinel.sentinels.length) * ((await store.load(single.id, 0)) ? 1 : 0);
}

export async function useDb(): Promise<number> {
  const mysql = new DbSession({ type: 'mysql', host: '127.0.0.1', user: 'root', database: 'app', prefix: 'think_' });
  await mysql.set('k', 1);
  const pg = { handle: DbSession, url: 'postgres://app@db.example/app', poolSize: 4, queryTimeout: '2s' };
  const store = new DbStore({ type: 'sqlite', database: '/tmp/sessions.sqlite', createTable: true });
  await store.apply(mysql.id, 'a', '1', 1000);
  return pg.poolSize + (await store.gc());
}

// ThinkJS 2: a custom adapter on the package's base class.
import { SessionAdapter, install, regenerate as regenerate2, type SessionRecord } from '../lib/thinkjs2.js';

const records = new Map<string, SessionRecord>();
export class MapAdapter extends SessionAdapter {
  async load(id: string): Promise<SessionRecord | null> {
    return records.get(id) ?? null;
  }
  async save(id: string, record: SessionRecord | null): Promise<void> {
    if (record) records.set(id, record);
    else records.delete(id);
  }
}
export const signed: string = sign(generateId(32), 'secret');
export const unsigned: string | null = unsign(signed, ['new', 'secret']);
export const login2 = async (http: object): Promise<string> => regenerate2(http);
export const strict = { handle: MemorySession, strict: false, maxCookieLength: 64 };
export const installInto = (think: object): void => install(think);
export const limits: number = DEFAULT_MAX_BYTES + MAX_ID_LENGTH;
