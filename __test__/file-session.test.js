'use strict';
// FileSession at the handle level: compatibility with think-session-file (both ways), a
// writer killed mid-burst, and gc of 100,000 expired files.
const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { EventEmitter } = require('events');
const { spawn } = require('child_process');
const ThinkSessionFile = require('think-session-file');
const { FileSession, FileStore, generateId } = require('..');

const ID = /^[A-Za-z0-9_-]{8,128}$/;
const tempDir = (name) => fs.mkdtempSync(path.join(os.tmpdir(), `tsn-file-${name}-`));
const peerCtx = () => ({ res: new EventEmitter(), cookie() {} });
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };
const value = { name: 'ann', big: 2 ** 53 - 1, f: 0.1, text: 'ü 😀 "q"', list: [1, { a: null }] };

describe('FileSession and think-session-file', () => {
  it('reads the sessions think-session-file wrote', async () => {
    const sessionPath = tempDir('peer-writes');
    const id = generateId();
    const peer = new ThinkSessionFile({ sessionPath, cookie: id, maxAge: 3600000 }, peerCtx(), cookieOptions);
    await peer.set('user', value);
    await peer.set('n', 7);
    await peer.flush(); // what the peer does on 'finish'
    const ours = new FileSession({ sessionPath, cookie: id, maxAge: 3600000 });
    assert.deepEqual(await ours.get(), { user: value, n: 7 });
    await ours.set('n', 8);
    assert.deepEqual(await new FileSession({ sessionPath, cookie: id }).get(), { user: value, n: 8 });
  });

  it('writes into a session whose keys hold lone surrogates (JSON.stringify escapes them)', async () => {
    const sessionPath = tempDir('lone-surrogates');
    const id = generateId();
    const peer = new ThinkSessionFile({ sessionPath, cookie: id, maxAge: 3600000 }, peerCtx(), cookieOptions);
    await peer.set('\ud800', 1);
    await peer.set('a\udfffb', 2);
    await peer.flush();
    const ours = new FileSession({ sessionPath, cookie: id, maxAge: 3600000 });
    await ours.set('n', 3);
    const expected = { '\ud800': 1, 'a\udfffb': 2, n: 3 };
    assert.deepEqual(await new FileSession({ sessionPath, cookie: id }).get(), expected);
    // a name that is not Unicode is refused, and nothing is written
    await assert.rejects(ours.set('\udc00', 4), { code: 'ERR_SESSION_VALUE' });
    assert.deepEqual(await new FileSession({ sessionPath, cookie: id }).get(), expected);
  });

  it('think-session-file reads the sessions FileSession wrote', async () => {
    const sessionPath = tempDir('we-write');
    const id = generateId();
    const ours = new FileSession({ sessionPath, cookie: id, maxAge: 3600000 });
    await ours.set('user', value);
    await ours.set('n', 1);
    const peer = new ThinkSessionFile({ sessionPath, cookie: id, maxAge: 3600000 }, peerCtx(), cookieOptions);
    assert.deepEqual(await peer.get(), { user: value, n: 1 });
    const file = JSON.parse(fs.readFileSync(path.join(sessionPath, id), 'utf8'));
    assert.deepEqual(Object.keys(file), ['expires', 'maxAge', 'data']);
    assert.equal(file.maxAge, 3600000);
  });

  it('keeps the order of un-awaited calls, and a fresh session sees its own writes', async () => {
    const sessionPath = tempDir('order');
    const id = generateId();
    const s = new FileSession({ sessionPath, cookie: id, fresh: true });
    const first = s.set('a', 1);
    await s.set('a', 2);
    await first;
    assert.equal(await s.get('a'), 2);
    assert.equal(await new FileSession({ sessionPath, cookie: id }).get('a'), 2);
    const flash = s.set('flash', 'x');
    await s.delete();
    await flash;
    assert.deepEqual(await new FileSession({ sessionPath, cookie: id }).get(), {});
  });

  it('treats an expired peer session as none, and a corrupt file too', async () => {
    const sessionPath = tempDir('expired');
    const expired = generateId();
    fs.writeFileSync(
      path.join(sessionPath, expired),
      JSON.stringify({ expires: Date.now() - 1, maxAge: 1000, data: { a: 1 } }),
    );
    const corrupt = generateId();
    fs.writeFileSync(path.join(sessionPath, corrupt), '{"expires": 99999999999999, "da');
    assert.deepEqual(await new FileSession({ sessionPath, cookie: expired }).get(), {});
    assert.deepEqual(await new FileSession({ sessionPath, cookie: corrupt }).get(), {});
    assert.equal(await new FileSession({ sessionPath, cookie: corrupt }).gc(), 2);
  });

  it('never builds a path outside sessionPath, whatever the cookie', async () => {
    const parent = tempDir('traversal');
    const sessionPath = path.join(parent, 'session');
    const forged = ['../session-evil/x', '../../x', '/etc/passwd', '..', 'a/../../b', 'x'.repeat(300), '..\\x'];
    for (const cookie of forged) {
      const s = new FileSession({ sessionPath, cookie });
      await s.set('k', 'v');
      assert.match(s.id, ID);
      assert.deepEqual(await new FileSession({ sessionPath, cookie: s.id }).get(), { k: 'v' });
    }
    assert.deepEqual(fs.readdirSync(parent), ['session']);
    assert.equal(fs.readdirSync(sessionPath).length, forged.length);
    for (const name of fs.readdirSync(sessionPath)) assert.match(name, ID);
  });

  it('rejects a missing sessionPath and an unknown format with ERR_SESSION_OPTIONS', () => {
    assert.throws(() => new FileSession({ cookie: generateId() }), { code: 'ERR_SESSION_OPTIONS' });
    assert.throws(() => new FileSession({ cookie: generateId(), sessionPath: tempDir('fmt'), format: 'xml' }), {
      code: 'ERR_SESSION_OPTIONS',
    });
  });

  it('a failing file system rejects with ERR_SESSION_STORE naming the path', async () => {
    const blocker = path.join(tempDir('blocked'), 'a-file');
    const s = new FileSession({ sessionPath: path.join(blocker, 'session'), cookie: generateId() });
    fs.writeFileSync(blocker, 'not a folder'); // after the handle: its calls fail
    assert.throws(() => new FileSession({ sessionPath: path.join(blocker, 'other'), cookie: generateId() }), {
      code: 'ERR_SESSION_OPTIONS', // known when the handle is made: the handle fails
      message: /a-file/,
    });
    await assert.rejects(s.set('k', 'v'), (err) => {
      assert.equal(err.code, 'ERR_SESSION_STORE');
      assert.match(err.message, /file store: .*a-file/);
      return true;
    });
  });
});

describe('FileStore under faults and at scale', () => {
  it('a writer killed with SIGKILL mid-burst leaves only files that parse', async () => {
    const sessionPath = tempDir('sigkill');
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const { FileStore } = require(${JSON.stringify(path.join(__dirname, '..'))});
         const store = new FileStore({ sessionPath: ${JSON.stringify(sessionPath)} });
         const ids = Array.from({ length: 20 }, (_, i) => 'burst-session-' + i);
         const blob = 'x'.repeat(200000);
         let n = 0;
         process.stdout.write('ready\\n');
         (function next() {
           Promise.all(ids.map((id) => store.apply(id, 'k' + (n++ % 4), JSON.stringify(blob + n), 60000))).then(next);
         })();`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((resolve) => writer.stdout.once('data', resolve));
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(writer.exitCode, null, 'the writer is still writing when it is killed');
    writer.kill('SIGKILL');
    await new Promise((resolve) => writer.once('exit', resolve));
    const sessions = fs.readdirSync(sessionPath).filter((name) => !name.startsWith('.'));
    assert.ok(sessions.length > 0, 'the writer wrote something before it died');
    for (const name of sessions) {
      const file = JSON.parse(fs.readFileSync(path.join(sessionPath, name), 'utf8'));
      assert.equal(typeof file.data, 'object', name);
    }
    await new FileStore({ sessionPath }).gc(); // clears the temporary files the dead writer left
    for (const name of fs.readdirSync(sessionPath)) {
      assert.doesNotThrow(() => JSON.parse(fs.readFileSync(path.join(sessionPath, name), 'utf8')), name);
    }
  });

  describe('gc of 100,000 expired files beside live ones', () => {
    const sessionPath = tempDir('gc');
    const live = Array.from({ length: 100 }, () => generateId());
    before(() => {
      const expired = JSON.stringify({ expires: Date.now() - 1000, maxAge: 1000, data: { a: 1 } });
      for (let i = 0; i < 100000; i++) fs.writeFileSync(path.join(sessionPath, `expired-${i}`), expired);
      const alive = JSON.stringify({ expires: Date.now() + 3600000, maxAge: 3600000, data: { a: 1 } });
      for (const id of live) fs.writeFileSync(path.join(sessionPath, id), alive);
      fs.writeFileSync(path.join(sessionPath, 'README.txt'), 'not a session');
    });

    it('removes exactly the expired ones, off the JS thread', async () => {
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 1);
      const removed = await new FileStore({ sessionPath }).gc();
      clearInterval(ticker);
      assert.equal(removed, 100000);
      assert.ok(ticks > 0, 'the event loop kept turning during gc');
      const left = fs.readdirSync(sessionPath).sort();
      assert.deepEqual(left, [...live, 'README.txt'].sort());
    });
  });
});
