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
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', dest], { cwd: root, stdio: 'pipe' });
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
    await this.session(null);
    this.body = { ok: true };
  }
};
`;

/**
 * Installs (once, cached in __test__/.apps) a ThinkJS app of the given version whose
 * session adapter config is `session` (JS source of the `exports.session` value).
 */
function prepareApp({ name, thinkjs, session }) {
  const dir = path.join(appsDir, `${name}-thinkjs-${thinkjs}`);
  fs.mkdirSync(dir, { recursive: true });
  const pkg = { name: `tsn-app-${name}`, private: true, dependencies: { thinkjs, 'think-session': '1.1.6' } };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  let installed;
  try {
    installed = require(path.join(dir, 'node_modules', 'thinkjs', 'package.json')).version;
  } catch {
    installed = undefined;
  }
  if (installed !== thinkjs) npmRun(['install'], dir);
  npmRun(['install', '--no-save', packTarball()], dir, { ...process.env, PATH: pathWithoutCargo() });

  const write = (file, text) => {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  };
  write(
    'production.js',
    `const path = require('path');
const Application = require('thinkjs');
new Application({ ROOT_PATH: __dirname, APP_PATH: path.join(__dirname, 'src'), env: 'production' }).run();
`,
  );
  write(
    'src/config/config.js',
    `module.exports = { port: Number(process.env.PORT), host: '127.0.0.1', workers: Number(process.env.WORKERS || 1) };\n`,
  );
  write('src/config/extend.js', `module.exports = [require('think-session')];\n`);
  write('src/config/middleware.js', `module.exports = ['meta', 'payload', 'router', 'logic', 'controller'];\n`);
  write('src/config/adapter.js', `const path = require('path');\nexports.session = ${session};\n`);
  write('src/controller/index.js', controller);
  fs.rmSync(path.join(dir, 'runtime'), { recursive: true, force: true });
  return dir;
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

module.exports = { prepareApp, bootApp, packTarball, pathWithoutCargo, freePort };
