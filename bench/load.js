'use strict';
// A keep-alive HTTP load generator: `connections` clients, each with its own session
// cookie, each sending its next request when the last one is answered.
const http = require('http');

function request(agent, url, path, jar) {
  return new Promise((resolve, reject) => {
    const headers = jar.cookie ? { cookie: jar.cookie } : {};
    const req = http.request({ host: url.hostname, port: url.port, path, headers, agent }, (res) => {
      const set = res.headers['set-cookie'];
      if (set) jar.cookie = set[0].split(';')[0];
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function load(base, path, { connections = 32, seconds = 5 } = {}) {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies = [];
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const jar = {};
      while (performance.now() < end) {
        const t = performance.now();
        await request(agent, url, path, jar);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p99: latencies[Math.floor(latencies.length * 0.99)] };
}

module.exports = { load };
