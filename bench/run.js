'use strict';
// `npm run bench`: builds the release addon, then measures every variant side by side in
// one run and prints ratios. Options (env): BENCH_SECONDS (per HTTP round, default 5),
// BENCH_ROUNDS (default 5), BENCH_SESSIONS (memory footprint, default 1000000),
// BENCH_GC_FILES (default 100000), BENCH_ONLY=memory,file,redis,db to run some groups,
// BENCH_SKIP_BUILD=1 to reuse the current binary.
const fs = require('fs');
const path = require('path');
const net = require('net');
const { spawn, spawnSync, execFileSync } = require('child_process');
const { load } = require('./load');

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
    ],
  },
  {
    name: 'file',
    baseline: 'tsfile',
    variants: [
      { name: 'think-session-file (peer)', key: 'tsfile' },
      { name: 'FileSession', key: 'file' },
    ],
  },
  {
    name: 'redis',
    baseline: 'tsredis',
    inflight: [1, 64],
    variants: [
      { name: 'think-session-redis (peer)', key: 'tsredis' },
      { name: 'RedisSession', key: 'redis' },
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
const ADAPTER_RUNS = GROUPS.filter((g) => !g.httpOnly).flatMap((g) =>
  (g.inflight || [1]).flatMap((inflight) => g.variants.map((v) => ({ g, v, inflight, key: `${v.key}@${inflight}` }))),
);

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
  const { freshDatabase, query } = require('../__test__/support/db');
  const { DB_NAME } = require('./handles');
  progress(`making databases ${DB_NAME} on MariaDB and PostgreSQL`);
  freshDatabase('mysql', DB_NAME);
  freshDatabase('postgresql', DB_NAME);
  query(
    'mysql',
    DB_NAME,
    `CREATE TABLE tsm_session (id int(11) unsigned NOT NULL AUTO_INCREMENT,
      cookie varchar(255) NOT NULL DEFAULT '', data text, expire bigint(11) NOT NULL DEFAULT '0',
      maxage int(11) NOT NULL DEFAULT '0', PRIMARY KEY (id), UNIQUE KEY cookie (cookie),
      KEY expire (expire)) ENGINE=InnoDB DEFAULT CHARSET=utf8`,
  );
}

// ThinkJS 2's db sessions need their table (ThinkJS 2's DDL); one per side.
function resetThinkjs2Tables() {
  if (!GROUPS.some((g) => g.name === 'thinkjs2-db')) return;
  const { freshDatabase, query } = require('../__test__/support/db');
  const { DB_NAME } = require('./handles');
  if (!GROUPS.some((g) => g.name === 'db')) freshDatabase('mysql', DB_NAME);
  for (const prefix of ['tj2b_', 'tj2n_']) {
    query(
      'mysql',
      DB_NAME,
      `CREATE TABLE ${prefix}session (id int(11) unsigned NOT NULL AUTO_INCREMENT,
        cookie varchar(255) NOT NULL DEFAULT '', data text, expire bigint(11) NOT NULL,
        PRIMARY KEY (id), UNIQUE KEY cookie (cookie), KEY expire (expire)) ENGINE=InnoDB DEFAULT CHARSET=utf8`,
    );
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
    : { BENCH_SESSION: variant };
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
  { name: 'example page', route: (key) => (key.endsWith('none') ? '/index/static' : '/') },
  { name: 'counter', route: (key) => (key.endsWith('none') ? '/index/plain' : '/index/counter') },
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
          const { writes } = v.key.startsWith('tj2-') ? {} : handleFor(v.key);
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

function gcStalls() {
  const out = {};
  for (const key of ['tsfile', 'file'].filter((k) => VARIANTS.some((v) => v.key === k))) {
    progress(`gc of ${GC_FILES} expired files: ${key} (writing them first)`);
    out[key] = node([path.join(__dirname, 'gc-stall.js'), key, String(GC_FILES)]);
  }
  return out;
}

function footprint() {
  const out = {};
  if (!VARIANTS.some((v) => v.key === 'memory')) return out;
  for (const key of ['jsmap', 'memory']) {
    progress(`memory footprint: ${SESSIONS} sessions in ${key}`);
    out[key] = node([
      '--expose-gc',
      '--max-old-space-size=8192',
      path.join(__dirname, 'memory.js'),
      key,
      String(SESSIONS),
    ]);
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

(async () => {
  build();
  resetRedis();
  resetDatabases();
  resetThinkjs2Tables();
  const adapter = adapterLevel();
  const http = await httpLevel();
  const stalls = gcStalls();
  const memory = footprint();
  const fmt = (n) => Math.round(n).toLocaleString('en-US');
  const ratio = (a, b) => (Math.max(0, a) / b).toFixed(2) + 'x';
  const mb = (bytes) => (Math.max(0, bytes) / 1048576).toFixed(1) + ' MiB';

  console.log(
    `\nthink-session-native bench: Node ${process.version}, ${os.cpus().length} cores, medians of ${ROUNDS} rounds` +
      ` (HTTP ratios: the median of each round's ratio)` +
      `${pin ? ', app worker pinned to core 0' : ''}; adapter = new handle + get + set + end of request (a deferred` +
      ` write awaited); HTTP = through a ThinkJS 4 app, 32 keep-alive clients with their own cookies;` +
      ` ratios against each store's JS peer\n`,
  );
  if (ADAPTER_RUNS.length) {
    console.log(
      table([
        ['variant', 'in flight', 'adapter ops/s', 'vs peer'],
        ...ADAPTER_RUNS.map(({ g, v, inflight, key }) => [
          v.name,
          inflight,
          fmt(adapter[key]),
          ratio(adapter[key], adapter[`${g.baseline}@${inflight}`]),
        ]),
      ]),
    );
  }
  for (const w of WORKLOADS) {
    console.log(`\nHTTP, ${w.name}:\n`);
    console.log(
      table([
        ['variant', 'req/s', 'vs peer', 'p99 ms', 'app CPU us/req', 'writes persisted/s', 'vs peer'],
        ...GROUPS.flatMap((g) =>
          g.variants.map((v) => {
            const r = http[`${w.name}/${v.key}`];
            const persisted = Number.isNaN(r.persisted) ? ['-', '-'] : [fmt(r.persisted), ratio(r.persistedRatio, 1)];
            return [v.name, fmt(r.rps), r.ratio.toFixed(2) + 'x', r.p99.toFixed(2), r.cpuUs.toFixed(1), ...persisted];
          }),
        ),
      ]),
    );
  }
  if (Object.keys(stalls).length) {
    console.log(`\ngc of ${fmt(GC_FILES)} expired session files:\n`);
    console.log(
      table([
        ['variant', 'longest event-loop stall ms', 'seconds', 'expired files left', 'errors'],
        ...Object.entries(stalls).map(([k, r]) => [
          VARIANTS.find((v) => v.key === k).name,
          r.maxStallMs.toFixed(1),
          r.seconds.toFixed(1),
          fmt(r.left),
          r.error || '-',
        ]),
      ]),
    );
  }
  if (Object.keys(memory).length) {
    console.log(`\n${fmt(SESSIONS)} live sessions, after full GC:\n`);
    console.log(
      table([
        ['variant', 'V8 heap used', 'vs JS Map', 'RSS', 'vs JS Map'],
        ...['jsmap', 'memory'].map((k) => [
          VARIANTS.find((v) => v.key === k).name,
          mb(memory[k].heapUsed),
          ratio(memory[k].heapUsed, memory.jsmap.heapUsed),
          mb(memory[k].rss),
          ratio(memory[k].rss, memory.jsmap.rss),
        ]),
      ]),
    );
  }
  fs.rmSync(process.env.BENCH_DIR, { recursive: true, force: true });
})().catch((err) => {
  console.error(`[bench] failed: ${err.stack || err}`);
  process.exit(1);
});
