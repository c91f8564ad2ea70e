'use strict';
// Builds and boots real ThinkJS apps from npm, with think-session-native installed from
// the packed tarball of this checkout (with cargo hidden, as on a user's machine).
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const { execFileSync, spawn } = require('child_process');

const root = path.join(__dirname, '..', '..');
const appsDir = path.join(__dirname, '..', '.apps');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function npmRun(args, cwd, env = process.env) {
  execFileSync(npm, [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env, stdio: 'pipe' });
}

// PATH without any folder that holds cargo: the tarball must install from its prebuilt binary.
function pathWithoutCargo() {
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => !fs.existsSync(path.join(dir, 'cargo')))
    .join(path.delimiter);
}

let tarball;
function packTarball() {
  if (tarball) return tarball;
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-pack-'));
  // --ignore-scripts: the tests pack whatever build they run on (prepack refuses a debug one).
  const out = execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dest], {
    cwd: root,
    stdio: 'pipe',
  });
  const [{ filename, files }] = JSON.parse(out);
  if (!files.some((f) => f.path.endsWith('.node'))) {
    throw new Error('the packed tarball carries no .node binary: run `npm install` (it builds one) first');
  }
  tarball = path.join(dest, filename);
  return tarball;
}

const controller = `module.exports = class extends think.Controller {
  pingAction() { this.body = { pid: process.pid }; }
  async counterAction() {
    const n = (await this.session('n')) || 0;
    await this.session('n', n + 1);
    this.body = { n: n + 1 };
  }
  async loginAction() {
    await this.session('user', this.get('name'));
    return this.redirect('/index/whoami');
  }
  async whoamiAction() { this.body = { user: (await this.session('user')) || null }; }
  async setAction() {
    await this.session(this.get('key'), this.get('value'));
    this.body = { ok: true };
  }
  async shortAction() {
    await this.session('short', 'lived', { maxAge: Number(this.get('ms')) });
    this.body = { ok: true };
  }
  async allAction() { this.body = await this.session(); }
  async clearAction() {
    if (this.get('read')) await this.session(); // think-session-redis clears only a session the request read
    await this.session(null);
    this.body = { ok: true };
  }
  async regenerateAction() {
    if (this.get('key')) await this.session(this.get('key'), this.get('value'));
    const before = { ...(await this.session()) };
    const id = await require('think-session-native').regenerate(this.ctx);
    await this.session('regenerated', true);
    this.body = { before, id };
  }
  // a per-call cookie option: the cookie is sent again with it
  async cookiepathAction() {
    await this.session('pathed', true, { cookie: { path: this.get('path') } });
    this.body = { ok: true };
  }
  // this.session(...JSON args): how it answers (a value, a rejection or a synchronous throw)
  async probeAction() {
    let pending;
    try {
      pending = this.session(...JSON.parse(this.get('args')));
    } catch (err) {
      this.body = { threw: err.name, message: err.message };
      return;
    }
    try {
      this.body = { resolved: (await pending) ?? null };
    } catch (err) {
      this.body = { rejected: err.name, message: err.message };
    }
  }
};
`;

// What src/config/extend.js loads: think-session, or this package's drop-in for it.
const EXTENDS = ['think-session', 'think-session-native/extend'];

const PRODUCTION = `const path = require('path');
const Application = require('thinkjs');
new Application({ ROOT_PATH: __dirname, APP_PATH: path.join(__dirname, 'src'), env: 'production' }).run();
`;

// Apps this process has installed the tarball into (an app is booted once per extend).
const withTarball = new Set();

/**
 * Installs (once per set of dependencies, cached in __test__/.apps) an app with this
 * checkout's tarball, writes its `files` and empties its runtime folder.
 */
function installApp(name, dependencies, files) {
  const dir = path.join(appsDir, name);
  fs.mkdirSync(dir, { recursive: true });
  const pkg = JSON.stringify({ name: `tsn-app-${name}`, private: true, dependencies }, null, 2);
  const stamp = path.join(dir, 'node_modules', '.tsn-installed');
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== pkg) {
    fs.writeFileSync(path.join(dir, 'package.json'), pkg);
    npmRun(['install'], dir);
    fs.writeFileSync(stamp, pkg);
    withTarball.delete(dir);
  }
  if (!withTarball.has(dir)) {
    npmRun(['install', '--no-save', packTarball()], dir, { ...process.env, PATH: pathWithoutCargo() });
    withTarball.add(dir);
  }
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  fs.rmSync(path.join(dir, 'runtime'), { recursive: true, force: true });
  return dir;
}

/**
 * A ThinkJS 3/4 app of the given version whose session adapter config is `session` (JS
 * source of the `exports.session` value), with `session()` from `extend` (one of EXTENDS).
 * One installed app serves every extend; `dependencies` are installed beside ThinkJS.
 */
function prepareApp({ name, thinkjs, session, extend = 'think-session', dependencies = {} }) {
  if (!EXTENDS.includes(extend)) throw new Error(`extend must be one of ${EXTENDS.join(', ')}`);
  return installApp(
    `${name}-thinkjs-${thinkjs}`,
    { thinkjs, 'think-session': '1.1.6', ...dependencies },
    {
      'production.js': PRODUCTION,
      'src/config/config.js': `module.exports = { port: Number(process.env.PORT), host: '127.0.0.1', workers: Number(process.env.WORKERS || 1) };\n`,
      'src/config/extend.js': `module.exports = [require('${extend}')];\n`,
      'src/config/middleware.js': `module.exports = ['meta', 'payload', 'router', 'logic', 'controller'];\n`,
      'src/config/adapter.js': `const path = require('path');\nexports.session = ${session};\n`,
      'src/controller/index.js': controller,
    },
  );
}

// ThinkJS 2: a module-mode app (app/common, app/home). Its session, db and redis config come
// from the environment it is booted with (TSN_TYPE, TSN_FILE_PATH, TSN_SECRET, TSN_DB, TSN_DB_NAME,
// TSN_REDIS_PORT; TSN_NATIVE=0 leaves ThinkJS 2's built-in adapters in place), so one
// installed app serves every run.
const controller2 = `module.exports = class extends think.controller.base {
  pingAction() { return this.json({ pid: process.pid }); }
  async counterAction() {
    const n = (await this.session('n')) || 0;
    await this.session('n', n + 1);
    return this.json({ n: n + 1 });
  }
  async loginAction() {
    await this.session('user', this.get('name'));
    return this.redirect('/index/whoami');
  }
  async whoamiAction() { return this.json({ user: (await this.session('user')) || null }); }
  async setAction() {
    await this.session(this.get('key'), this.get('value'));
    return this.json({ ok: true });
  }
  async shortAction() {
    const session = think.session(this.http);
    await session.set('short', 'lived', Number(this.get('ms')) / 1000);
    // read back by a second adapter of this session: from the store, and no flush to slide it
    const conf = think.parseConfig(think.config('session'), { cookie: this.http._cookie.thinkjs });
    return this.json({ ok: true, stored: await new session.constructor(conf).get('short') });
  }
  async allAction() { return this.json(await think.session(this.http).get()); }
  async inplaceAction() {
    const data = await think.session(this.http).get();
    (data.items = data.items || []).push(this.get('value'));
    return this.json({ ok: true });
  }
  async clearAction() {
    await this.session();
    return this.json({ ok: true });
  }
  // reads the session, and a second adapter of it clears it, as another request would
  async clearedelsewhereAction() {
    await think.session(this.http).get();
    const conf = think.parseConfig(think.config('session'), { cookie: this.http._cookie.thinkjs });
    await new (think.session(this.http).constructor)(conf).delete();
    return this.json({ ok: true });
  }
  async regenerateAction() {
    if (this.get('key')) await this.session(this.get('key'), this.get('value'));
    const before = { ...(await think.session(this.http).get()) };
    const id = await require('think-session-native/thinkjs2').regenerate(this.http);
    await this.session('regenerated', true);
    return this.json({ before, id });
  }
};
`;

const thinkjs2Files = {
  'production.js': `const path = require('path');
const ThinkJS = require('thinkjs');
new ThinkJS({
  ROOT_PATH: __dirname,
  APP_PATH: path.join(__dirname, 'app'),
  RESOURCE_PATH: path.join(__dirname, 'www'),
  RUNTIME_PATH: path.join(__dirname, 'runtime'),
  env: 'production',
}).run();
`,
  'www/.keep': '',
  'app/common/config/config.js': `const workers = Number(process.env.WORKERS || 1);
module.exports = { port: Number(process.env.PORT), host: '127.0.0.1', cluster_on: workers > 1 ? workers : false };
`,
  'app/common/config/session.js': `const path = require('path');
const secrets = (process.env.TSN_SECRET || '').split(',').filter(Boolean);
module.exports = {
  name: 'thinkjs',
  type: process.env.TSN_TYPE || 'memory',
  secret: secrets.length > 1 ? secrets : secrets[0] || '',
  timeout: 86400,
  // TSN_FILE_PATH=default: an empty path, so the file type falls back to <tmpdir>/thinkjs
  adapter: {
    file: {
      path: process.env.TSN_FILE_PATH === 'default' ? '' : path.join(think.ROOT_PATH, 'runtime', 'session'),
      path_depth: 2,
    },
  },
};
`,
  'app/common/config/db.js': `const path = require('path');
const kind = process.env.TSN_DB || 'mysql';
const server = { host: '127.0.0.1', user: 'root', password: '', database: process.env.TSN_DB_NAME, prefix: 'think_' };
const adapters = {
  mysql: { ...server, port: 3306 },
  postgresql: { ...server, port: 5432 },
  sqlite: { path: path.join(think.ROOT_PATH, 'runtime', 'sqlite'), database: 'sessions', prefix: 'think_' },
};
module.exports = { type: kind, adapter: { [kind]: adapters[kind] } };
`,
  'app/common/config/redis.js': `module.exports = { host: '127.0.0.1', port: Number(process.env.TSN_REDIS_PORT || 6379) };
`,
  'app/common/bootstrap/session.js': `if (process.env.TSN_NATIVE !== '0') require('think-session-native/thinkjs2');
`,
  'app/home/controller/index.js': controller2,
  // A custom adapter on the package's base class (type 'kv'): records in a Map, each load
  // and save a turn of the event loop, as a remote store's would be.
  'app/common/adapter/session/kv.js': `const { SessionAdapter } = require('think-session-native/thinkjs2');
const records = new Map();
const turn = () => new Promise((resolve) => setImmediate(resolve));
module.exports = class extends SessionAdapter {
  async load(id) {
    await turn();
    const text = records.get(id);
    return text ? JSON.parse(text) : null;
  }
  async save(id, record) {
    await turn();
    if (record) records.set(id, JSON.stringify(record));
    else records.delete(id);
  }
};
`,
};

/** A ThinkJS 2 app, with redis@2.3.0 (the version its built-in adapter installs). */
function prepareThinkjs2App({ name, thinkjs = '2.2.25' }) {
  return installApp(`${name}-thinkjs-${thinkjs}`, { thinkjs, redis: '2.3.0' }, thinkjs2Files);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

// Ready once every worker has answered (the cluster hands connections round-robin).
async function waitForWorkers(url, workers, child, output, ms) {
  const { Client } = require('./http');
  const deadline = Date.now() + ms;
  const pids = new Set();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the app exited with ${child.exitCode}:\n${output.join('')}`);
    try {
      const res = await new Client(url).request('/index/ping', { newConnection: true });
      if (res.status === 200) pids.add(res.body.pid);
      if (pids.size >= workers) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the app did not answer within ${ms} ms:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the app in its own process group; resolves with its URL and a stop(). */
async function bootApp(dir, { workers = 1, env = {} } = {}) {
  const port = await freePort();
  const output = [];
  const child = spawn(process.execPath, ['production.js'], {
    cwd: dir,
    env: { ...process.env, ...env, PORT: String(port), WORKERS: String(workers) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk) => {
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const stop = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    await waitForWorkers(url, workers, child, output, 60000);
  } catch (err) {
    stop();
    throw err;
  }
  return { url, output, stop };
}

module.exports = { EXTENDS, prepareApp, prepareThinkjs2App, bootApp, packTarball, pathWithoutCargo, freePort };
