// ferrocd console. Plain JavaScript, no build step, no dependencies.
//
// Everything it reads or writes goes through the node's etcd v3 JSON
// gateway (/v3/...) with the user's token, exactly as any JSON client
// would; the only call of its own is <mount>/api/cluster (every member's
// status, which a browser cannot ask the other members for). Keys and
// values are bytes: they travel base64-encoded and are shown as text when
// they are UTF-8, escaped or hex otherwise.
'use strict';

(() => {
  // ---------------------------------------------------------------- bytes
  const utf8enc = new TextEncoder();
  const utf8dec = new TextDecoder('utf-8', { fatal: true });
  const lossy = new TextDecoder('utf-8');

  const bytes = (s) => utf8enc.encode(s);
  function b64(u8) {
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }
  function unb64(s) {
    if (!s) return new Uint8Array(0);
    const bin = atob(s);
    const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  }
  function utf8(u8) {
    try { return utf8dec.decode(u8); } catch { return null; }
  }
  // A key as text: UTF-8 without control characters, else escaped bytes.
  function label(u8) {
    const s = utf8(u8);
    // eslint-disable-next-line no-control-regex
    if (s !== null && !/[\u0000-\u001f\u007f]/.test(s)) return s;
    let out = '';
    for (const b of u8) {
      out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b)
        : '\\x' + b.toString(16).padStart(2, '0');
    }
    return out;
  }
  function concat(a, b) {
    const r = new Uint8Array(a.length + b.length);
    r.set(a); r.set(b, a.length);
    return r;
  }
  function startsWith(u8, p) {
    if (p.length > u8.length) return false;
    for (let i = 0; i < p.length; i++) if (u8[i] !== p[i]) return false;
    return true;
  }
  function indexOf(u8, needle, from) {
    outer: for (let i = from; i + needle.length <= u8.length; i++) {
      for (let j = 0; j < needle.length; j++) if (u8[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }
  // etcd's prefix end: the first key after every key starting with p
  // ("\0" — everything — for an empty or all-0xff prefix).
  function prefixEnd(p) {
    const e = p.slice();
    for (let i = e.length - 1; i >= 0; i--) {
      if (e[i] < 0xff) { e[i]++; return e.slice(0, i + 1); }
    }
    return new Uint8Array([0]);
  }
  const ZERO = new Uint8Array([0]);
  // The smallest key after k.
  const after = (k) => concat(k, ZERO);
  function fromHex(s) {
    const t = s.replace(/\s+/g, '');
    if (t.length % 2 || /[^0-9a-fA-F]/.test(t)) return null;
    const u8 = new Uint8Array(t.length / 2);
    for (let i = 0; i < u8.length; i++) u8[i] = parseInt(t.substr(i * 2, 2), 16);
    return u8;
  }
  function hexdump(u8) {
    const rows = [];
    for (let o = 0; o < u8.length; o += 16) {
      const row = u8.subarray(o, o + 16);
      const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
      const asc = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      rows.push(o.toString(16).padStart(8, '0') + '  ' + hex.padEnd(47) + '  ' + asc);
    }
    return rows.join('\n');
  }
  // int64 fields come as strings (proto3 JSON); lease and member ids are
  // shown in hex as etcdctl does.
  const num = (v) => Number(v || 0);
  const hexId = (v) => (v ? BigInt(v).toString(16) : '0');
  function parseHexId(s) {
    const t = s.trim().replace(/^0x/i, '');
    if (!t) return '0';
    if (!/^[0-9a-fA-F]{1,16}$/.test(t)) return null;
    return BigInt('0x' + t).toString();
  }
  function size(n) {
    if (n < 1024) return n + ' B';
    const u = ['KiB', 'MiB', 'GiB', 'TiB'];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(n < 10 ? 1 : 0) + ' ' + u[i];
  }

  // ------------------------------------------------------------------ DOM
  const $ = (sel, root = document) => root.querySelector(sel);
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else if (k in e && typeof v !== 'string') e[k] = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  function button(text, onclick, attrs) {
    return el('button', Object.assign({ type: 'button', onclick }, attrs || {}), text);
  }
  let bannerTimer = null;
  // An error stays until dismissed; a confirmation goes after a while.
  function showBanner(msg, kind) {
    const b = $('#banner');
    $('#banner-text').textContent = msg;
    b.className = kind || '';
    b.hidden = false;
    clearTimeout(bannerTimer);
    if (kind === 'info') bannerTimer = setTimeout(hideBanner, 8000);
  }
  function hideBanner() { $('#banner').hidden = true; }
  function confirmBox(text, ok) {
    const d = $('#confirm');
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = ok || 'Confirm';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.returnValue = '';
      d.showModal();
      $('#confirm-cancel').focus();
    });
  }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(code, message, http) {
      super(message);
      this.code = code;
      this.http = http;
    }
  }
  const GRPC_UNAUTHENTICATED = 16;
  const GRPC_OUT_OF_RANGE = 11;

  const session = {
    token: sessionStorage.getItem('ferrocd.token') || '',
    user: sessionStorage.getItem('ferrocd.user') || '',
    authEnabled: false,
  };
  function headers() {
    const h = { 'Content-Type': 'application/json' };
    if (session.token) h.Authorization = session.token;
    return h;
  }
  async function readJson(r) {
    const text = await r.text();
    try { return JSON.parse(text); } catch { return { error: text.trim() || r.statusText }; }
  }
  // One request; a failure (HTTP or etcd's `{error, code, message}`) is
  // thrown as an ApiError, and a lost login sends the user to log in.
  async function request(url, init) {
    let r;
    try {
      r = await fetch(url, init);
    } catch (e) {
      throw new ApiError(14, 'cannot reach the server: ' + e.message, 0);
    }
    const j = await readJson(r);
    if (!r.ok || j.error) {
      const err = new ApiError(j.code, j.message || j.error || r.statusText, r.status);
      if (authProblem(err)) onAuthLost(err);
      throw err;
    }
    return j;
  }
  // A gateway call: POST /v3/<path> with a JSON message.
  const call = (path, body) => request('/v3/' + path, { method: 'POST', headers: headers(), body: JSON.stringify(body || {}) });
  const getJson = (path) => request(path, { headers: session.token ? { Authorization: session.token } : {} });
  // A token that expired or a login that is needed.
  function authProblem(e) {
    return session.authEnabled && (e.code === GRPC_UNAUTHENTICATED || /user name is empty|invalid auth token/.test(e.message));
  }
  function onAuthLost(e) {
    session.token = '';
    sessionStorage.removeItem('ferrocd.token');
    showLogin(/invalid auth token/.test(e.message) ? 'Your session expired; log in again.' : '');
  }
  const isCompacted = (e) => e.code === GRPC_OUT_OF_RANGE || /compacted/.test(e.message);

  // The range of keys under prefix p (everything for an empty one).
  function span(p) {
    return p.length ? { key: b64(p), range_end: b64(prefixEnd(p)) } : { key: b64(ZERO), range_end: b64(ZERO) };
  }

  // ------------------------------------------------------------- routing
  const views = ['keys', 'watch', 'leases', 'cluster'];
  let current = null;
  function route() {
    if (session.authEnabled && !session.token) { showLogin(''); return; }
    const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
    const v = views.includes(name) ? name : 'keys';
    for (const n of views) {
      $('#view-' + n).hidden = n !== v;
      const a = $('#nav-' + n);
      if (n === v) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    $('#view-login').hidden = true;
    if (current !== v) {
      if (current === 'cluster') cluster.stop();
      current = v;
      if (v === 'keys') keys.show();
      if (v === 'leases') leases.load();
      if (v === 'cluster') cluster.start();
    }
  }
  function showLogin(msg) {
    for (const n of views) $('#view-' + n).hidden = true;
    cluster.stop();
    current = null;
    $('#view-login').hidden = false;
    $('#login-error').textContent = msg || '';
    renderWho();
    $('#login-user').focus();
  }
  function renderWho() {
    $('#who').textContent = session.authEnabled
      ? (session.token ? 'user: ' + session.user : 'not logged in')
      : 'auth off';
    $('#logout').hidden = !(session.authEnabled && session.token);
  }
  async function login(ev) {
    ev.preventDefault();
    const name = $('#login-user').value;
    const password = $('#login-password').value;
    $('#login-error').textContent = '';
    try {
      const r = await call('auth/authenticate', { name, password });
      session.token = r.token;
      session.user = name;
      sessionStorage.setItem('ferrocd.token', r.token);
      sessionStorage.setItem('ferrocd.user', name);
      $('#login-password').value = '';
      renderWho();
      route();
    } catch (e) {
      $('#login-error').textContent = e.message;
    }
  }
  function logout() {
    session.token = '';
    sessionStorage.removeItem('ferrocd.token');
    watch.stop();
    showLogin('');
  }

  // ------------------------------------------------------------------ keys
  const PAGE = 100; // children or keys per page
  const SHOW_BYTES = 64 * 1024; // of a value, until asked for all
  const keys = {
    selected: null, // Uint8Array of the key shown
    expanded: new Set(), // labels of open tree directories
    rendered: false,
    listNext: null,

    prefix() { return bytes($('#keys-prefix').value); },
    sep() { return bytes($('#keys-sep').value || '/'); },
    mode() { return $('#keys-mode').value; },

    show() { if (!this.rendered) this.render(); },
    render() {
      this.rendered = true;
      const tree = this.mode() === 'tree';
      $('#keys-tree').hidden = !tree;
      $('#keys-flat').hidden = tree;
      if (tree) this.renderTree(); else this.renderList();
    },

    // One page of the direct children of `prefix`, from key `from`:
    // leaves (keys) and directories (a prefix ending at the next
    // separator). A directory is skipped over in one step (the next read
    // starts at its prefix end), so a prefix holding a million keys under
    // a few directories costs a few small reads, never a full scan.
    async children(prefix, from) {
      const sep = this.sep();
      const end = prefixEnd(prefix);
      const out = [];
      let start = from || (prefix.length ? prefix : ZERO);
      for (;;) {
        const r = await call('kv/range', {
          key: b64(start), range_end: b64(prefix.length ? end : ZERO), limit: PAGE + 1, keys_only: true,
        });
        const kvs = r.kvs || [];
        let lastDir = null;
        let next = null;
        for (const kv of kvs) {
          const k = unb64(kv.key);
          if (lastDir && startsWith(k, lastDir)) continue;
          if (out.length === PAGE) { next = k; break; }
          const i = indexOf(k, sep, prefix.length);
          if (i >= 0) {
            lastDir = k.slice(0, i + sep.length);
            out.push({ dir: lastDir });
          } else {
            lastDir = null;
            out.push({ key: k });
          }
          start = lastDir ? prefixEnd(lastDir) : after(k);
        }
        if (next) return { items: out, next };
        if (lastDir) start = prefixEnd(lastDir);
        // A full page goes on reading until it sees the next page's first
        // key, so "Load more" is offered only when there is more.
        if (!r.more || !kvs.length) return { items: out, next: null };
      }
    },

    renderTree() {
      const root = $('#keys-tree');
      const ul = el('ul', { 'aria-label': 'Keys' });
      root.replaceChildren(ul);
      this.loadChildren(ul, this.prefix(), null);
    },
    async loadChildren(ul, prefix, from) {
      const more = ul.querySelector(':scope > li.more');
      if (more) more.remove();
      let page;
      try {
        page = await this.children(prefix, from);
      } catch (e) {
        ul.append(el('li', { class: 'error', text: e.message }));
        return;
      }
      if (!page.items.length && !from) ul.append(el('li', { class: 'muted', text: '(no keys)' }));
      for (const it of page.items) ul.append(this.treeItem(prefix, it));
      if (page.next) {
        ul.append(el('li', { class: 'more' },
          button('Load more…', () => this.loadChildren(ul, prefix, page.next), { class: 'link', 'data-more': label(prefix) })));
      }
    },
    treeItem(prefix, it) {
      if (it.dir) {
        const name = label(it.dir.subarray(prefix.length));
        const lbl = label(it.dir);
        // A disclosure button per directory (plain lists and buttons:
        // Tab and Enter work without a tree widget's arrow-key model).
        const li = el('li', { class: 'dir' });
        const b = button(name, () => {
          if (b.getAttribute('aria-expanded') === 'true') {
            b.setAttribute('aria-expanded', 'false');
            li.querySelector(':scope > ul').remove();
            this.expanded.delete(lbl);
          } else {
            open();
          }
        }, { class: 'link', 'data-dir': lbl, 'aria-expanded': 'false' });
        const open = () => {
          b.setAttribute('aria-expanded', 'true');
          const ul = el('ul');
          li.append(ul);
          this.expanded.add(lbl);
          this.loadChildren(ul, it.dir, null);
        };
        li.append(b);
        if (this.expanded.has(lbl)) open();
        return li;
      }
      const lbl = label(it.key);
      const name = label(it.key.subarray(prefix.length));
      const b = button(name || '(this prefix)', () => this.select(it.key), { class: 'link', 'data-key': lbl });
      if (this.selected && label(this.selected) === lbl) b.classList.add('selected');
      return el('li', {}, b);
    },

    renderList() {
      $('#keys-list').replaceChildren();
      this.listCount = 0;
      this.listTotal = 0;
      this.loadList(this.prefix());
    },
    async loadList(from) {
      const first = this.listCount === 0;
      const p = this.prefix();
      const req = Object.assign(span(p), { limit: PAGE, keys_only: true });
      req.key = b64(from.length ? from : ZERO);
      try {
        const r = await call('kv/range', req);
        const kvs = r.kvs || [];
        for (const kv of kvs) {
          const k = unb64(kv.key);
          const lbl = label(k);
          const b = button(lbl, () => this.select(k), { class: 'link', 'data-key': lbl });
          if (this.selected && label(this.selected) === lbl) b.classList.add('selected');
          $('#keys-list').append(el('li', {}, b));
        }
        // `count` is what the range holds from this page's first key on.
        if (first) this.listTotal = num(r.count);
        this.listCount += kvs.length;
        const last = kvs.length ? unb64(kvs[kvs.length - 1].key) : null;
        this.listNext = r.more && last ? after(last) : null;
        $('#keys-more').hidden = !this.listNext;
        $('#keys-count').textContent = this.listNext
          ? 'Showing ' + this.listCount + ' of ' + this.listTotal + ' keys'
          : this.listCount + (this.listCount === 1 ? ' key' : ' keys');
      } catch (e) {
        $('#keys-count').textContent = e.message;
      }
    },

    markSelected() {
      const lbl = this.selected ? label(this.selected) : null;
      for (const b of document.querySelectorAll('#view-keys button.selected')) b.classList.remove('selected');
      if (lbl === null) return;
      for (const b of document.querySelectorAll('#view-keys button[data-key]')) {
        if (b.getAttribute('data-key') === lbl) b.classList.add('selected');
      }
    },

    // ----------------------------------------------------------- detail
    async select(key, atRevision) {
      this.selected = key;
      this.markSelected();
      const pane = $('#key-detail');
      const req = { key: b64(key) };
      if (atRevision) req.revision = atRevision;
      let r;
      try {
        r = await call('kv/range', req);
      } catch (e) {
        pane.replaceChildren(el('h2', { id: 'detail-key', text: label(key) }), el('p', { class: 'error', text: e.message }));
        return;
      }
      const kv = (r.kvs || [])[0];
      if (!kv) {
        pane.replaceChildren(el('h2', { id: 'detail-key', text: label(key) }),
          el('p', { class: 'muted', id: 'detail-missing', text: 'This key does not exist (any more).' }));
        return;
      }
      this.renderDetail(key, kv, atRevision ? num(r.header && r.header.revision) : 0, atRevision);
    },

    renderDetail(key, kv, _headerRev, atRevision) {
      const pane = $('#key-detail');
      const value = unb64(kv.value);
      const fmt = el('select', { id: 'detail-format', 'aria-label': 'Show value as' },
        el('option', { value: 'auto', text: 'Auto' }), el('option', { value: 'text', text: 'Text' }),
        el('option', { value: 'json', text: 'JSON' }), el('option', { value: 'hex', text: 'Hex' }));
      const pre = el('pre', { class: 'value', id: 'detail-value', tabindex: '0' });
      // A large value shows its start (a hex dump of 1.5 MiB is 100k
      // lines); the rest on request.
      let whole = value.length <= SHOW_BYTES;
      const more = button('', () => { whole = true; showValue(); }, { id: 'detail-show-all', class: 'link' });
      const showValue = () => {
        const r = renderValue(whole ? value : value.subarray(0, SHOW_BYTES), fmt.value);
        pre.textContent = r.text;
        pre.classList.toggle('error', !!r.error);
        $('#detail-shown-as', pane).textContent = fmt.value === 'auto' && r.as ? '(' + r.as + ')' : '';
        more.hidden = whole;
        more.textContent = 'Showing the first ' + size(SHOW_BYTES) + ' of ' + size(value.length) + '; show all';
      };
      fmt.addEventListener('change', showValue);
      const leaseDd = el('dd', { id: 'detail-lease', text: kv.lease && kv.lease !== '0' ? hexId(kv.lease) : 'none' });
      const kids = [
        el('h2', { id: 'detail-key', text: label(key) }),
        atRevision ? el('p', { class: 'conflict', id: 'detail-at', text: 'As of revision ' + atRevision + ' (a past version).' }) : null,
        el('dl', { class: 'meta' },
          el('dt', { text: 'Create revision' }), el('dd', { id: 'detail-create', text: String(num(kv.create_revision)) }),
          el('dt', { text: 'Mod revision' }), el('dd', { id: 'detail-mod', text: String(num(kv.mod_revision)) }),
          el('dt', { text: 'Version' }), el('dd', { id: 'detail-version', text: String(num(kv.version)) }),
          el('dt', { text: 'Lease' }), leaseDd,
          el('dt', { text: 'Size' }), el('dd', { text: size(value.length) })),
        el('div', { class: 'toolbar' }, el('label', { for: 'detail-format', text: 'Show as' }), fmt,
          el('span', { class: 'muted', id: 'detail-shown-as' })),
        pre,
        more,
      ];
      if (atRevision) {
        kids.push(el('div', { class: 'toolbar' }, button('Back to the current version', () => this.select(key), { id: 'detail-current' })));
      } else {
        kids.push(el('div', { class: 'toolbar' },
          button('Edit', () => this.edit(key, kv), { id: 'detail-edit', class: 'primary' }),
          button('Delete', () => this.remove(key, kv), { id: 'detail-delete', class: 'danger' }),
          button('History', () => this.history(key, kv), { id: 'detail-history' })));
        kids.push(el('div', { id: 'detail-history-list', class: 'history' }));
      }
      pane.replaceChildren(...kids.filter((k) => k !== null));
      showValue();
      if (kv.lease && kv.lease !== '0') {
        call('lease/timetolive', { ID: kv.lease }).then((t) => {
          const ttl = num(t.TTL);
          leaseDd.textContent = hexId(kv.lease) + (ttl < 0 ? ' (expired)' : ' (TTL ' + ttl + ' s of ' + num(t.grantedTTL) + ')');
        }, (e) => { leaseDd.textContent = hexId(kv.lease) + ' (TTL unknown: ' + e.message + ')'; });
      }
    },

    // Every earlier version of this key's current life, newest first,
    // read at mod_revision - 1 each, until its creation or compaction.
    async history(key, kv) {
      const box = $('#detail-history-list');
      box.replaceChildren(el('h3', { text: 'History' }));
      const list = el('ol', { reversed: true, id: 'history-entries' });
      box.append(list);
      const entry = (v, current) => {
        const val = unb64(v.value);
        const s = utf8(val);
        const preview = s === null ? '(binary, ' + size(val.length) + ')' : (s.length > 80 ? s.slice(0, 80) + '…' : s);
        const rev = num(v.mod_revision);
        return el('li', {},
          current ? el('strong', { text: 'rev ' + rev + ' (current)' })
            : button('rev ' + rev, () => this.select(key, rev), { class: 'link', 'data-rev': String(rev) }),
          ' v' + num(v.version) + ' ', el('span', { class: 'mono', text: preview }));
      };
      list.append(entry(kv, true));
      let v = kv;
      const created = num(kv.create_revision);
      for (let n = 0; n < 50 && num(v.mod_revision) > created; n++) {
        let r;
        try {
          r = await call('kv/range', { key: b64(key), revision: num(v.mod_revision) - 1 });
        } catch (e) {
          list.append(el('li', { class: 'muted', text: isCompacted(e) ? 'older versions are compacted' : e.message }));
          return;
        }
        const old = (r.kvs || [])[0];
        if (!old || num(old.create_revision) !== created) break;
        list.append(entry(old, false));
        v = old;
      }
      list.append(el('li', { class: 'muted', text: 'created at revision ' + created }));
    },

    // --------------------------------------------------------- editing
    // One form for a new key (`kv` null) and for an edit: a txn that
    // puts only if the key is as the user saw it (mod revision, or
    // absent), else reads it, so a conflict is shown, never overwritten.
    edit(key, kv) {
      const pane = $('#key-detail');
      const value = kv ? unb64(kv.value) : new Uint8Array(0);
      const asText = utf8(value);
      let mode = asText === null ? 'hex' : 'text';
      let initial = asText === null ? hexdumpPlain(value) : asText;
      if (asText !== null && looksJson(asText)) {
        try { initial = JSON.stringify(JSON.parse(asText), null, 2); mode = 'json'; } catch { /* text */ }
      }
      const form = el('form', { id: 'edit-form' },
        el('h2', { text: kv ? 'Edit ' + label(key) : 'New key' }),
        el('label', { for: 'edit-key', text: 'Key' }),
        el('input', { id: 'edit-key', value: kv ? label(key) : $('#keys-prefix').value, readOnly: !!kv, spellcheck: 'false', class: 'wide' }),
        el('div', { class: 'toolbar spaced' },
          el('label', { for: 'edit-format', text: 'Value is' }),
          el('select', { id: 'edit-format' },
            el('option', { value: 'text', text: 'Text' }), el('option', { value: 'json', text: 'JSON' }),
            el('option', { value: 'hex', text: 'Hex bytes' })),
          kv ? null : el('label', { for: 'edit-lease', text: 'Lease (hex id)' }),
          kv ? null : el('input', { id: 'edit-lease', placeholder: 'none', size: '18', spellcheck: 'false' })),
        el('label', { for: 'edit-value', class: 'sr-only', text: 'Value' }),
        el('textarea', { id: 'edit-value', spellcheck: 'false' }),
        el('p', { class: 'muted', text: kv ? 'Saves only if nobody changed the key since revision ' + num(kv.mod_revision) + '. The key keeps its lease.' : 'Creates the key only if it does not exist.' }),
        el('div', { class: 'toolbar' },
          el('button', { type: 'submit', id: 'edit-save', class: 'primary' }, 'Save'),
          button('Cancel', () => (kv ? this.select(key) : pane.replaceChildren()), { id: 'edit-cancel' })),
        el('div', { id: 'edit-error', class: 'error', role: 'alert' }));
      pane.replaceChildren(form);
      $('#edit-format').value = mode;
      $('#edit-value').value = initial;
      (kv ? $('#edit-value') : $('#edit-key')).focus();
      form.addEventListener('submit', (ev) => { ev.preventDefault(); this.save(kv); });
    },

    async save(kv) {
      const err = $('#edit-error');
      err.replaceChildren();
      const problem = (m) => { err.replaceChildren(el('p', { text: m })); };
      const keyText = $('#edit-key').value;
      const key = kv ? this.selected : bytes(keyText);
      if (!key.length) return problem('The key must not be empty.');
      const format = $('#edit-format').value;
      const raw = $('#edit-value').value;
      let value;
      if (format === 'json') {
        try { JSON.parse(raw); } catch (e) { return problem('The value is not valid JSON: ' + e.message + '. Nothing was saved.'); }
        value = bytes(raw);
      } else if (format === 'hex') {
        value = fromHex(raw);
        if (!value) return problem('The value is not hex bytes (pairs of 0-9a-f). Nothing was saved.');
      } else {
        value = bytes(raw);
      }
      const put = { key: b64(key), value: b64(value) };
      let compare;
      if (kv) {
        put.ignore_lease = true;
        compare = { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision };
      } else {
        const lease = parseHexId($('#edit-lease').value);
        if (lease === null) return problem('The lease must be a hex lease id.');
        if (lease !== '0') put.lease = lease;
        compare = { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' };
      }
      $('#edit-save').disabled = true;
      try {
        const r = await call('kv/txn', {
          compare: [compare],
          success: [{ request_put: put }],
          failure: [{ request_range: { key: b64(key) } }],
        });
        if (!r.succeeded) {
          const now = ((r.responses || [])[0] || {}).response_range;
          const cur = now && (now.kvs || [])[0];
          this.conflict(key, kv, cur);
          return;
        }
        showBanner('Saved ' + label(key) + ' at revision ' + num(r.header.revision) + '.', 'info');
        if (!kv) this.render();
        await this.select(key);
      } catch (e) {
        problem(e.message + ' Nothing was saved.');
      } finally {
        const b = $('#edit-save');
        if (b) b.disabled = false;
      }
    },

    conflict(key, kv, cur) {
      const box = el('div', { class: 'conflict', id: 'edit-conflict' });
      if (!kv) {
        box.append(el('p', { text: 'Conflict: the key ' + label(key) + ' already exists (mod revision ' + num(cur && cur.mod_revision) + '). Nothing was saved.' }));
      } else if (!cur) {
        box.append(el('p', { text: 'Conflict: someone deleted this key after you opened it. Nothing was saved.' }));
      } else {
        box.append(el('p', { text: 'Conflict: someone changed this key after you opened it (you saw revision ' + num(kv.mod_revision) + ', it is now at ' + num(cur.mod_revision) + '). Nothing was saved.' }));
        const s = utf8(unb64(cur.value));
        box.append(el('p', { text: 'Its value now:' }), el('pre', { class: 'value', id: 'conflict-current', text: s === null ? hexdump(unb64(cur.value)) : s }));
      }
      box.append(button('Discard my edit and load the current version', () => this.select(key), { id: 'conflict-reload' }));
      $('#edit-error').replaceChildren(box);
    },

    async remove(key, kv) {
      if (!(await confirmBox('Delete the key ' + label(key) + '?', 'Delete'))) return;
      try {
        const r = await call('kv/txn', {
          compare: [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision }],
          success: [{ request_delete_range: { key: b64(key) } }],
          failure: [{ request_range: { key: b64(key) } }],
        });
        if (!r.succeeded) {
          showBanner('Not deleted: ' + label(key) + ' changed since you opened it (revision ' + num(kv.mod_revision) + '). Look again before deleting.');
          await this.select(key);
          return;
        }
        showBanner('Deleted ' + label(key) + '.', 'info');
        this.selected = null;
        $('#key-detail').replaceChildren(el('p', { class: 'muted', text: 'Deleted ' + label(key) + '.' }));
        this.render();
      } catch (e) {
        showBanner(e.message);
      }
    },

    async removePrefix() {
      const p = this.prefix();
      if (!p.length) {
        showBanner('Type the prefix to delete in the Prefix box first; the console does not delete the whole keyspace.');
        $('#keys-prefix').focus();
        return;
      }
      let n;
      try {
        const r = await call('kv/range', Object.assign(span(p), { count_only: true }));
        n = num(r.count);
      } catch (e) { showBanner(e.message); return; }
      if (n === 0) { showBanner('No keys start with ' + label(p) + '.', 'info'); return; }
      if (!(await confirmBox('Delete all ' + n + ' keys that start with "' + label(p) + '"? This cannot be undone.', 'Delete ' + n + ' keys'))) return;
      try {
        const r = await call('kv/deleterange', span(p));
        showBanner('Deleted ' + num(r.deleted) + ' keys under ' + label(p) + '.', 'info');
        if (this.selected && startsWith(this.selected, p)) {
          this.selected = null;
          $('#key-detail').replaceChildren();
        }
        this.render();
      } catch (e) { showBanner(e.message); }
    },
  };

  function looksJson(s) { const t = s.trim(); return t.startsWith('{') || t.startsWith('['); }
  function hexdumpPlain(u8) { return Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join(' '); }
  // How a value is shown: auto picks JSON (pretty) or text for UTF-8, hex
  // for anything else.
  function renderValue(u8, how) {
    const s = utf8(u8);
    if (how === 'hex' || (how === 'auto' && s === null)) return { text: hexdump(u8), as: 'hex' };
    if (how === 'json' || (how === 'auto' && looksJson(s))) {
      try { return { text: JSON.stringify(JSON.parse(s === null ? lossy.decode(u8) : s), null, 2), as: 'JSON' }; } catch (e) {
        if (how === 'json') return { text: 'Not valid JSON: ' + e.message, as: '', error: true };
      }
    }
    return { text: s === null ? lossy.decode(u8) : s, as: s === null ? 'text (not valid UTF-8)' : 'text' };
  }

  // ----------------------------------------------------------------- watch
  const MAX_ROWS = 1000;
  const watch = {
    ctl: null,
    paused: false,
    held: [],
    count: 0,

    async start(ev) {
      ev.preventDefault();
      this.stop();
      const p = bytes($('#watch-prefix').value);
      const req = Object.assign(span(p), { prev_kv: $('#watch-prevkv').checked, progress_notify: true });
      const rev = $('#watch-rev').value.trim();
      if (rev) req.start_revision = rev;
      const ctl = new AbortController();
      this.ctl = ctl;
      this.held = [];
      this.setPaused(false);
      $('#watch-stop').disabled = false;
      $('#watch-pause').disabled = false;
      this.state('Connecting…');
      let r;
      try {
        r = await fetch('/v3/watch', { method: 'POST', headers: headers(), body: JSON.stringify({ create_request: req }), signal: ctl.signal });
      } catch (e) {
        if (this.ctl === ctl) this.ended('cannot reach the server: ' + e.message);
        return;
      }
      if (!r.ok) {
        const j = await readJson(r);
        const err = new ApiError(j.code, j.message || j.error || r.statusText, r.status);
        if (authProblem(err)) onAuthLost(err);
        this.ended(err.message);
        return;
      }
      const what = p.length ? 'keys starting with "' + label(p) + '"' : 'every key';
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) this.message(JSON.parse(line), what);
          }
        }
        if (this.ctl === ctl) this.ended('the server ended the watch');
      } catch (e) {
        if (this.ctl === ctl) this.ended(e.name === 'AbortError' ? 'stopped' : e.message);
      }
    },
    message(m, what) {
      if (m.error) { this.ended(m.error.message || JSON.stringify(m.error)); return; }
      const res = m.result || {};
      if (res.created) this.state('Watching ' + what + ' since revision ' + (num(res.header && res.header.revision) + 1) + '.');
      if (res.canceled || num(res.compact_revision) > 0) {
        const why = num(res.compact_revision) > 0
          ? 'revision ' + $('#watch-rev').value + ' is compacted; the oldest available is ' + num(res.compact_revision)
          : (res.cancel_reason || 'canceled by the server');
        this.ended(why);
        return;
      }
      for (const e of res.events || []) {
        if (this.paused) this.held.push(e); else this.row(e);
      }
      if (this.paused) this.state('Paused: ' + this.held.length + ' new events held.');
    },
    row(e) {
      const kv = e.kv || {};
      const type = e.type || 'PUT';
      const short = (v) => {
        if (!v) return '';
        const u8 = unb64(v);
        const s = utf8(u8);
        return s === null ? '(binary, ' + size(u8.length) + ')' : (s.length > 120 ? s.slice(0, 120) + '…' : s);
      };
      const tr = el('tr', { class: 'fresh' },
        el('td', { text: new Date().toLocaleTimeString() }),
        el('td', {}, el('span', { class: 'badge ' + type, text: type })),
        el('td', { class: 'mono', text: label(unb64(kv.key)) }),
        el('td', { text: String(num(kv.mod_revision)) }),
        el('td', { class: 'mono', text: type === 'DELETE' ? '' : short(kv.value) }),
        el('td', { class: 'mono', text: e.prev_kv ? short(e.prev_kv.value) : '' }));
      const body = $('#watch-events tbody');
      body.prepend(tr);
      this.count++;
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    },
    setPaused(p) {
      this.paused = p;
      const b = $('#watch-pause');
      b.setAttribute('aria-pressed', String(p));
      b.textContent = p ? 'Resume' : 'Pause';
      if (!p) {
        const held = this.held;
        this.held = [];
        for (const e of held) this.row(e);
        if (this.ctl && held.length) this.state('Resumed; showed ' + held.length + ' held events.');
      } else {
        this.state('Paused: ' + this.held.length + ' new events held.');
      }
    },
    state(t) { $('#watch-state').textContent = t; },
    ended(why) {
      this.ctl = null;
      $('#watch-stop').disabled = true;
      $('#watch-pause').disabled = true;
      const held = this.held;
      this.held = [];
      for (const e of held) this.row(e);
      this.state('Not watching (' + why + ').');
    },
    stop() {
      if (this.ctl) {
        const c = this.ctl;
        this.ended('stopped');
        c.abort();
      }
    },
  };

  // ---------------------------------------------------------------- leases
  const LEASE_PAGE = 100;
  const leases = {
    ids: [],
    shown: 0,
    async load() {
      $('#leases tbody').replaceChildren();
      this.shown = 0;
      try {
        const r = await call('lease/leases', {});
        this.ids = (r.leases || []).map((l) => l.ID);
      } catch (e) {
        $('#lease-count').textContent = e.message;
        return;
      }
      $('#lease-count').textContent = this.ids.length + (this.ids.length === 1 ? ' lease' : ' leases');
      await this.more();
    },
    async more() {
      const page = this.ids.slice(this.shown, this.shown + LEASE_PAGE);
      this.shown += page.length;
      $('#leases-more').hidden = this.shown >= this.ids.length;
      const rows = await Promise.all(page.map((id) => call('lease/timetolive', { ID: id, keys: true }).catch((e) => ({ ID: id, error: e.message }))));
      for (const t of rows) $('#leases tbody').append(this.row(t));
    },
    row(t) {
      const id = hexId(t.ID);
      const ks = (t.keys || []).map(unb64);
      const keysCell = el('td', {});
      if (t.error) {
        keysCell.textContent = t.error;
      } else if (ks.length) {
        const list = el('ul', { class: 'flat', hidden: true });
        for (const k of ks) {
          list.append(el('li', {}, button(label(k), () => { location.hash = '#/keys'; keys.select(k); }, { class: 'link', 'data-key': label(k) })));
        }
        keysCell.append(button(ks.length + (ks.length === 1 ? ' key' : ' keys'), (ev) => {
          list.hidden = !list.hidden;
          ev.target.setAttribute('aria-expanded', String(!list.hidden));
        }, { class: 'link', 'aria-expanded': 'false', 'data-lease-keys': id }), list);
      } else {
        keysCell.textContent = 'none';
      }
      const ttl = num(t.TTL);
      return el('tr', { 'data-lease': id },
        el('td', { class: 'mono', text: id }),
        el('td', { text: t.error ? '' : (ttl < 0 ? 'expired' : ttl + ' s') }),
        el('td', { text: t.error ? '' : num(t.grantedTTL) + ' s' }),
        keysCell,
        el('td', {}, button('Revoke', () => this.revoke(t.ID, ks.length), { class: 'danger', 'data-revoke': id })));
    },
    async revoke(id, n) {
      const what = 'Revoke lease ' + hexId(id) + (n ? ' and delete its ' + n + (n === 1 ? ' key' : ' keys') : '') + '?';
      if (!(await confirmBox(what, 'Revoke'))) return;
      try {
        await call('lease/revoke', { ID: id });
        showBanner('Revoked lease ' + hexId(id) + '.', 'info');
      } catch (e) { showBanner(e.message); }
      this.load();
    },
    async grant(ev) {
      ev.preventDefault();
      try {
        const r = await call('lease/grant', { TTL: $('#lease-ttl').value });
        showBanner('Granted lease ' + hexId(r.ID) + ' with TTL ' + num(r.TTL) + ' s.', 'info');
      } catch (e) { showBanner(e.message); }
      this.load();
    },
  };

  // --------------------------------------------------------------- cluster
  const SAMPLES = 60; // two minutes at one sample every 2 s
  const RATE_COLOR = '#8a3b12';
  const P99_COLOR = '#1a5fb4';
  const cluster = {
    timers: [],
    series: [], // {rate, p99}
    firstBound: 0, // the histogram's first bucket bound, seconds
    last: null, // previous metrics sample
    start() {
      this.draw();
      this.refresh();
      this.sample();
      this.timers = [setInterval(() => this.refresh(), 5000), setInterval(() => this.sample(), 2000)];
    },
    stop() { for (const t of this.timers) clearInterval(t); this.timers = []; },
    async refresh() {
      let view;
      try {
        view = await getJson('api/cluster');
      } catch (e) {
        $('#cluster-summary').textContent = e.message;
        return;
      }
      const body = $('#members tbody');
      body.replaceChildren();
      view.members.sort((a, b) => (a.name || '~' + a.id).localeCompare(b.name || '~' + b.id));
      for (const m of view.members) {
        const s = m.status;
        const me = m.id === view.member_id;
        body.append(el('tr', { 'data-member': m.id },
          el('td', { class: 'mono', text: m.id + (me ? ' (this member)' : '') }),
          el('td', { text: m.name || '(not started)' }),
          el('td', {}, el('span', { class: 'badge ' + m.role, text: m.role })),
          el('td', { class: 'health ' + (m.healthy ? 'up' : 'down'), text: m.healthy ? 'healthy' : 'unhealthy' + (m.error ? ': ' + m.error : '') }),
          el('td', { text: s ? String(s.raft_term) : '' }),
          el('td', { text: s ? String(s.raft_index) : '' }),
          el('td', { text: s ? String(s.raft_applied_index) : '' }),
          el('td', { text: s ? size(s.db_size) + ' (' + size(s.db_size_in_use) + ')' : '' }),
          el('td', { text: s ? String(s.revision) : '' }),
          el('td', { class: 'mono', text: (m.client_urls || []).join(', ') })));
      }
      const leader = view.members.find((m) => m.role === 'leader');
      $('#cluster-summary').textContent = 'Cluster ' + view.cluster_id + ': ' + view.members.length +
        (view.members.length === 1 ? ' member' : ' members') + ', leader ' + (leader ? leader.name || leader.id : 'unknown') + '.';
      try {
        const a = await call('maintenance/alarm', { action: 'GET' });
        const ul = $('#alarms');
        ul.replaceChildren();
        for (const al of a.alarms || []) ul.append(el('li', { class: 'error', text: (al.alarm || 'NONE') + ' on member ' + hexId(al.memberID) }));
        if (!ul.children.length) ul.append(el('li', { class: 'muted', text: 'none' }));
      } catch (e) {
        $('#alarms').replaceChildren(el('li', { class: 'error', text: e.message }));
      }
    },
    // Unary calls from the node's own /metrics: the handled counter for
    // the rate, the handling-time histogram's buckets for p99 (estimated
    // inside the bucket, as Prometheus's histogram_quantile does).
    async sample() {
      let text;
      try {
        const r = await fetch('/metrics');
        if (!r.ok) throw new Error('HTTP ' + r.status);
        text = await r.text();
      } catch (e) {
        $('#chart-summary').textContent = 'Cannot read /metrics: ' + e.message;
        return;
      }
      const now = { t: performance.now(), handled: 0, buckets: new Map() };
      for (const line of text.split('\n')) {
        if (!line.includes('grpc_type="unary"')) continue;
        const v = parseFloat(line.slice(line.lastIndexOf(' ') + 1));
        if (line.startsWith('grpc_server_handled_total{')) now.handled += v;
        else if (line.startsWith('grpc_server_handling_seconds_bucket{')) {
          const le = /le="([^"]+)"/.exec(line);
          if (le) now.buckets.set(le[1], (now.buckets.get(le[1]) || 0) + v);
        }
      }
      const prev = this.last;
      this.last = now;
      if (!prev) return;
      const dt = (now.t - prev.t) / 1000;
      const rate = Math.max(0, (now.handled - prev.handled) / dt);
      const b = [...now.buckets.entries()].map(([le, c]) => [le === '+Inf' ? Infinity : parseFloat(le), c - (prev.buckets.get(le) || 0)])
        .sort((x, y) => x[0] - y[0]);
      this.firstBound = b.length ? b[0][0] : 0;
      this.series.push({ rate, p99: quantile(0.99, b) });
      if (this.series.length > SAMPLES) this.series.shift();
      this.draw();
    },
    draw() {
      const c = $('#chart');
      const g = c.getContext('2d');
      const W = c.width, H = c.height, L = 56, R = 64, T = 14, B = 24;
      g.clearRect(0, 0, W, H);
      g.font = '12px system-ui, sans-serif';
      const s = this.series;
      const maxRate = niceMax(Math.max(1, ...s.map((x) => x.rate)));
      const maxP99 = niceMax(Math.max(0.001, ...s.map((x) => x.p99 || 0)) * 1000);
      g.strokeStyle = '#e4e2da';
      g.fillStyle = '#5f5f5a';
      for (let i = 0; i <= 4; i++) {
        const y = T + (H - T - B) * i / 4;
        g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
        g.textAlign = 'right'; g.fillText(fmtNum(maxRate * (1 - i / 4)), L - 6, y + 4);
        g.textAlign = 'left'; g.fillText(fmtNum(maxP99 * (1 - i / 4)) + ' ms', W - R + 6, y + 4);
      }
      g.textAlign = 'left';
      g.fillStyle = RATE_COLOR;
      g.fillText('━ requests/s (unary calls)', L, H - 6);
      g.textAlign = 'right';
      g.fillStyle = P99_COLOR;
      g.fillText('━ p99 latency', W - R, H - 6);
      const x = (i) => L + (W - L - R) * (i + SAMPLES - s.length) / (SAMPLES - 1);
      const line = (color, y) => {
        g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
        let pen = false;
        s.forEach((p, i) => {
          const v = y(p);
          if (v === null) { pen = false; return; }
          if (pen) g.lineTo(x(i), v); else g.moveTo(x(i), v);
          pen = true;
        });
        g.stroke(); g.lineWidth = 1;
      };
      line(RATE_COLOR, (p) => T + (H - T - B) * (1 - p.rate / maxRate));
      line(P99_COLOR, (p) => (p.p99 === null ? null : T + (H - T - B) * (1 - (p.p99 * 1000) / maxP99)));
      const lastP = s[s.length - 1];
      if (lastP) {
        // Inside the histogram's first bucket the estimate says little:
        // give its bound instead.
        const p99 = lastP.p99 === null ? 'n/a (no calls)'
          : lastP.p99 <= this.firstBound ? 'under ' + fmtNum(this.firstBound * 1000) + ' ms'
            : 'about ' + fmtNum(lastP.p99 * 1000) + ' ms';
        $('#chart-summary').textContent = 'Last 2 s: ' + fmtNum(lastP.rate) + ' requests/s, p99 ' + p99 +
          ' (estimated from the latency histogram in this member\'s /metrics).';
      }
    },
  };
  function quantile(q, buckets) {
    const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
    if (total <= 0) return null;
    const want = q * total;
    let lo = 0, below = 0;
    for (const [le, count] of buckets) {
      if (count >= want) {
        if (le === Infinity) return lo;
        return lo + (le - lo) * (count - below > 0 ? (want - below) / (count - below) : 0);
      }
      if (le !== Infinity) lo = le;
      below = count;
    }
    return lo;
  }
  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function fmtNum(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }

  // ------------------------------------------------------------------ boot
  async function boot() {
    $('#banner-close').addEventListener('click', hideBanner);
    $('#login-form').addEventListener('submit', login);
    $('#logout').addEventListener('click', logout);
    $('#keys-search').addEventListener('submit', (ev) => { ev.preventDefault(); keys.render(); });
    $('#keys-mode').addEventListener('change', () => keys.render());
    $('#keys-sep').addEventListener('change', () => { keys.expanded.clear(); keys.render(); });
    $('#keys-more').addEventListener('click', () => keys.loadList(keys.listNext));
    $('#key-new').addEventListener('click', () => keys.edit(null, null));
    $('#prefix-delete').addEventListener('click', () => keys.removePrefix());
    $('#watch-form').addEventListener('submit', (ev) => watch.start(ev));
    $('#watch-stop').addEventListener('click', () => watch.stop());
    $('#watch-pause').addEventListener('click', () => watch.setPaused(!watch.paused));
    $('#watch-clear').addEventListener('click', () => $('#watch-events tbody').replaceChildren());
    $('#lease-refresh').addEventListener('click', () => leases.load());
    $('#leases-more').addEventListener('click', () => leases.more());
    $('#lease-grant').addEventListener('submit', (ev) => leases.grant(ev));
    window.addEventListener('hashchange', route);
    // AuthStatus needs root once auth is on: a refusal tells that it is.
    try {
      const st = await call('auth/status', {});
      session.authEnabled = !!st.enabled;
    } catch (e) {
      if (/invalid auth token/.test(e.message)) {
        session.authEnabled = true;
        session.token = '';
        sessionStorage.removeItem('ferrocd.token');
      } else if (/user name is empty|permission denied/.test(e.message)) {
        session.authEnabled = true;
      } else {
        showBanner('Cannot read the auth status: ' + e.message);
      }
    }
    if (!session.authEnabled) { session.token = ''; sessionStorage.removeItem('ferrocd.token'); }
    renderWho();
    document.body.setAttribute('data-ready', 'true');
    route();
  }
  boot();
})();
