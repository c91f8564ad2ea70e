'use strict';
// The memory store shared by an app's workers (an LMDB map on /dev/shm), across real
// processes: writes of different keys from two processes all survive, a writer SIGKILLed
// mid-burst loses no acknowledged write and leaves the store readable and writable, the
// entry bound holds across processes, and the sessions outlive every worker.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { SharedMemoryStore, MemorySession, generateId } = require('..');
const { sharesMemory, sharedMemoryPath } = require('../lib/stores.js');

const ROOT = '/dev/shm/tsn-test-shared-memory';
const HOUR = 3600000;
const folder = (name) => path.join(ROOT, name);

// A child process that opens the store at `dir` and runs `body` (with `store` and `id` in
// scope); it prints what it acknowledges, one line each.
function child(dir, body, options = {}) {
  const script = `const { SharedMemoryStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const store = new SharedMemoryStore(${JSON.stringify({ path: dir, ...options })});
    (async () => { ${body} })().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let rest = '';
  proc.stdout.on('data', (chunk) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    lines.push(...parts);
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, lines })));
  return { proc, lines, exited };
}

before(() => fs.rmSync(ROOT, { recursive: true, force: true }));
after(() => fs.rmSync(ROOT, { recursive: true, force: true }));

describe('the shared memory store across processes', () => {
  it('keeps the keys two processes write into one session at once', async () => {
    const dir = folder('two-writers');
    const id = generateId();
    const write = (prefix) =>
      child(
        dir,
        `for (let n = 0; n < 200; n++) await store.apply(${JSON.stringify(id)}, '${prefix}' + n, String(n), ${HOUR});`,
      );
    const results = await Promise.all([write('a').exited, write('b').exited]);
    assert.deepEqual(
      results.map((r) => r.code),
      [0, 0],
    );
    const data = JSON.parse(new SharedMemoryStore({ path: dir }).load(id, 0).data);
    assert.equal(Object.keys(data).length, 400);
    assert.equal(data.a199, 199);
    assert.equal(data.b0, 0);
  });

  it('loses no acknowledged write of a writer killed mid-burst, and goes on', async () => {
    const dir = folder('killed');
    const id = generateId();
    const blob = JSON.stringify('x'.repeat(20000));
    const writer = child(
      dir,
      `for (let n = 0; ; n++) { await store.apply(${JSON.stringify(id)}, 'k' + (n % 50), ${JSON.stringify(blob)}, ${HOUR}); await store.apply(${JSON.stringify(id)}, 'n', String(n), ${HOUR}); console.log(n); }`,
      { maxBytes: 4 << 20 },
    );
    while (writer.lines.length < 200) await new Promise((r) => setTimeout(r, 5));
    writer.proc.kill('SIGKILL');
    const { signal, lines } = await writer.exited;
    assert.equal(signal, 'SIGKILL');
    const store = new SharedMemoryStore({ path: dir, maxBytes: 4 << 20 });
    const data = JSON.parse(store.load(id, 0).data);
    const acknowledged = Number(lines[lines.length - 1]);
    assert.ok(data.n >= acknowledged, `n ${data.n} >= last acknowledged ${acknowledged}`);
    // the lock the writer may have held is taken over
    store.apply(id, 'after', 'true', HOUR);
    assert.equal(JSON.parse(store.load(id, 0).data).after, true);
  });

  it('holds maxEntries across processes, the session written longest ago going first', async () => {
    const dir = folder('bounded');
    const first = generateId();
    const store = new SharedMemoryStore({ path: dir, maxEntries: 50 });
    store.apply(first, 'k', '1', HOUR);
    const fill = (n) =>
      child(
        dir,
        `for (let i = 0; i < ${n}; i++) await store.apply(require('crypto').randomUUID(), 'k', '1', ${HOUR});`,
        {
          maxEntries: 50,
        },
      ).exited;
    await Promise.all([fill(60), fill(60)]);
    assert.equal(store.size, 50);
    assert.equal(store.load(first, 0), null, 'the oldest session went');
  });

  it('keeps the sessions when every worker has exited', async () => {
    const dir = folder('restart');
    const id = generateId();
    const { code } = await child(dir, `await store.apply(${JSON.stringify(id)}, 'user', '"ann"', ${HOUR});`).exited;
    assert.equal(code, 0);
    const later = await child(dir, `console.log(store.load(${JSON.stringify(id)}, 0).data);`).exited;
    assert.deepEqual(JSON.parse(later.lines[0]), { user: 'ann' });
  });
});

describe('which memory store MemorySession uses', () => {
  it('a cluster worker of several shares one; one process keeps its own', () => {
    assert.equal(sharesMemory(undefined, true), true);
    assert.equal(sharesMemory(undefined, false), false);
    assert.equal(sharesMemory(false, true), false, '`shared: false` keeps the per-process store');
    assert.equal(sharesMemory(true, false), true);
    assert.equal(MemorySession.kindOf({}), 'memory', 'this test process is not a cluster worker');
    assert.equal(MemorySession.kindOf({ shared: true }), 'shared');
  });

  it("is named after the app's root, per user, on /dev/shm", () => {
    const a = sharedMemoryPath('/srv/app-a');
    assert.equal(sharedMemoryPath('/srv/app-a/'), a);
    assert.notEqual(sharedMemoryPath('/srv/app-b'), a);
    assert.match(a, new RegExp(`^/dev/shm/think-session-native-${process.getuid()}/[0-9a-f]{16}$`));
  });

  it('a handle with shared: true reads what another process wrote', async () => {
    const dir = folder('handle');
    const id = generateId();
    await child(dir, `await store.apply(${JSON.stringify(id)}, 'user', '"ann"', ${HOUR});`).exited;
    const session = new MemorySession({ shared: true, path: dir, cookie: id });
    assert.equal(await session.get('user'), 'ann');
  });

  it('refuses a folder another user owns, and impossible options', () => {
    const dir = folder('foreign');
    fs.mkdirSync(dir, { recursive: true });
    fs.chownSync(dir, 65534, 65534);
    assert.throws(() => new SharedMemoryStore({ path: dir }), { code: 'ERR_SESSION_OPTIONS', message: /uid 65534/ });
    assert.throws(() => new SharedMemoryStore({ path: folder('zero'), maxEntries: 0 }), {
      code: 'ERR_SESSION_OPTIONS',
    });
    assert.throws(() => new SharedMemoryStore({ path: folder('big'), maxBytes: 512 << 20 }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /mapBytes/,
    });
  });
});
