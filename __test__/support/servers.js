'use strict';
// Private MariaDB and PostgreSQL servers on spare loopback ports, each with a data folder of
// its own, for tests that stop and restart them (the machine's own servers are never
// touched). Durable settings as shipped: a write they acknowledged survives a kill.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFile, execFileSync } = require('child_process');
const { promisify } = require('util');

// Asynchronous, so that a test driving load meanwhile is not stalled (its timings would lie).
const run = promisify(execFile);
const { freePort } = require('./app');
const { waitFor } = require('./redis');

// Folders the servers' own users (mysql, postgres) can write: the servers refuse to run as root.
function ownedDir(prefix, user) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  if (process.getuid && process.getuid() === 0) execFileSync('chown', [`${user}:${user}`, dir]);
  return dir;
}

const runAs = (user, command, args) =>
  process.getuid && process.getuid() === 0 ? ['runuser', ['-u', user, '--', command, ...args]] : [command, args];

/** A MariaDB server of its own (root, no password, database `test`); stop() is SIGKILL. */
async function startMariaDb() {
  const port = await freePort();
  const dir = ownedDir('tsn-mariadb-', 'mysql');
  const data = path.join(dir, 'data');
  execFileSync(
    'mariadb-install-db',
    ['--user=mysql', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
    { stdio: 'pipe' },
  );
  const mysql = async (sql) =>
    (await run('mysql', ['-h127.0.0.1', `-P${port}`, '-uroot', '-N', '-B', '-e', sql], { encoding: 'utf8' })).stdout;
  const server = {
    port,
    url: `mysql://root@127.0.0.1:${port}/test`,
    child: null,
    async start() {
      server.child = spawn(
        '/usr/sbin/mariadbd',
        [
          '--no-defaults',
          '--user=mysql',
          `--datadir=${data}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${path.join(dir, 'sock')}`,
          `--pid-file=${path.join(dir, 'pid')}`,
          '--innodb-buffer-pool-size=32M',
        ],
        { stdio: 'ignore' },
      );
      await waitFor(async () => (await mysql('SELECT 1')).trim() === '1', `MariaDB on port ${port}`);
    },
    async stop() {
      const { child } = server;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async close() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  await mysql('CREATE DATABASE IF NOT EXISTS test');
  return server;
}

/** A PostgreSQL server of its own (user root, trust, database `test`); stop() is an immediate shutdown. */
async function startPostgres() {
  const port = await freePort();
  const bin = fs
    .readdirSync('/usr/lib/postgresql')
    .map((v) => path.join('/usr/lib/postgresql', v, 'bin'))
    .find((b) => fs.existsSync(path.join(b, 'pg_ctl')));
  if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql');
  const dir = ownedDir('tsn-postgres-', 'postgres');
  const data = path.join(dir, 'data');
  execFileSync(...runAs('postgres', path.join(bin, 'initdb'), ['-D', data, '-U', 'root', '--auth=trust']), {
    stdio: 'pipe',
  });
  const pgCtl = (...args) => run(...runAs('postgres', path.join(bin, 'pg_ctl'), ['-D', data, ...args]));
  const server = {
    port,
    url: `postgres://root@127.0.0.1:${port}/test`,
    async start() {
      await pgCtl(
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`,
        '-l',
        path.join(dir, 'log'),
        '-w',
        'start',
      );
    },
    async stop() {
      try {
        await pgCtl('-m', 'immediate', '-w', 'stop');
      } catch {
        // not running
      }
    },
    async close() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  execFileSync(
    'psql',
    ['-h', '127.0.0.1', '-p', String(port), '-U', 'root', '-d', 'postgres', '-c', 'CREATE DATABASE test'],
    {
      stdio: 'pipe',
    },
  );
  return server;
}

module.exports = { startMariaDb, startPostgres };
