'use strict';
// `npm start`'s example app: a second request with the first one's cookie sees the counter advanced.
const { it, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');
const { Client } = require('./support/http');
const { freePort } = require('./support/app');

let child;
after(() => child && process.kill(-child.pid, 'SIGKILL'));

it('npm start serves the example with sessions that persist', async () => {
  const port = await freePort();
  const root = path.join(__dirname, '..');
  child = spawn('npm', ['start'], { cwd: root, env: { ...process.env, PORT: String(port) }, detached: true });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const c = new Client(`http://127.0.0.1:${port}`);
  const deadline = Date.now() + 60000;
  let first;
  while (!first) {
    try {
      first = await c.request('/');
    } catch {
      if (Date.now() > deadline) throw new Error(`the example did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  assert.match(output, new RegExp(`http://127\\.0\\.0\\.1:${port}`), 'prints the URL');
  assert.equal(first.status, 200);
  assert.match(first.body, /id="visits">1</);
  assert.match((await c.request('/')).body, /id="visits">2</);
  const before = c.session;
  const login = await c.request('/index/login?name=Ann');
  assert.equal(login.status, 302);
  assert.notEqual(c.session, before, 'a login gives the session a new id');
  const home = await c.request('/');
  assert.match(home.body, /Signed in as <b>Ann<\/b>/);
  assert.match(home.body, /id="visits">3</);
  await c.request('/index/logout');
  assert.doesNotMatch((await c.request('/')).body, /Signed in/);
});
