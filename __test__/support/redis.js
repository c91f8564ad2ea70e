'use strict';
// Real Redis servers for the tests, each started on a spare loopback port with nothing on
// disk: a standalone server (that a test may stop and start again), a 3-master cluster and
// a master with a replica watched by a Sentinel. A missing redis-server fails the test.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { freePort } = require('./app');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cli(port, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** Resolves once `check` (which may return a promise) is true; fails after `ms`. */
async function waitFor(check, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Starts `redis-server` (a Sentinel with `sentinel: true`) with `args` on a spare port;
 * with `tls: true` it speaks TLS only, with a self-signed certificate made by openssl.
 */
async function startServer({ args = [], sentinel = false, tls = false, port, password } = {}) {
  port = port || (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-redis-'));
  const cliArgs = [];
  if (tls) {
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    const subject = ['-subj', '/CN=127.0.0.1', '-days', '2'];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, ...subject],
      {
        stdio: 'ignore',
        timeout: 30000,
      },
    );
    args = [...args, '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key];
    args.push('--tls-ca-cert-file', cert, '--tls-auth-clients', 'no');
    cliArgs.push('--tls', '--insecure');
  }
  if (password) {
    args = [...args, '--requirepass', password];
    cliArgs.push('-a', password, '--no-auth-warning');
  }
  let conf = null;
  if (sentinel) {
    conf = path.join(dir, 'sentinel.conf');
    fs.writeFileSync(conf, `port ${port}\nbind 127.0.0.1\n${args.join('\n')}\n`);
  }
  const start = () => {
    const argv = sentinel
      ? [conf, '--sentinel']
      : [
          '--port',
          tls ? '0' : String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
          ...args,
        ];
    const child = spawn('redis-server', argv, { stdio: 'ignore' });
    child.on('error', (err) => {
      throw new Error(`cannot start redis-server (is Redis installed?): ${err.message}`);
    });
    return child;
  };
  const server = {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    child: start(),
    cli: (...a) => cli(port, ...cliArgs, ...a),
    async stop() {
      const { child } = server;
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async start() {
      server.child = start();
      await waitFor(() => server.cli('ping') === 'PONG', `redis on port ${port}`);
    },
    async close() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await waitFor(() => server.cli('ping') === 'PONG', `redis on port ${port}`);
  return server;
}

/** Three masters, no replicas, every slot assigned. */
async function startCluster() {
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(await startServer({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`] }));
  }
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
    { stdio: 'ignore' },
  );
  await waitFor(() => nodes.every((n) => n.cli('cluster', 'info').includes('cluster_state:ok')), 'the cluster');
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    close: () => Promise.all(nodes.map((n) => n.close())),
  };
}

/** A master, its replica, and one Sentinel watching them as `mymaster`. */
async function startSentinel() {
  const master = await startServer();
  const replica = await startServer({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  await waitFor(() => replica.cli('info', 'replication').includes('master_link_status:up'), 'the replica');
  const sentinel = await startServer({
    sentinel: true,
    args: [
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 5000',
    ],
  });
  await waitFor(
    () => sentinel.cli('sentinel', 'get-master-addr-by-name', 'mymaster').includes(String(master.port)),
    'the sentinel',
  );
  // A failover needs the Sentinel to know the replica (it learns it from the master's INFO).
  await waitFor(
    () => sentinel.cli('sentinel', 'replicas', 'mymaster').includes(String(replica.port)),
    'the replica seen',
    30000,
  );
  return {
    master,
    replica,
    sentinel,
    close: () => Promise.all([sentinel.close(), replica.close(), master.close()]),
  };
}

module.exports = { startServer, startCluster, startSentinel, waitFor };
