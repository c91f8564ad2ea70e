'use strict';
// Faults under load, against real servers of the test's own on spare loopback ports: Redis
// killed and restarted, MariaDB killed and restarted, PostgreSQL stopped at once and
// restarted, a ThinkJS worker killed with SIGKILL while it writes file sessions, and the file
// store's disk filled up. Eight clients keep writing distinct keys into their own sessions
// through a real ThinkJS 4 app the whole time. For each fault: no write the app acknowledged
// (200) is lost, every failed request fails within its timeout, and the service comes back
// without a restart of the app. The table is printed at the end.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { prepareApp, bootApp } = require('./support/app');
const { Client } = require('./support/http');
const { FileStore } = require('..');
const { startServer, waitFor } = require('./support/redis');
const { startMariaDb, startPostgres } = require('./support/servers');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CLIENTS = 8;
const STORE_TIMEOUT_MS = 1000;
// A request makes at most a load and a write, each bounded by the store's timeout.
const FAILURE_BOUND_MS = 2 * STORE_TIMEOUT_MS + 1500;

// One app for every fault; TSN_FAULT_* in its environment choose the store.
const session = `(() => {
  const native = require('think-session-native');
  const env = process.env;
  const timeouts = { connectTimeout: 500 };
  const stores = {
    redis: { handle: native.RedisSession, port: Number(env.TSN_FAULT_PORT), commandTimeout: ${STORE_TIMEOUT_MS}, ...timeouts },
    db: { handle: native.DbSession, url: env.TSN_FAULT_URL, queryTimeout: ${STORE_TIMEOUT_MS}, ...timeouts },
    file: { handle: native.FileSession, sessionPath: env.TSN_FAULT_DIR },
  };
  return { type: 'fault', common: { cookie: { name: 'thinkjs' }, maxAge: '1d' }, fault: stores[env.TSN_FAULT_STORE] };
})()`;

let dir;
const rows = [];
before(() => {
  dir = prepareApp({ name: 'faults', thinkjs: '4.0.0', session });
});
after(() => {
  if (!rows.length) return;
  const header = ['fault', 'requests', 'errors', 'acknowledged writes lost', 'slowest error ms', 'seconds to recover'];
  const lines = [header, ...rows.map((r) => [r.name, r.requests, r.errors, r.lost, r.slowestError, r.recover])];
  const widths = header.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const format = (l) => `| ${l.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(
    ['', format(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.slice(1).map(format)].join(
      '\n',
    ),
  );
});

/**
 * Boots the app, keeps CLIENTS clients writing, injects the fault 1.5 s in, heals it 3 s
 * later, runs on until every client has written again, then reads every session back.
 */
async function underLoad({ name, env, workers = 1, inject, heal }) {
  const app = await bootApp(dir, { env, workers });
  try {
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      const client = new Client(app.url);
      const first = await client.request('/index/set?key=start&value=0');
      assert.equal(first.status, 200, `${name}: the app works before the fault`);
      clients.push({ client, acked: new Map([['start', '0']]), seq: 0, okAfterHeal: false });
    }
    const stats = { requests: 0, errors: 0, slowestError: 0 };
    let healedAt = Infinity;
    let firstOkAfterHeal = null;
    let stop = false;
    const loops = clients.map(async (c, i) => {
      while (!stop) {
        const key = `k${i}_${++c.seq}`;
        const started = Date.now();
        let ok = false;
        try {
          const res = await c.client.request(`/index/set?key=${key}&value=${c.seq}`);
          ok = res.status === 200 && res.body.ok === true;
        } catch {
          // the connection broke: not acknowledged
        }
        stats.requests++;
        if (ok) {
          c.acked.set(key, String(c.seq));
          if (started >= healedAt) {
            c.okAfterHeal = true;
            firstOkAfterHeal ??= Date.now();
          }
        } else {
          stats.errors++;
          stats.slowestError = Math.max(stats.slowestError, Date.now() - started);
          await sleep(20);
        }
      }
    });
    await sleep(1500);
    await inject(app);
    await sleep(3000);
    await heal(app);
    healedAt = Date.now();
    await waitFor(() => clients.every((c) => c.okAfterHeal), `${name}: every client writing again`, 30000);
    await sleep(500);
    stop = true;
    await Promise.all(loops);

    let lost = 0;
    for (const c of clients) {
      const all = await c.client.request('/index/all');
      assert.equal(all.status, 200, `${name}: the session reads back`);
      for (const [key, value] of c.acked) if (all.body[key] !== value) lost++;
    }
    const row = {
      name,
      ...stats,
      lost,
      recover: ((firstOkAfterHeal - healedAt) / 1000).toFixed(2),
    };
    rows.push(row);
    return row;
  } finally {
    app.stop();
  }
}

function assertSurvived(row, { errors = true } = {}) {
  assert.equal(row.lost, 0, `${row.name}: acknowledged writes lost`);
  if (errors) assert.ok(row.errors > 0, `${row.name}: the fault was felt (else this test proves nothing)`);
  assert.ok(row.slowestError <= FAILURE_BOUND_MS, `${row.name}: a failure took ${row.slowestError} ms`);
  assert.ok(row.requests > row.errors, `${row.name}: requests went through`);
}

describe('faults under load', () => {
  // A server of the test's own, stopped (each in its own way, named in the title) and started again.
  const servers = [
    {
      name: 'Redis killed (SIGKILL) and restarted',
      start: () => startServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] }),
      env: (redis) => ({ TSN_FAULT_STORE: 'redis', TSN_FAULT_PORT: String(redis.port) }),
    },
    {
      name: 'MariaDB killed (SIGKILL) and restarted',
      start: startMariaDb,
      env: (mariadb) => ({ TSN_FAULT_STORE: 'db', TSN_FAULT_URL: mariadb.url }),
    },
    {
      name: 'PostgreSQL stopped (immediate) and restarted',
      start: startPostgres,
      env: (postgres) => ({ TSN_FAULT_STORE: 'db', TSN_FAULT_URL: postgres.url }),
    },
  ];
  for (const { name, start, env } of servers) {
    it(name, async () => {
      const server = await start();
      try {
        const row = await underLoad({
          name,
          env: env(server),
          inject: () => server.stop(),
          heal: () => server.start(),
        });
        assertSurvived(row);
      } finally {
        await server.close();
      }
    });
  }

  it('a ThinkJS worker killed with SIGKILL while writing file sessions', async () => {
    const sessionPath = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-fault-kill-'));
    let killed;
    const row = await underLoad({
      name: 'ThinkJS worker killed (SIGKILL), file store',
      env: { TSN_FAULT_STORE: 'file', TSN_FAULT_DIR: sessionPath },
      workers: 2,
      inject: async (app) => {
        const res = await new Client(app.url).request('/index/ping', { newConnection: true });
        killed = res.body.pid;
        process.kill(killed, 'SIGKILL');
      },
      heal: async (app) => {
        // ThinkJS's master forks a new worker by itself; wait until two answer again
        const pids = new Set();
        for (let i = 0; i < 50 && pids.size < 2; i++) {
          try {
            pids.add((await new Client(app.url).request('/index/ping', { newConnection: true })).body.pid);
          } catch {
            await sleep(100);
          }
        }
        assert.equal(pids.size, 2, 'two workers answer after the kill');
        assert.ok(!pids.has(killed), 'the killed worker was replaced');
      },
    });
    // requests in flight on the killed worker fail, or none was: either way nothing acknowledged is lost
    assertSurvived(row, { errors: false });
    // a writer killed mid-write may leave its temporary file: the store's gc removes it
    await new FileStore({ sessionPath }).gc();
    for (const name of fs.readdirSync(sessionPath))
      assert.match(name, /^[A-Za-z0-9_-]{8,128}$/, `left behind: ${name}`);
    fs.rmSync(sessionPath, { recursive: true, force: true });
  });

  it('the file store on a full disk (a 16 MiB tmpfs filled up, then freed)', async () => {
    const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-fault-disk-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mount]);
    const filler = path.join(mount, 'filler');
    try {
      const row = await underLoad({
        name: 'disk full (tmpfs), file store',
        env: { TSN_FAULT_STORE: 'file', TSN_FAULT_DIR: path.join(mount, 'session') },
        inject: () => {
          const chunk = Buffer.alloc(4096); // a page: tmpfs fills to the last byte
          const fd = fs.openSync(filler, 'w');
          try {
            for (;;) fs.writeSync(fd, chunk);
          } catch (err) {
            assert.equal(err.code, 'ENOSPC');
          } finally {
            fs.closeSync(fd);
          }
        },
        heal: () => fs.rmSync(filler),
      });
      assertSurvived(row);
    } finally {
      execFileSync('umount', [mount]);
      fs.rmSync(mount, { recursive: true, force: true });
    }
  });

  it('the file store on a tmpfs out of inodes (bytes to spare), then freed', async () => {
    const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-fault-inodes-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,nr_inodes=256', 'tmpfs', mount]);
    const fillers = path.join(mount, 'fillers');
    try {
      const row = await underLoad({
        name: 'out of inodes (tmpfs), file store',
        env: { TSN_FAULT_STORE: 'file', TSN_FAULT_DIR: path.join(mount, 'session') },
        inject: () => {
          fs.mkdirSync(fillers);
          try {
            for (let i = 0; ; i++) fs.writeFileSync(path.join(fillers, String(i)), '');
          } catch (err) {
            assert.equal(err.code, 'ENOSPC');
          }
        },
        heal: () => fs.rmSync(fillers, { recursive: true }),
      });
      assertSurvived(row);
    } finally {
      execFileSync('umount', [mount]);
      fs.rmSync(mount, { recursive: true, force: true });
    }
  });

  it('the file store on a folder remounted read-only, then read-write', async () => {
    const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-fault-ro-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mount]);
    // A file being written keeps a remount from taking: try again until it does.
    const remount = async (mode) => {
      for (let i = 0; ; i++) {
        try {
          return execFileSync('mount', ['-o', `remount,${mode}`, mount], { stdio: 'pipe' });
        } catch (err) {
          if (i === 100) throw err;
          await sleep(10);
        }
      }
    };
    try {
      const row = await underLoad({
        name: 'remounted read-only, file store',
        env: { TSN_FAULT_STORE: 'file', TSN_FAULT_DIR: path.join(mount, 'session') },
        inject: () => remount('ro'),
        heal: () => remount('rw'),
      });
      assertSurvived(row);
    } finally {
      execFileSync('umount', [mount]);
      fs.rmSync(mount, { recursive: true, force: true });
    }
  });
});
