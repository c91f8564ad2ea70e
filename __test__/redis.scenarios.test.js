'use strict';
const { before, after } = require('node:test');
const { runScenarios, assertOnlySessionIds } = require('./support/scenarios');
const { startServer, startCluster } = require('./support/redis');

// The apps read the servers' ports from the environment they are booted with.
let server;
let cluster;
before(async () => {
  server = await startServer();
  cluster = await startCluster();
  process.env.TSN_REDIS_PORT = String(server.port);
  process.env.TSN_REDIS_CLUSTER = cluster.urls.join(',');
});
after(async () => {
  await Promise.all([server && server.close(), cluster && cluster.close()]);
});

// Forged cookies must leave no key behind but session ids.
const keysOf = (nodes) => nodes.flatMap((node) => node.cli('--scan').split('\n').filter(Boolean));

runScenarios({
  name: 'redis',
  session: `{
  type: 'redis',
  common: { cookie: { name: 'thinkjs' } },
  redis: { handle: require('think-session-native').RedisSession, port: Number(process.env.TSN_REDIS_PORT), maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(keysOf([server]), 'Redis'),
});

runScenarios({
  name: 'redis-cluster',
  thinkjs: ['4.0.0'],
  session: `{
  type: 'redis',
  common: { cookie: { name: 'thinkjs' } },
  redis: { handle: require('think-session-native').RedisSession, cluster: process.env.TSN_REDIS_CLUSTER.split(','), maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(keysOf(cluster.nodes), 'the cluster'),
});

// format: 'hash' on one server and on the cluster (regeneration moves a hash between slots).
runScenarios({
  name: 'redis-hash',
  thinkjs: ['4.0.0'],
  session: `{
  type: 'redis',
  common: { cookie: { name: 'thinkjs' } },
  redis: { handle: require('think-session-native').RedisSession, port: Number(process.env.TSN_REDIS_PORT), format: 'hash', maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(keysOf([server]), 'Redis'),
});

runScenarios({
  name: 'redis-cluster-hash',
  thinkjs: ['4.0.0'],
  session: `{
  type: 'redis',
  common: { cookie: { name: 'thinkjs' } },
  redis: { handle: require('think-session-native').RedisSession, cluster: process.env.TSN_REDIS_CLUSTER.split(','), format: 'hash', maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(keysOf(cluster.nodes), 'the cluster'),
});

// A read cache in each of two workers: a login on one is seen by a redirect served by the
// other, a logout by every worker, parallel writes all kept (Redis invalidates each cache).
runScenarios({
  name: 'redis-cache-2-workers',
  thinkjs: ['4.0.0'],
  extends: ['think-session'],
  workers: 2,
  session: `{
  type: 'redis',
  common: { cookie: { name: 'thinkjs' } },
  redis: { handle: require('think-session-native').RedisSession, port: Number(process.env.TSN_REDIS_PORT), cache: { maxEntries: 1000 }, maxAge: '1d' }
}`,
  afterForged: () => assertOnlySessionIds(keysOf([server]), 'Redis'),
});
