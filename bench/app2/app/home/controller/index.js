// The bench app's workloads on ThinkJS 2: the example's page (two reads, one write, HTML)
// and the bare counter (one read, one write, JSON).
const page = (visits, user) => `<!doctype html>
<html><head><meta charset="utf-8"><title>think-session-native example</title></head>
<body><h1>think-session-native</h1><p>Visits in this session: <b id="visits">${visits}</b></p>
${user ? `<p>Signed in as ${user.name}</p>` : '<form method="post" action="/index/login"></form>'}
</body></html>`;

module.exports = class extends think.controller.base {
  pingAction() {
    return this.json({ pid: process.pid });
  }

  // the ceiling: the same bodies, no session
  staticAction() {
    this.type('text/html');
    return this.end(page(1));
  }

  plainAction() {
    return this.json({ n: 1 });
  }

  async indexAction() {
    const visits = ((await this.session('visits')) || 0) + 1;
    await this.session('visits', visits);
    const user = await this.session('user');
    this.type('text/html');
    return this.end(page(visits, user));
  }

  async counterAction() {
    const n = ((await this.session('visits')) || 0) + 1;
    await this.session('visits', n);
    return this.json({ n });
  }
};
