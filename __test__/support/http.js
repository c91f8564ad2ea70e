'use strict';
// A small HTTP client with a cookie jar, speaking to a real ThinkJS app.
const http = require('http');

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

class Client {
  constructor(base, cookieName = 'thinkjs') {
    this.base = new URL(base);
    this.cookieName = cookieName;
    this.jar = new Map();
  }

  get session() {
    return this.jar.get(this.cookieName);
  }

  // `rawCookie` replaces the jar for this request (for forged values, sent byte for byte).
  request(path, { rawCookie, newConnection = false } = {}) {
    const headers = {};
    const cookie =
      rawCookie !== undefined ? rawCookie : [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
    if (cookie) headers.cookie = cookie;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.base.hostname, port: this.base.port, path, headers, agent: newConnection ? false : agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const setCookies = res.headers['set-cookie'] || [];
            for (const line of setCookies) this.receiveCookie(line);
            const text = Buffer.concat(chunks).toString('utf8');
            let body = text;
            try {
              body = JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode, headers: res.headers, body, setCookies });
          });
        },
      );
      req.setTimeout(15000, () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  receiveCookie(line) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expires = attributes.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('expires='));
    if (!value || (expires && Date.parse(expires.slice(8)) < Date.now() - 1000)) this.jar.delete(name);
    else this.jar.set(name, value);
  }
}

module.exports = { Client, agent };
