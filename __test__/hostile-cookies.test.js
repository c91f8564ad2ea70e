'use strict';
// Thousands of random and hostile session cookies thrown at running ThinkJS apps (4.x with
// FileSession, under think-session and under the drop-in; 2.x with signed file sessions):
// every answer must be a normal response with either a fresh session or the right one, and
// nothing may appear outside the store.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { EXTENDS, prepareApp, prepareThinkjs2App, bootApp } = require('./support/app');
const { Client } = require('./support/http');
const { sign } = require('..');

const REQUESTS = 3000;
const CONCURRENCY = 16;
const ID = /^[A-Za-z0-9_-]{8,128}$/;
const SECRET = 'hostile-secret';

// Random source seeded per run and printed, so a failure can be replayed (TSN_FUZZ_SEED).
const seed = Number(process.env.TSN_FUZZ_SEED || crypto.randomInt(2 ** 31));
let state = seed;
const random = () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state / 2 ** 31;
};
const pick = (list) => list[Math.floor(random() * list.length)];
const int = (n) => Math.floor(random() * n);

// Characters an HTTP header may carry (Node refuses the others before sending).
const headerChar = () => {
  const r = random();
  if (r < 0.6) return String.fromCharCode(0x20 + int(0x5f));
  if (r < 0.9) return String.fromCharCode(0x80 + int(0x80));
  return '\t';
};
const randomText = (max) => Array.from({ length: int(max) + 1 }, headerChar).join('');
const alnum = (n) =>
  Array.from({ length: n }, () => pick('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-')).join('');

// One hostile cookie value: `known` are real ids of this app (to be mangled).
function hostile(known, signed) {
  const id = known.length ? pick(known) : alnum(32);
  const kinds = [
    () => randomText(64),
    () => randomText(5000),
    () => `../${'../'.repeat(int(8))}${pick(['etc/passwd', 'runtime/session/x', 'x.json', ''])}`,
    () => pick(['%2e%2e%2f', '..\\', '....//', '/', '\\\\?\\', '%00', '\u00c0\u00ae']).repeat(1 + int(6)) + alnum(8),
    () => alnum(1 + int(200)), // valid shapes and lengths around the limits: unknown ids
    // (not a space or quotes around a real id: cookie parsers trim those, and it is the real id)
    () => `${id}${pick(['/', '.', '..', '%', '*', '?', '\u00e9', '"'])}`,
    () => id.slice(0, int(id.length)),
    () => `${id}${alnum(1 + int(4))}`,
    () => `${alnum(22)}' OR '1'='1`,
    () => `${alnum(10)}*`,
    () => `"${alnum(32)}"`,
    () => `${id}.${crypto.randomBytes(32).toString('base64').replace(/=+$/, '')}`,
    () => (signed ? `${sign(alnum(32), SECRET)}` : `${alnum(32)}.${alnum(43)}`), // signed, unknown id
    () => (signed ? `${sign(id, 'another-secret')}` : `${id}.`),
    () => (signed ? `${sign(id, SECRET).slice(0, -1 - int(20))}` : id.toUpperCase()),
    () => '',
  ];
  return pick(kinds)();
}

// Every file under `dir` (relative), skipping the folders given.
function listFiles(dir, skip) {
  const out = [];
  const walk = (folder) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (skip.some((s) => full === s)) continue;
      if (entry.isDirectory()) walk(full);
      else out.push(path.relative(dir, full));
    }
  };
  walk(dir);
  return out.sort();
}

async function pool(count, work) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

function runHostile({ name, prepare, env, signed, sessionFiles }) {
  describe(`hostile cookies: ${name} (seed ${seed})`, () => {
    let app;
    let dir;
    before(async () => {
      dir = prepare();
      app = await bootApp(dir, { env });
    });
    after(() => app && app.stop());

    it(`${REQUESTS} random and hostile cookies: a normal answer and a fresh or the right session each`, async () => {
      const skip = [path.join(dir, 'runtime'), path.join(dir, 'node_modules')];
      const filesBefore = listFiles(dir, skip);
      const issued = new Set();
      const idOf = (cookie) => {
        const value = decodeURIComponent(cookie);
        return signed ? value.slice(0, value.lastIndexOf('.')) : value;
      };
      // Real users whose sessions must come through untouched: [client, visits so far].
      const users = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = new Client(app.url);
          assert.deepEqual((await c.request('/index/counter')).body, { n: 1 });
          issued.add(idOf(c.session));
          return { client: c, n: 1 };
        }),
      );
      const known = users.map((u) => idOf(u.client.session));
      const failures = [];
      await pool(REQUESTS, async (i) => {
        if (i % 10 === 0) {
          const user = users[(i / 10) % users.length]; // never two requests of one user at once
          const res = await user.client.request('/index/counter');
          user.n += 1;
          if (res.status !== 200 || res.body.n !== user.n) failures.push(`user ${i}: ${JSON.stringify(res.body)}`);
          return;
        }
        const value = hostile(known, signed);
        const c = new Client(app.url);
        const res = await c.request('/index/counter', { rawCookie: `thinkjs=${value}` });
        const sent = res.setCookies.filter((line) => line.startsWith('thinkjs='));
        const what = JSON.stringify(value.slice(0, 60));
        if (res.status !== 200) failures.push(`${what}: status ${res.status}`);
        else if (res.body.n !== 1) failures.push(`${what}: not a fresh session: ${JSON.stringify(res.body)}`);
        else if (sent.length !== 1) failures.push(`${what}: ${sent.length} session cookies sent`);
        else {
          const id = idOf(c.session);
          if (!ID.test(id) || known.includes(id) || c.session === value) failures.push(`${what}: cookie ${c.session}`);
          issued.add(id);
        }
      });
      assert.deepEqual(
        failures
          .filter((f) => !f.startsWith('user'))
          .concat(failures)
          .slice(0, 10),
        [],
        `${failures.length} bad answers (TSN_FUZZ_SEED=${seed})`,
      );
      for (const user of users) {
        assert.deepEqual((await user.client.request('/index/counter')).body, { n: user.n + 1 }, 'real users unharmed');
      }
      const stored = sessionFiles(dir);
      const stray = stored.filter((id) => !issued.has(id));
      assert.deepEqual(stray, [], 'the store holds only sessions the app issued');
      assert.equal(stored.length, issued.size, 'one session per issued id');
      assert.deepEqual(listFiles(dir, skip), filesBefore, 'nothing written outside the runtime folder');
      const runtime = listFiles(path.join(dir, 'runtime'), [path.join(dir, 'runtime', 'session')]);
      assert.deepEqual(
        runtime.filter((file) => !/^(logs?|cache|config)\//.test(file)),
        [],
        'nothing in the runtime folder but the store',
      );
    });
  });
}

for (const extend of EXTENDS) {
  runHostile({
    name: `thinkjs 4.0.0 with ${extend}, FileSession`,
    prepare: () =>
      prepareApp({
        name: 'hostile-file',
        thinkjs: '4.0.0',
        extend,
        session: `{ type: 'file', common: { cookie: { name: 'thinkjs' } }, file: { handle: require('think-session-native').FileSession, sessionPath: path.join(think.ROOT_PATH, 'runtime/session'), maxAge: '1d' } }`,
      }),
    signed: false,
    sessionFiles: (dir) => fs.readdirSync(path.join(dir, 'runtime', 'session')).sort(),
  });
}

runHostile({
  name: 'thinkjs 2.2.25, signed file sessions',
  prepare: () => prepareThinkjs2App({ name: 'hostile-thinkjs2' }),
  env: { TSN_TYPE: 'file', TSN_SECRET: SECRET },
  signed: true,
  sessionFiles: (dir) => {
    const out = [];
    const walk = (folder) => {
      for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(path.join(folder, entry.name));
        else out.push(entry.name.replace(/\.json$/, ''));
      }
    };
    walk(path.join(dir, 'runtime', 'session'));
    return out.sort();
  },
});
