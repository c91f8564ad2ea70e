'use strict';
// Session data private on disk: the file store and SQLite make folders 0700 and files 0600
// whatever the umask, refuse a folder another user owns or may write in (or a link) with a
// message that names the fix, never read or write a session through a planted symbolic
// link, and close an earlier version's folder and files to others. Runs as root in CI;
// `nobody` stands for the host's other users.
const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { FileSession, FileStore, DbStore, generateId, sign } = require('..');
const { prepareThinkjs2App, bootApp } = require('./support/app');
const { Client } = require('./support/http');

const NOBODY = 65534;
const HOUR = 3600000;
const tempDir = (name) => fs.mkdtempSync(path.join(os.tmpdir(), `tsn-privacy-${name}-`));
const mode = (p) => fs.lstatSync(p).mode & 0o777;
const liveRecord = (data) => JSON.stringify({ expires: Date.now() + HOUR, maxAge: HOUR, data });

// A folder as another user leaves it: owned by nobody, with `perm`, holding a planted session.
function foreignFolder(dir, perm, id) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, id), liveRecord({ user: 'admin' }));
  fs.chownSync(dir, NOBODY, NOBODY);
  fs.chmodSync(dir, perm);
}

async function withUmask(mask, fn) {
  const old = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

before(() => {
  assert.equal(process.getuid(), 0, 'these tests change owners: run them as root (CI does)');
});

describe('owner-only folders and files', () => {
  for (const mask of [0o000, 0o022]) {
    it(`FileSession makes folders 0700 and files 0600 with umask ${mask.toString(8).padStart(3, '0')}`, async () => {
      await withUmask(mask, async () => {
        const base = tempDir('modes');
        const sessionPath = path.join(base, 'runtime', 'session');
        const id = generateId();
        await new FileSession({ sessionPath, cookie: id }).set('user', 'ann');
        assert.equal(mode(sessionPath), 0o700);
        assert.equal(mode(path.dirname(sessionPath)), 0o700);
        assert.equal(mode(path.join(sessionPath, id)), 0o600);
        // ThinkJS 2's layout: the prefix folders too
        const nested = new FileStore({ sessionPath: path.join(base, 'tj2'), format: 'thinkjs2', pathDepth: 2 });
        await nested.apply(id, 'k', '1', HOUR);
        const prefix = path.join(base, 'tj2', id[0], id[1]);
        assert.equal(mode(path.dirname(prefix)), 0o700);
        assert.equal(mode(prefix), 0o700);
        assert.equal(mode(path.join(prefix, `${id}.json`)), 0o600);
      });
    });

    it(`SQLite's database, -wal and -shm files are 0600 with umask ${mask.toString(8).padStart(3, '0')}`, async () => {
      await withUmask(mask, async () => {
        const database = path.join(tempDir('sqlite'), 'db', 'sessions.sqlite');
        const store = new DbStore({ type: 'sqlite', database });
        await store.apply(generateId(), 'k', '1', HOUR);
        assert.equal(mode(path.dirname(database)), 0o700);
        for (const file of [database, `${database}-wal`, `${database}-shm`]) assert.equal(mode(file), 0o600, file);
        await store.close();
      });
    });
  }

  it("tightens an earlier version's folder when the store opens, and its files by gc", async () => {
    const sessionPath = path.join(tempDir('upgrade'), 'session');
    const id = generateId();
    fs.mkdirSync(sessionPath, { mode: 0o755 });
    fs.chmodSync(sessionPath, 0o755);
    fs.writeFileSync(path.join(sessionPath, id), liveRecord({ user: 'ann' }), { mode: 0o644 });
    fs.chmodSync(path.join(sessionPath, id), 0o644);
    const store = new FileStore({ sessionPath });
    assert.equal(mode(sessionPath), 0o700);
    await store.gc();
    assert.equal(mode(path.join(sessionPath, id)), 0o600);
    assert.deepEqual(JSON.parse((await store.load(id, 0)).data), { user: 'ann' });
  });
});

describe("folders that are not the process user's alone", () => {
  it('refuses a folder another user owns when the handle is made, naming owner, mode and fix', () => {
    const sessionPath = path.join(tempDir('nobody'), 'session');
    const id = generateId();
    foreignFolder(sessionPath, 0o700, id);
    assert.throws(
      () => new FileSession({ sessionPath, cookie: id }),
      (err) => {
        assert.equal(err.code, 'ERR_SESSION_OPTIONS');
        for (const part of [sessionPath, `uid ${NOBODY}`, 'mode 0700', `chown 0 ${sessionPath}`, 'trustFolder']) {
          assert.ok(err.message.includes(part), `${part} in: ${err.message}`);
        }
        return true;
      },
    );
  });

  it('refuses a folder others may write in, and never serves the session planted there', async () => {
    const base = tempDir('open');
    const sessionPath = path.join(base, 'session');
    const id = generateId();
    // made after the store was opened: every call rejects
    const store = new FileStore({ sessionPath });
    foreignFolder(sessionPath, 0o777, id);
    await assert.rejects(store.load(id, 0), (err) => {
      assert.equal(err.code, 'ERR_SESSION_STORE');
      assert.match(err.message, /mode 0777.*trustFolder/s);
      return true;
    });
    await assert.rejects(store.apply(generateId(), 'k', '1', HOUR), { code: 'ERR_SESSION_STORE' });
    assert.deepEqual(fs.readdirSync(sessionPath), [id], 'nothing was written there');
    // one of ours that others may write in is refused too (they may have planted files)
    const own = path.join(base, 'own');
    fs.mkdirSync(own);
    fs.chmodSync(own, 0o777);
    assert.throws(() => new FileStore({ sessionPath: own }), { code: 'ERR_SESSION_OPTIONS', message: /0777/ });
  });

  it('refuses a folder that is a symbolic link', () => {
    const base = tempDir('link');
    fs.mkdirSync(path.join(base, 'real'), { mode: 0o700 });
    fs.symlinkSync(path.join(base, 'real'), path.join(base, 'session'));
    assert.throws(() => new FileStore({ sessionPath: path.join(base, 'session') }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /symbolic link/,
    });
  });

  it('uses such a folder with trustFolder: true', async () => {
    const sessionPath = path.join(tempDir('trusted'), 'session');
    const id = generateId();
    foreignFolder(sessionPath, 0o777, id);
    const session = new FileSession({ sessionPath, cookie: id, trustFolder: true });
    assert.deepEqual(await session.get(), { user: 'admin' });
    assert.equal(mode(sessionPath), 0o777, 'a trusted folder is left as it is');
  });

  it("refuses SQLite's file in a folder others may write in", () => {
    const folder = tempDir('sqlite-open');
    fs.chmodSync(folder, 0o777);
    assert.throws(() => new DbStore({ type: 'sqlite', database: path.join(folder, 's.sqlite') }), {
      code: 'ERR_SESSION_OPTIONS',
      message: /mode 0777/,
    });
  });
});

describe('symbolic links in the folder', () => {
  it('a link planted under a session name is an error for that session, never followed', async () => {
    const base = tempDir('planted');
    const sessionPath = path.join(base, 'session');
    const store = new FileStore({ sessionPath });
    const ok = generateId();
    await store.apply(ok, 'k', '1', HOUR);
    const outside = path.join(base, 'outside.json');
    const record = JSON.stringify({ expires: 1, maxAge: 1, data: { admin: true } }); // expired
    fs.writeFileSync(outside, record);
    const planted = generateId();
    fs.symlinkSync(outside, path.join(sessionPath, planted));
    await assert.rejects(store.load(planted, 0), { code: 'ERR_SESSION_STORE', message: /symbolic link/ });
    await assert.rejects(store.apply(planted, 'x', '1', HOUR), { code: 'ERR_SESSION_STORE' });
    assert.equal(await store.gc(), 0, 'gc reaches nothing through the link');
    assert.equal(fs.readFileSync(outside, 'utf8'), record);
    assert.ok(fs.lstatSync(path.join(sessionPath, planted)).isSymbolicLink());
    assert.deepEqual(JSON.parse((await store.load(ok, 0)).data), { k: 1 }, 'other sessions are served');
  });
});

describe('ThinkJS 2 file sessions in the shared temporary folder', () => {
  let dir;
  before(() => {
    dir = prepareThinkjs2App({ name: 'privacy' });
  });

  it('refuses <tmpdir>/thinkjs made by another user, with the fix in the log', async () => {
    const tmp = tempDir('tj2-tmp');
    const folder = path.join(tmp, 'thinkjs');
    const id = generateId();
    fs.mkdirSync(path.join(folder, id[0], id[1]), { recursive: true });
    const planted = path.join(folder, id[0], id[1], `${id}.json`);
    fs.writeFileSync(planted, JSON.stringify({ data: { user: 'admin' }, expire: Date.now() + HOUR, timeout: 3600 }));
    for (const p of [folder, path.join(folder, id[0]), path.join(folder, id[0], id[1])]) {
      fs.chownSync(p, NOBODY, NOBODY);
      fs.chmodSync(p, 0o777);
    }
    const app = await bootApp(dir, {
      env: { TSN_TYPE: 'file', TSN_FILE_PATH: 'default', TSN_SECRET: 's', TMPDIR: tmp },
    });
    try {
      const client = new Client(app.url);
      client.jar.set('thinkjs', encodeURIComponent(sign(id, 's')));
      const res = await client.request('/index/all');
      assert.equal(res.status, 500, 'the planted session is not served');
      const logged = () => app.output.join('');
      for (let i = 0; i < 50 && !logged().includes('trustFolder'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(logged().includes(folder) && logged().includes('trustFolder'), logged());
    } finally {
      app.stop();
    }
    assert.equal(JSON.parse(fs.readFileSync(planted, 'utf8')).data.user, 'admin', 'and not changed');
  });
});
