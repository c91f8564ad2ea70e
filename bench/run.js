'use strict';
// `npm run bench`: builds the release addon, then measures every variant side by side in
// one run and prints ratios. Options (env): BENCH_SECONDS (per HTTP round, default 5),
// BENCH_ROUNDS (default 5), BENCH_SESSIONS (scale: live sessions per store, default 1000000; 0 skips),
// BENCH_GC_FILES (default 100000), BENCH_SOAK_SECONDS (per store, default 60; 0 skips),
// BENCH_ONLY=memory,file,redis,db to run some groups,
// BENCH_SKIP_BUILD=1 to reuse the current binary. Rows marked "(drop-in)" run the same app
// with session() from think-session-native/extend instead of think-session.
const fs = require('fs');
const path = require('path');
const net = require('net');
const { spawn, spawnSync, execFileSync } = require('child_process');
const { load } = require('./load');
const { ratioChart } = require('./chart');

const root = path.join(__dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);
const SESSIONS = Number(process.env.BENCH_SESSIONS || 1000000);
const os = require('os');
// Each store against its JS peer; the ceiling (no session) is shown with the memory group.
const GROUPS = [
  {
    name: 'memory',
    baseline: 'jsmap',
    variants: [
      { name: 'no session (ceiling)', key: 'none' },
      { name: 'JS Map handle (baseline)', key: 'jsmap' },
      { name: 'MemorySession', key: 'memory' },
      { name: 'MemorySession, shared by workers', key: 'shared' },
      { name: 'glue only (native handle, a store that does nothing)', key: 'glue' },
      { name: 'no session, ceiling (drop-in)', key: 'none-dropin' },
      { name: 'JS Map handle (drop-in)', key: 'jsmap-dropin' },
      { name: 'MemorySession (drop-in)', key: 'memory-dropin' },
    ],
  },
  {
    name: 'file',
    baseline: 'tsfile',
    variants: [
      { name: 'think-session-file (peer)', key: 'tsfile' },
      { name: 'FileSession', key: 'file' },
      { name: 'FileSession (drop-in)', key: 'file-dropin' },
    ],
  },
  {
    name: 'redis',
    baseline: 'tsredis',
    inflight: [1, 64],
    variants: [
      { name: 'think-session-redis (peer)', key: 'tsredis' },
      { name: 'RedisSession', key: 'redis' },
      { name: "RedisSession, format: 'hash'", key: 'redis-hash' },
      { name: 'RedisSession, cache on', key: 'redis-cache' },
      { name: 'RedisSession (drop-in)', key: 'redis-dropin' },
    ],
  },
  {
    name: 'db',
    baseline: 'tsmysql',
    inflight: [1, 64],
    variants: [
      { name: 'think-session-mysql (peer, MariaDB)', key: 'tsmysql' },
      { name: 'DbSession, MariaDB', key: 'dbmysql' },
      { name: 'DbSession, PostgreSQL', key: 'dbpg' },
      { name: 'DbSession, SQLite', key: 'dbsqlite' },
      { name: 'DbSession, MariaDB (drop-in)', key: 'dbmysql-dropin' },
    ],
  },
  // ThinkJS 2: each native type against the built-in adapter of that type, HTTP level only.
  ...['memory', 'file', 'redis', 'db'].map((type) => ({
    name: `thinkjs2-${type}`,
    family: 'thinkjs2',
    baseline: `tj2-${type}-builtin`,
    httpOnly: true,
    variants: [
      ...(type === 'memory' ? [{ name: 'ThinkJS 2, no session (ceiling)', key: 'tj2-none' }] : []),
      { name: `ThinkJS 2 built-in ${type} (peer)`, key: `tj2-${type}-builtin` },
      { name: `ThinkJS 2 native ${type}`, key: `tj2-${type}` },
    ],
  })),
].filter((g) => {
  const only = process.env.BENCH_ONLY && process.env.BENCH_ONLY.split(',');
  return !only || only.includes(g.name) || only.includes(g.family);
});
const VARIANTS = GROUPS.flatMap((g) => g.variants);
// `<handle>-dropin`: that handle (bench/handles.js), with the drop-in extend.
const handleKey = (key) => key.replace(/-dropin$/, '');
const GC_FILES = Number(process.env.BENCH_GC_FILES || 100000);
// Session files of the file variants live here, made anew each run.
process.env.BENCH_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-bench-'));

const progress = (text) => console.log(`[bench] ${text}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function build() {
  if (process.env.BENCH_SKIP_BUILD === '1') return progress('skipping the release build (BENCH_SKIP_BUILD=1)');
  progress('building the release addon (a few minutes on a cold cache) ...');
  const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  const result = spawnSync(process.execPath, [cli, 'build', '--platform', '--release'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error('the release build failed; see the cargo output above');
}

function node(args) {
  return JSON.parse(execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }));
}

// Network stores are also measured with many cycles in flight, as a busy server runs them.
// The extend is not part of an adapter cycle: the drop-in rows are HTTP only.
const ADAPTER_RUNS = GROUPS.filter((g) => !g.httpOnly).flatMap((g) =>
  (g.inflight || [1]).flatMap((inflight) =>
    g.variants.filter((v) => handleKey(v.key) === v.key).map((v) => ({ g, v, inflight, key: `${v.key}@${inflight}` })),
  ),
);

// A one-key get and set in sessions that also hold a filler of 1, 10 and 100 KB: memory
// and Redis against their peers.
const SIZES = [1, 10, 100];
const SIZE_RUNS = GROUPS.filter((g) => g.name === 'memory' || g.name === 'redis').flatMap((g) =>
  g.variants
    .filter((v) => handleKey(v.key) === v.key && v.key !== 'none' && v.key !== 'glue')
    .flatMap((v) => SIZES.map((kb) => ({ g, v, kb, key: `${v.key}@${kb}KB` }))),
);

// Also what the Redis server spends per cycle (its read and its write) on the Redis rows.
function sizeLevel() {
  const results = Object.fromEntries(SIZE_RUNS.map((r) => [r.key, []]));
  const serverUs = Object.fromEntries(SIZE_RUNS.map((r) => [r.key, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const r of SIZE_RUNS) {
      progress(`session size, round ${round}/${ROUNDS}: ${r.v.name}, ${r.kb} KB`);
      if (r.g.name === 'redis') resetRedis();
      const measured = node([path.join(__dirname, 'adapter.js'), r.v.key, '2', '1', String(r.kb)]);
      results[r.key].push(measured.opsPerSec);
      if (measured.redisUsPerCycle !== undefined) serverUs[r.key].push(measured.redisUsPerCycle);
    }
  }
  const medians = (table) =>
    Object.fromEntries(
      Object.entries(table)
        .filter(([, xs]) => xs.length)
        .map(([k, xs]) => [k, median(xs)]),
    );
  return { opsPerSec: medians(results), redisUs: medians(serverUs) };
}

function adapterLevel() {
  const results = Object.fromEntries(ADAPTER_RUNS.map((r) => [r.key, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const r of ADAPTER_RUNS) {
      progress(`adapter level, round ${round}/${ROUNDS}: ${r.v.name}, ${r.inflight} in flight`);
      const args = [path.join(__dirname, 'adapter.js'), r.v.key, '3', String(r.inflight)];
      results[r.key].push(node(args).opsPerSec);
    }
  }
  return Object.fromEntries(Object.entries(results).map(([k, xs]) => [k, median(xs)]));
}

// The bench's Redis database starts empty.
function resetRedis() {
  if (!GROUPS.some((g) => g.name === 'redis' || g.name === 'thinkjs2-redis')) return;
  const { redis } = require('./handles');
  progress(`emptying Redis database ${redis.db} on port ${redis.port}`);
  execFileSync('redis-cli', ['-h', redis.host, '-p', String(redis.port), '-n', String(redis.db), 'flushdb']);
}

// The bench's databases start empty; think-session-mysql's table is made with its own DDL
// (DbSession makes its table itself).
function resetDatabases() {
  if (!GROUPS.some((g) => g.name === 'db')) return;
  const { freshDatabase, peerTable } = require('../__test__/support/db');
  const { DB_NAME } = require('./handles');
  progress(`making databases ${DB_NAME} on MariaDB and PostgreSQL`);
  freshDatabase('mysql', DB_NAME);
  freshDatabase('postgresql', DB_NAME);
  peerTable(DB_NAME, 'tsm_session', 'thinkjs3');
}

// ThinkJS 2's db sessions need their table (ThinkJS 2's DDL); one per side.
function resetThinkjs2Tables() {
  if (!GROUPS.some((g) => g.name === 'thinkjs2-db')) return;
  const { freshDatabase, peerTable } = require('../__test__/support/db');
  const { DB_NAME } = require('./handles');
  if (!GROUPS.some((g) => g.name === 'db')) freshDatabase('mysql', DB_NAME);
  for (const prefix of ['tj2b_', 'tj2n_']) {
    peerTable(DB_NAME, `${prefix}session`, 'thinkjs2');
  }
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// On Linux the app's worker gets core 0 and this process (the load) the others, so the
// two do not take turns on one core; the worker's CPU time per request is read from /proc.
// The adapter level runs before this, unpinned, so a store may use the machine's cores.
const pin = process.platform === 'linux' && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pinLoadGenerator = () =>
  pin && spawnSync('taskset', ['-a', '-p', '-c', '1-1023', String(process.pid)], { stdio: 'ignore' });

function cpuMs(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, at 100 ticks/s
  } catch {
    return NaN;
  }
}

async function bootApp(variant) {
  const port = await freePort();
  const [command, args] = pin
    ? ['taskset', ['-c', '0', process.execPath, 'production.js']]
    : [process.execPath, ['production.js']];
  // `tj2-<type>[-builtin]` runs on the ThinkJS 2 app, the others on ThinkJS 4's.
  const thinkjs2 = variant.match(/^tj2-(\w+?)(-builtin)?$/);
  const env = thinkjs2
    ? { BENCH_TJ2_TYPE: thinkjs2[1], BENCH_NATIVE: thinkjs2[2] ? '0' : '1' }
    : { BENCH_SESSION: handleKey(variant), BENCH_EXTEND: handleKey(variant) === variant ? '' : 'native' };
  const child = spawn(command, args, {
    cwd: path.join(__dirname, thinkjs2 ? 'app2' : 'app'),
    env: { ...process.env, ...env, PORT: String(port) },
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      await load(url, '/index/ping', { connections: 1, seconds: 0.05 });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the bench app did not start: ${err.message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const { pid } = await new Promise((resolve, reject) => {
    require('http')
      .get(`${url}/index/ping`, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
  return { url, pid, stop: () => process.kill(-child.pid, 'SIGKILL') };
}

// Two workloads: the example's page (GET /: two reads, one write, HTML) and a bare
// counter (one read, one write, JSON); the ceiling serves the same bodies with no session.
const WORKLOADS = [
  { name: 'example page', route: (key) => (handleKey(key).endsWith('none') ? '/index/static' : '/') },
  { name: 'counter', route: (key) => (handleKey(key).endsWith('none') ? '/index/plain' : '/index/counter') },
];

// Each round measures every variant once, in alternating order, and ratios are taken
// within a round: a machine that slows down for a while then moves both sides of a ratio.
async function httpLevel() {
  const { handleFor } = require('./handles'); // after the build: it loads the addon
  pinLoadGenerator();
  const results = {};
  for (const w of WORKLOADS) for (const v of VARIANTS) results[`${w.name}/${v.key}`] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const v of round % 2 ? VARIANTS : [...VARIANTS].reverse()) {
      const app = await bootApp(v.key);
      try {
        for (const w of WORKLOADS) {
          progress(`HTTP level, round ${round}/${ROUNDS}: ${v.name}, ${w.name}, 32 connections, ${SECONDS} s`);
          const route = w.route(v.key);
          await load(app.url, route, { connections: 32, seconds: 1 }); // warm-up
          const { writes } = v.key.startsWith('tj2-') ? {} : handleFor(handleKey(v.key));
          const before = cpuMs(app.pid);
          const written = writes && writes();
          const result = await load(app.url, route, { connections: 32, seconds: SECONDS });
          // read at once: a write still pending when the load stops was not persisted in time
          if (writes) result.persisted = (writes() - written) / SECONDS;
          result.cpuUs = ((cpuMs(app.pid) - before) * 1000) / (result.rps * SECONDS);
          results[`${w.name}/${v.key}`].push(result);
        }
      } finally {
        app.stop();
      }
    }
  }
  const summary = {};
  for (const w of WORKLOADS) {
    for (const g of GROUPS) {
      const base = results[`${w.name}/${g.baseline}`];
      for (const v of g.variants) {
        const xs = results[`${w.name}/${v.key}`];
        summary[`${w.name}/${v.key}`] = {
          rps: median(xs.map((x) => x.rps)),
          ratio: median(xs.map((x, i) => x.rps / base[i].rps)),
          p99: median(xs.map((x) => x.p99)),
          cpuUs: median(xs.map((x) => x.cpuUs)),
          persisted: median(xs.map((x) => x.persisted ?? NaN)),
          persistedRatio: median(xs.map((x, i) => x.persisted / base[i].persisted)),
        };
      }
    }
  }
  return summary;
}

// Soak: each native store at a steady request rate for BENCH_SOAK_SECONDS (default 60), a
// fixed set of returning clients, the app's RSS and open file descriptors sampled each
// second. After the first quarter (warm-up) they must stay flat.
const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 60);
const SOAK_RATE = 400; // requests per second
const SOAK_CLIENTS = 500;

function appResources(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { rss: rssKb * 1024, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

async function steadyLoad(app, seconds) {
  const http = require('http');
  const url = new URL(app.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const jars = Array.from({ length: SOAK_CLIENTS }, () => ({}));
  let [sent, errors, next] = [0, 0, 0];
  const requestOnce = (jar) =>
    new Promise((resolve) => {
      const headers = jar.cookie ? { cookie: jar.cookie } : {};
      const req = http.request(
        { host: url.hostname, port: url.port, path: '/index/counter', headers, agent },
        (res) => {
          const set = res.headers['set-cookie'];
          if (set) jar.cookie = set[0].split(';')[0];
          if (res.statusCode !== 200) errors++;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const samples = [];
  const inFlight = new Set();
  const start = Date.now();
  const tick = 20; // ms
  while (Date.now() - start < seconds * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * SOAK_RATE);
    while (sent < due) {
      const p = requestOnce(jars[next++ % jars.length]);
      inFlight.add(p);
      p.then(() => inFlight.delete(p));
      sent++;
    }
    if (samples.length < Math.floor((Date.now() - start) / 1000)) samples.push(appResources(app.pid));
    await new Promise((r) => setTimeout(r, tick));
  }
  await Promise.all(inFlight);
  agent.destroy();
  samples.push(appResources(app.pid));
  const settled = samples.slice(Math.floor(samples.length / 4));
  const [first, last] = [settled[0], settled.at(-1)];
  const maxRss = Math.max(...settled.map((s) => s.rss));
  return {
    requests: sent,
    errors,
    rssStart: first.rss,
    rssEnd: last.rss,
    rssMax: maxRss,
    fdsStart: first.fds,
    fdsEnd: last.fds,
    flat: last.rss <= first.rss * 1.1 + 16 * 2 ** 20 && last.fds <= first.fds + 4,
  };
}

async function soak() {
  const out = {};
  if (!(SOAK_SECONDS > 0)) return out;
  for (const key of ['memory', 'file', 'redis', 'dbmysql', 'dbpg', 'dbsqlite']) {
    const variant = VARIANTS.find((v) => v.key === key);
    if (!variant) continue;
    progress(`soak: ${variant.name}, ${SOAK_RATE} req/s for ${SOAK_SECONDS} s, RSS and open files sampled each second`);
    const app = await bootApp(key);
    try {
      out[key] = await steadyLoad(app, SOAK_SECONDS);
    } finally {
      app.stop();
    }
  }
  return out;
}

function gcStalls() {
  const out = {};
  for (const key of ['tsfile', 'file'].filter((k) => VARIANTS.some((v) => v.key === k))) {
    progress(`gc of ${GC_FILES} expired files: ${key} (writing them first)`);
    try {
      out[key] = node([path.join(__dirname, 'gc-stall.js'), key, String(GC_FILES)]);
    } catch (err) {
      // a failed variant is a row, not the end of the run
      out[key] = { maxStallMs: NaN, seconds: NaN, left: NaN, error: String(err.message).split('\n')[0] };
    }
  }
  return out;
}

// Scale: each store and its peer with SESSIONS live sessions (bench/scale.js).
const SCALE_PAIRS = [
  ['jsmap', 'memory'],
  ['tsfile', 'file'],
  ['tsredis', 'redis'],
];

function scale() {
  const out = {};
  if (!(SESSIONS > 0)) return out;
  for (const key of SCALE_PAIRS.flat().filter((k) => VARIANTS.some((v) => v.key === k))) {
    progress(`scale: ${VARIANTS.find((v) => v.key === key).name} with ${SESSIONS} sessions (writing them first)`);
    const result = spawnSync(
      process.execPath,
      ['--expose-gc', '--max-old-space-size=8192', path.join(__dirname, 'scale.js'), key, String(SESSIONS)],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
    );
    const { sessionPath } = require('./handles').handleFor(key).options || {};
    if (sessionPath) fs.rmSync(sessionPath, { recursive: true, force: true });
    // a failure is a row of the table, not the end of a run that took most of an hour
    out[key] =
      result.status === 0
        ? JSON.parse(result.stdout)
        : { failed: `bench/scale.js ${key} ${SESSIONS} failed (exit ${result.status}); see its output above` };
  }
  return out;
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
  return [line(rows[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.slice(1).map(line)].join(
    '\n',
  );
}

// The machine and the versions a run measured, for RESULTS.md.
function machine() {
  const run = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return 'not found';
    }
  };
  const version = (pkg) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;
    } catch {
      return 'not installed';
    }
  };
  const cpus = os.cpus();
  return [
    [
      'machine',
      `${cpus.length} x ${cpus[0] ? cpus[0].model : 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    ],
    ['Node', process.version],
    ['Rust', run('rustc', ['--version'])],
    [
      'Redis',
      run('redis-server', ['--version'])
        .replace(/^Redis server /, '')
        .split(' ')[0],
    ],
    ['MariaDB', run('mysql', ['-h127.0.0.1', '-uroot', '-N', '-B', '-e', 'SELECT VERSION()'])],
    ['PostgreSQL', run('psql', ['-h', '127.0.0.1', '-U', 'root', '-d', 'test', '-At', '-c', 'SHOW server_version'])],
    ['think-session-native', require('../package.json').version],
    ...['thinkjs', 'thinkjs2', 'think-session', 'think-session-file', 'think-session-redis', 'think-session-mysql'].map(
      (pkg) => [pkg === 'thinkjs2' ? 'thinkjs (2.x)' : pkg, version(pkg)],
    ),
  ];
}

(async () => {
  build();
  resetRedis();
  resetDatabases();
  resetThinkjs2Tables();
  const adapter = adapterLevel();
  const sized = sizeLevel();
  const http = await httpLevel();
  const soaked = await soak();
  const stalls = gcStalls();
  const scaled = scale();
  const fmt = (n) => Math.round(n).toLocaleString('en-US');
  const ratio = (a, b) => (Math.max(0, a) / b).toFixed(2) + 'x';
  const mb = (bytes) => (Math.max(0, bytes) / 1048576).toFixed(1) + ' MiB';

  const sections = []; // [title, rows] each, printed and written to RESULTS.md
  const intro =
    `Medians of ${ROUNDS} rounds (HTTP ratios: the median of each round's ratio)` +
    `${pin ? ', app worker pinned to core 0' : ''}. Adapter = new handle + get + set + end of request (a deferred` +
    ` write awaited); HTTP = through a ThinkJS app (4.0.0, or 2.2.25 for the ThinkJS 2 rows), 32 keep-alive` +
    ` clients with their own cookies, ${SECONDS} s per round; ratios against each store's JavaScript peer.`;
  console.log(`\nthink-session-native bench: Node ${process.version}, ${os.cpus().length} cores. ${intro}\n`);
  if (ADAPTER_RUNS.length) {
    sections.push([
      'Adapter level',
      [
        ['variant', 'in flight', 'adapter ops/s', 'vs peer'],
        ...ADAPTER_RUNS.map(({ g, v, inflight, key }) => [
          v.name,
          inflight,
          fmt(adapter[key]),
          ratio(adapter[key], adapter[`${g.baseline}@${inflight}`]),
        ]),
      ],
    ]);
  }
  if (SIZE_RUNS.length) {
    const us = (opsPerSec) => (1e6 / opsPerSec).toFixed(2);
    sections.push([
      'Session size: one key read and written in a session that holds more',
      [
        ['variant', ...SIZES.map((kb) => `us/cycle at ${kb} KB`), `${SIZES.at(-1)} KB vs ${SIZES[0]} KB`],
        ...[...new Set(SIZE_RUNS.map((r) => r.v))].map((v) => [
          v.name,
          ...SIZES.map((kb) => us(sized.opsPerSec[`${v.key}@${kb}KB`])),
          ratio(sized.opsPerSec[`${v.key}@${SIZES[0]}KB`], sized.opsPerSec[`${v.key}@${SIZES.at(-1)}KB`]),
        ]),
      ],
    ]);
    const onRedis = SIZE_RUNS.filter((r) => sized.redisUs[r.key] !== undefined);
    if (onRedis.length) {
      const peer = (kb) => sized.redisUs[`${GROUPS.find((g) => g.name === 'redis').baseline}@${kb}KB`];
      sections.push([
        'Redis server time per cycle (its read and its write; INFO commandstats), same runs',
        [
          ['variant', ...SIZES.map((kb) => `us at ${kb} KB`), ...SIZES.map((kb) => `vs peer at ${kb} KB`)],
          ...[...new Set(onRedis.map((r) => r.v))].map((v) => [
            v.name,
            ...SIZES.map((kb) => sized.redisUs[`${v.key}@${kb}KB`].toFixed(2)),
            ...SIZES.map((kb) => ratio(sized.redisUs[`${v.key}@${kb}KB`], peer(kb))),
          ]),
        ],
      ]);
    }
  }
  for (const w of WORKLOADS) {
    sections.push([
      `HTTP, ${w.name}`,
      [
        ['variant', 'req/s', 'vs peer', 'p99 ms', 'app CPU us/req', 'writes persisted/s', 'vs peer'],
        ...GROUPS.flatMap((g) =>
          g.variants.map((v) => {
            const r = http[`${w.name}/${v.key}`];
            const persisted = Number.isNaN(r.persisted) ? ['-', '-'] : [fmt(r.persisted), ratio(r.persistedRatio, 1)];
            return [v.name, fmt(r.rps), r.ratio.toFixed(2) + 'x', r.p99.toFixed(2), r.cpuUs.toFixed(1), ...persisted];
          }),
        ),
      ],
    ]);
  }
  if (Object.keys(stalls).length) {
    sections.push([
      `gc of ${fmt(GC_FILES)} expired session files`,
      [
        ['variant', 'longest event-loop stall ms', 'seconds', 'expired files left', 'errors'],
        ...Object.entries(stalls).map(([k, r]) => [
          VARIANTS.find((v) => v.key === k).name,
          r.maxStallMs.toFixed(1),
          r.seconds.toFixed(1),
          fmt(r.left),
          r.error || '-',
        ]),
      ],
    ]);
  }
  if (Object.keys(scaled).length) {
    const peerOf = Object.fromEntries(
      SCALE_PAIRS.flatMap(([peer, ours]) => [
        [ours, peer],
        [peer, peer],
      ]),
    );
    sections.push([
      `Scale: ${fmt(SESSIONS)} live sessions (the app process; file and Redis hold theirs outside it)`,
      [
        [
          'variant',
          'V8 heap used',
          'RSS',
          'us/request at 1,000',
          `at ${fmt(SESSIONS)}`,
          'slowdown',
          'longest V8 GC pause ms',
          'full V8 GC ms',
          'longest stall during gc ms',
          'gc s',
        ],
        ...Object.entries(scaled).map(([k, r]) =>
          r.failed
            ? [VARIANTS.find((v) => v.key === k).name, r.failed, '', '', '', '', '', '', '']
            : [
                VARIANTS.find((v) => v.key === k).name +
                  (peerOf[k] === k
                    ? ''
                    : ` (vs ${VARIANTS.find((v) => v.key === peerOf[k]).name.replace(/ \(.*\)$/, '')})`),
                mb(r.heapUsed),
                mb(r.rss),
                r.usSmall.toFixed(1),
                r.usLarge.toFixed(1),
                (r.usLarge / r.usSmall).toFixed(2) + 'x',
                r.longestGcPauseMs.toFixed(1),
                r.fullGcMs.toFixed(1),
                r.gcStallMs === null ? '-' : r.gcStallMs.toFixed(1),
                r.gcSeconds === null ? r.gcError : r.gcSeconds.toFixed(1) + (r.gcError ? ` (${r.gcError})` : ''),
              ],
        ),
      ],
    ]);
  }
  if (Object.keys(soaked).length) {
    sections.push([
      `Soak: ${SOAK_RATE} requests/s for ${SOAK_SECONDS} s (after a quarter of it as warm-up)`,
      [
        ['variant', 'requests', 'errors', 'RSS start', 'RSS end', 'RSS max', 'open files start', 'end', 'flat'],
        ...Object.entries(soaked).map(([k, r]) => [
          VARIANTS.find((v) => v.key === k).name,
          fmt(r.requests),
          fmt(r.errors),
          mb(r.rssStart),
          mb(r.rssEnd),
          mb(r.rssMax),
          r.fdsStart,
          r.fdsEnd,
          r.flat ? 'yes' : 'NO',
        ]),
      ],
    ]);
  }
  for (const [title, rows] of sections) console.log(`\n${title}:\n\n${table(rows)}`);

  // The chart: every native variant's HTTP ratio, per workload.
  const chartGroups = GROUPS.flatMap((g) =>
    g.variants
      .filter((v) => v.key !== g.baseline && !handleKey(v.key).endsWith('none'))
      .map((v) => ({
        label: `${v.name} vs ${g.variants.find((b) => b.key === g.baseline).name.replace(/ \((peer|baseline)[^)]*\)/, '')}`,
        bars: WORKLOADS.map((w) => ({ name: w.name, ratio: http[`${w.name}/${v.key}`].ratio })),
      })),
  );
  fs.writeFileSync(
    path.join(__dirname, 'results.svg'),
    ratioChart('think-session-native vs the JavaScript session stores', chartGroups),
  );
  const only = process.env.BENCH_ONLY ? ` (BENCH_ONLY=${process.env.BENCH_ONLY})` : '';
  const markdown = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\`${only} on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    '',
    table([['', 'version'], ...machine()]),
    '',
    intro,
    '',
    '![HTTP ratios](results.svg)',
    ...sections.flatMap(([title, rows]) => ['', `## ${title}`, '', table(rows)]),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), markdown);
  progress('wrote bench/RESULTS.md and bench/results.svg');
  fs.rmSync(process.env.BENCH_DIR, { recursive: true, force: true });
  // the shared memory store's folder (bench/handles.js)
  fs.rmSync(path.join('/dev/shm', `tsn-bench-${path.basename(process.env.BENCH_DIR)}`), {
    recursive: true,
    force: true,
  });
})().catch((err) => {
  console.error(`[bench] failed: ${err.stack || err}`);
  process.exit(1);
});
