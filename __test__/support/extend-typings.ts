// Compiled by extend.test.js: a controller as a ThinkJS app in TypeScript writes it, with
// think-session-native/extend in src/config/extend.js.
import { context, controller, type SessionMethods } from 'think-session-native/extend';
import type { Context, Controller } from 'thinkjs';

export async function login(self: Controller, ctx: Context): Promise<number> {
  const all: Record<string, any> = await self.session();
  const user: unknown = await self.session('user');
  await self.session('user', { name: 'ann' });
  await self.session('user', null);
  await self.session('short', 'lived', { maxAge: '2h', cookie: { path: '/admin' } });
  await ctx.session('cart', [1, 2], 'file');
  await ctx.session(null);
  // @ts-expect-error a name is a string
  await self.session(1, 'x');
  // @ts-expect-error clearing takes no value
  await ctx.session(null, 'x');
  const methods: SessionMethods[] = [context, controller];
  return Object.keys(all).length + methods.length + (user ? 1 : 0);
}
