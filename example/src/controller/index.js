const { regenerate } = require('think-session-native');

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const page = (body) => `<!doctype html>
<html><head><meta charset="utf-8"><title>think-session-native example</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>think-session-native</h1>
${body}
</body></html>`;

class Index extends think.Controller {
  async indexAction() {
    const visits = ((await this.session('visits')) || 0) + 1;
    await this.session('visits', visits);
    const user = await this.session('user');
    this.type = 'text/html';
    this.body = page(
      user
        ? `<p>Signed in as <b>${escape(user.name)}</b> since ${escape(user.since)}.</p>
<p>Visits in this session: <b id="visits">${visits}</b></p>
<p><a href="/index/logout">Log out</a></p>`
        : `<p>Visits in this session: <b id="visits">${visits}</b></p>
<form method="post" action="/index/login">
<label>Name <input name="name" required maxlength="40"></label>
<button>Log in</button>
</form>`,
    );
  }

  // A login gives the session a new id (the visits come along): an id seen or planted before
  // the login is worth nothing after it.
  async loginAction() {
    const name = String(this.post('name') || this.get('name') || '').trim().slice(0, 40);
    if (name) {
      await regenerate(this.ctx);
      await this.session('user', { name, since: new Date().toISOString() });
    }
    return this.redirect('/');
  }

  async logoutAction() {
    await this.session(null);
    return this.redirect('/');
  }
}

Index.page = page;
module.exports = Index;
