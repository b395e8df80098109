/* envision-spiders review page: paged, sortable, filterable tables over the embedded rows.
 *
 * Hand-written (no library): the page must open offline from a file, and what it needs
 * (sort an index, filter it, render one page of rows) is a few hundred lines. Rows are
 * arrays (see ROW_FIELDS in render.py). Only one page of rows is ever in the DOM, so
 * 50,000 records cost a JSON.parse and a few typed arrays, not 50,000 <tr>. Each sort
 * order is computed once and cached; a filter change is one pass over the cached order.
 * Record text is only ever set with textContent / attribute setters, never as HTML.
 *
 * Curators' choices (accept / reject / unsure, or withdrawing a recorded decision; a
 * reason, a code) stay in this browser
 * (localStorage, under the ledger's identity) until they are exported as one decisions
 * file for `scrapy review import`: the page never writes anywhere else and never sends
 * anything. A choice whose id the ledger holds (embedded in D.review.known) is done and
 * forgotten.
 */
(function () {
  'use strict';
  var t0 = performance.now();
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var F = {};
  D.fields.forEach(function (name, i) { F[name] = i; });
  var collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });
  var nf = new Intl.NumberFormat('en');
  var SAFE_URL = /^https?:\/\/[^\s\/]/i;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null && text !== '') e.textContent = String(text);
    return e;
  }
  function link(url, text, cls) {
    if (!url || !SAFE_URL.test(url)) return el('span', cls, text);
    var a = el('a', cls, text);
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }
  /* one reason: [1 for EYE_IMAGING or 0 against, plain text] */
  function reason(w) {
    var d = el('div', 'why ' + (w[0] ? 'why-eye' : 'why-neg'));
    d.appendChild(el('span', 'why-mark', w[0] ? '\u25B2' : '\u25BC'));
    d.appendChild(el('span', null, ' ' + w[1]));
    d.title = (w[0] ? 'for EYE_IMAGING: ' : 'against EYE_IMAGING: ') + w[1];
    return d;
  }

  function bytes(mb) {
    if (mb === null || mb === undefined) return '';
    if (mb < 1) return Math.max(1, Math.round(mb * 1024)) + ' KB';
    if (mb < 1024) return (mb < 10 ? mb.toFixed(1) : Math.round(mb)) + ' MB';
    if (mb < 1048576) return (mb / 1024).toFixed(mb < 10240 ? 1 : 0) + ' GB';
    return (mb / 1048576).toFixed(1) + ' TB';
  }

  var MODS = D.modalities;
  var NONE_MOD = MODS.length; // filter value for "none detected"

  /* ------------------------------------------------------------------ decisions kept in this browser */
  var RV = D.review;
  var STORE_KEY = 'envision-review/' + RV.ledger;
  var VERBS = { accept: 'accepted', reject: 'rejected', unsure: 'unsure', withdraw: 'withdrawn' };
  var SYMBOLS = { accept: '✓', reject: '✗', unsure: '?', withdraw: '↺' };
  var RANK = { withdraw: 0, accept: 1, unsure: 2, reject: 3 };
  var known = {};
  RV.known.forEach(function (id) { known[id] = true; });
  var storeProblem = '';
  var store = (function () {
    var s = null;
    try { s = JSON.parse(window.localStorage.getItem(STORE_KEY) || 'null'); } catch (e) { storeProblem = String(e); }
    if (!s || typeof s !== 'object') s = {};
    if (!s.decisions || typeof s.decisions !== 'object') s.decisions = {};
    if (typeof s.curator !== 'string') s.curator = '';
    // choices the ledger holds now were imported: they are decisions on this page
    Object.keys(s.decisions).forEach(function (k) {
      if (!s.decisions[k] || known[s.decisions[k].id]) delete s.decisions[k];
    });
    return s;
  })();
  function persist() {
    try { window.localStorage.setItem(STORE_KEY, JSON.stringify(store)); storeProblem = ''; }
    catch (e) { storeProblem = 'this browser keeps nothing for this page (' + e.name + '): export before you close it'; }
  }
  persist();
  function nowIso() { return new Date().toISOString().replace(/\.\d+Z$/, 'Z'); }
  function newId() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x < 16 ? '0' : '') + x.toString(16); }).join('');
  }
  function rowKey(r) { return D.sources[r[F.source]] + ':' + r[F.source_id]; }
  function describe(d) { // d: [decision, reason, code, curator, decided_at, id, on]
    var why = [d[2], d[1]].filter(Boolean).join(': ');
    return VERBS[d[0]] + ' by ' + (d[3] || 'a curator') + (d[4] ? ' on ' + String(d[4]).slice(0, 10) : '') +
      (why ? ' (' + why + ')' : '');
  }
  function localOf(r) {
    var d = store.decisions[rowKey(r)];
    return d ? [d.decision, d.reason, d.code, d.curator || store.curator, d.decided_at, d.id, rowKey(r)] : null;
  }
  function decide(r, decision, reason, code) {
    var rv = r[F.review];
    store.decisions[rowKey(r)] = {
      id: newId(), source: D.sources[r[F.source]], source_id: r[F.source_id], doi: r[F.doi] || null,
      decision: decision, reason: reason, code: code || null, curator: store.curator, decided_at: nowIso(),
      based_on: rv ? rv[5] : null, model_id: D.models[r[F.model_id]] || null, model_label: r[F.model_label] || null,
      prob_eye_imaging: r[F.p]
    };
    persist();
    refreshAll();
  }
  function undo(r) { delete store.decisions[rowKey(r)]; persist(); refreshAll(); }

  /* ------------------------------------------------------------------ one table */
  function Table(section, key) {
    var spec = D.tables[key];
    this.key = key;
    this.section = section;
    // the queue names most of its rows by [table, index] in the other tables (see render.py)
    this.rows = spec.refs ? spec.refs.map(function (ref) {
      return ref[0] === key ? spec.rows[ref[1]] : D.tables[ref[0]].rows[ref[1]];
    }) : spec.rows;
    this.band = spec.tiers ? spec.tiers : this.rows.map(function (r) { return r[F.band]; });
    this.bands = spec.bands;
    this.withNew = key === 'eye' || key === 'queue';
    this.withDownload = key === 'eye';
    this.natural = key === 'queue' || key === 'rejected'; // rows come in their own order (most useful, newest)
    this.n = this.rows.length;
    this.orders = {};
    this.hay = null;
    this.expanded = {};
    this.state = { sort: this.natural ? 'natural' : 'p', dir: this.natural ? 1 : -1, page: 0, size: 50 };
    this.filters = { q: '', source: -1, band: -1, modality: -1, access: -1, license: -1, isNew: false, disagree: false };
    this.status = section.querySelector('.status');
    this.thead = section.querySelector('thead');
    this.tbody = section.querySelector('tbody');
    this.pager = section.querySelector('.pager');
    this.columns = this.makeColumns();
    this.view = null;
    var self = this;
    this.tbody.addEventListener('click', function (ev) {
      if (ev.target.closest('a, button, input, select, textarea, label, form')) return;
      var tr = ev.target.closest('tr[data-i]');
      if (!tr || (window.getSelection && String(window.getSelection()))) return; // selecting text is not a click
      var i = parseInt(tr.dataset.i, 10);
      if (self.expanded[i]) delete self.expanded[i]; else self.expanded[i] = true;
      self.renderBody();
    });
    this.setupFilters();
    this.renderHead();
    this.update();
  }

  Table.prototype.makeColumns = function () {
    var cols = [{ id: 'x', label: '', cls: 'c-x' }];
    if (this.natural) cols.push({ id: 'why', label: this.key === 'queue' ? 'Why' : 'Order', sort: 'natural', cls: 'c-why' });
    if (this.withNew) cols.push({ id: 'new', label: 'New', sort: 'new', cls: 'c-new' });
    cols.push(
      { id: 'title', label: 'Dataset', sort: 'title', cls: 'c-title' },
      { id: 'source', label: 'Source', sort: 'source', cls: 'c-src' },
      { id: 'p', label: 'P(eye)', sort: 'p', cls: 'c-p' },
      { id: 'reasons', label: 'Why', cls: 'c-why' },
      { id: 'rv', label: 'Decision', sort: 'review', cls: 'c-rv' },
      { id: 'mods', label: 'Modalities', cls: 'c-mods' },
      { id: 'types', label: 'Files · size', sort: 'size', cls: 'c-types' },
      { id: 'arch', label: 'Archive contents', cls: 'c-arch' },
      { id: 'lic', label: 'Licence · access', sort: 'license', cls: 'c-lic' },
      { id: 'dups', label: 'Duplicates', sort: 'dups', cls: 'c-dups' }
    );
    if (this.withDownload) cols.push({ id: 'dl', label: 'Download', sort: 'download', cls: 'c-dl' });
    return cols;
  };

  /* sort keys: numbers (null last in both directions) or strings */
  Table.prototype.keyOf = function (name) {
    var rows = this.rows, i, out = new Array(this.n);
    for (i = 0; i < this.n; i++) {
      var r = rows[i];
      switch (name) {
        case 'p': out[i] = r[F.p]; break;
        case 'size': out[i] = r[F.size_mb]; break;
        case 'dups': out[i] = r[F.duplicates].length || null; break;
        case 'new': out[i] = r[F['new']] || null; break;
        case 'download': out[i] = r[F.download] || null; break;
        case 'title': out[i] = r[F.title]; break;
        case 'source': out[i] = D.sources[r[F.source]] + '\u0000' + r[F.source_id]; break;
        case 'license': out[i] = D.licenses[r[F.license]]; break;
        case 'natural': out[i] = i; break;
        case 'review': {
          var d = localOf(r) || r[F.review];
          out[i] = d ? RANK[d[0]] : null;
          break;
        }
      }
    }
    return out;
  };

  Table.prototype.order = function (name, dir) {
    var cacheKey = name + dir;
    if (this.orders[cacheKey]) return this.orders[cacheKey];
    var keys = this.keyOf(name), idx = new Array(this.n), i;
    for (i = 0; i < this.n; i++) idx[i] = i;
    var numeric = name === 'p' || name === 'size' || name === 'dups' || name === 'download' || name === 'new' ||
      name === 'natural' || name === 'review';
    idx.sort(function (a, b) {
      var x = keys[a], y = keys[b], c;
      if (x === null || x === undefined) c = (y === null || y === undefined) ? 0 : 1;
      else if (y === null || y === undefined) c = -1;
      else c = dir * (numeric ? x - y : collator.compare(x, y));
      return c || (a - b); // stable: the results' own order breaks ties
    });
    this.orders[cacheKey] = idx;
    return idx;
  };

  Table.prototype.haystack = function () {
    if (this.hay) return this.hay;
    var rows = this.rows, hay = new Array(this.n);
    for (var i = 0; i < this.n; i++) {
      var r = rows[i];
      hay[i] = (r[F.title] + '\u0001' + r[F.source_id] + '\u0001' + r[F.doi] + '\u0001' + r[F.keywords] + '\u0001' +
                D.sources[r[F.source]] + '\u0001' + r[F.file_types]).toLowerCase();
    }
    this.hay = hay;
    return hay;
  };

  Table.prototype.matches = function () {
    var f = this.filters, rows = this.rows, bandOf = this.band;
    var terms = f.q.toLowerCase().split(/\s+/).filter(Boolean);
    var hay = terms.length ? this.haystack() : null;
    var modBit = f.modality >= 0 && f.modality < NONE_MOD ? (1 << f.modality) : 0;
    return function (i) {
      var r = rows[i];
      if (f.source >= 0 && r[F.source] !== f.source) return false;
      if (f.band >= 0 && bandOf[i] !== f.band) return false;
      if (modBit && !(r[F.modalities] & modBit)) return false;
      if (f.modality === NONE_MOD && r[F.modalities] !== 0) return false;
      if (f.access >= 0 && r[F.access] !== f.access) return false;
      if (f.license >= 0 && r[F.license] !== f.license) return false;
      if (f.isNew && !r[F['new']]) return false;
      if (f.disagree && !r[F.disagree]) return false;
      if (hay) {
        var h = hay[i];
        for (var t = 0; t < terms.length; t++) if (h.indexOf(terms[t]) < 0) return false;
      }
      return true;
    };
  };

  Table.prototype.update = function () {
    var t = performance.now();
    var order = this.order(this.state.sort, this.state.dir);
    var test = this.matches(), view = [];
    for (var i = 0; i < order.length; i++) if (test(order[i])) view.push(order[i]);
    this.view = view;
    var pages = Math.max(1, Math.ceil(view.length / this.state.size));
    if (this.state.page >= pages) this.state.page = pages - 1;
    this.renderBody();
    this.renderPager(pages);
    this.section.dataset.updateMs = (performance.now() - t).toFixed(1);
    this.section.dataset.matching = String(view.length);
  };

  /* ------------------------------------------------------------------ filters */
  Table.prototype.fill = function (select, label, values, counts) {
    select.textContent = '';
    var all = el('option', null, label);
    all.value = '-1';
    select.appendChild(all);
    values.forEach(function (v, i) {
      if (counts && !counts[i]) return;
      var o = el('option', null, counts ? v + ' (' + nf.format(counts[i]) + ')' : v);
      o.value = String(i);
      select.appendChild(o);
    });
  };

  Table.prototype.setupFilters = function () {
    var self = this, rows = this.rows, i;
    var count = function (field, size, values) {
      var c = new Array(size).fill(0);
      for (i = 0; i < rows.length; i++) {
        var v = values ? values[i] : rows[i][field];
        if (v >= 0) c[v]++;
      }
      return c;
    };
    var q = function (name) { return self.section.querySelector('[data-f="' + name + '"]'); };
    this.fill(q('source'), 'All sources', D.sources, count(F.source, D.sources.length));
    var bandLabels = this.bands.map(function (b) { return b.label; });
    this.fill(q('band'), self.key === 'queue' ? 'Any reason' : (self.key === 'borderline' ? 'Any P(eye)' : 'Any confidence'),
              bandLabels, count(F.band, this.bands.length, this.band));
    var modCounts = new Array(MODS.length + 1).fill(0);
    for (i = 0; i < rows.length; i++) {
      var m = rows[i][F.modalities];
      if (!m) modCounts[NONE_MOD]++;
      for (var b = 0; b < MODS.length; b++) if (m & (1 << b)) modCounts[b]++;
    }
    this.fill(q('modality'), 'Any modality', MODS.map(function (x) { return x.label; }).concat(['None detected']), modCounts);
    this.fill(q('access'), 'Any access', D.access, count(F.access, D.access.length));
    this.fill(q('license'), 'Any licence', D.licenses, count(F.license, D.licenses.length));
    var debounce = null;
    q('q').addEventListener('input', function (ev) {
      clearTimeout(debounce);
      debounce = setTimeout(function () { self.filters.q = ev.target.value; self.state.page = 0; self.update(); }, 120);
    });
    ['source', 'band', 'modality', 'access', 'license'].forEach(function (name) {
      q(name).addEventListener('change', function (ev) {
        self.filters[name] = parseInt(ev.target.value, 10);
        self.state.page = 0;
        self.update();
      });
    });
    var isNew = q('new');
    if (isNew) isNew.addEventListener('change', function (ev) { self.filters.isNew = ev.target.checked; self.state.page = 0; self.update(); });
    var disagree = q('disagree');
    if (disagree) disagree.addEventListener('change', function (ev) { self.filters.disagree = ev.target.checked; self.state.page = 0; self.update(); });
    q('reset').addEventListener('click', function () { self.reset(); });
  };

  Table.prototype.set = function (name, value) {
    var input = this.section.querySelector('[data-f="' + name + '"]');
    if (name === 'isNew') {
      input = this.section.querySelector('[data-f="new"]');
      if (input) input.checked = !!value;
    } else if (input) {
      input.value = String(value);
    }
    this.filters[name] = value;
    this.state.page = 0;
    this.update();
  };

  Table.prototype.reset = function () {
    var s = this.section;
    this.filters = { q: '', source: -1, band: -1, modality: -1, access: -1, license: -1, isNew: false, disagree: false };
    s.querySelectorAll('select[data-f]').forEach(function (x) { x.value = '-1'; });
    s.querySelector('[data-f="q"]').value = '';
    var isNew = s.querySelector('[data-f="new"]');
    if (isNew) isNew.checked = false;
    var disagree = s.querySelector('[data-f="disagree"]');
    if (disagree) disagree.checked = false;
    this.state.page = 0;
    this.update();
  };

  /* ------------------------------------------------------------------ rendering */
  Table.prototype.renderHead = function () {
    var self = this, tr = el('tr');
    this.columns.forEach(function (c) {
      var th = el('th', c.cls);
      th.scope = 'col';
      if (c.sort) {
        var b = el('button', 'sort', c.label);
        b.type = 'button';
        b.dataset.sort = c.sort;
        b.addEventListener('click', function () {
          if (self.state.sort === c.sort) self.state.dir = -self.state.dir;
          else { self.state.sort = c.sort; self.state.dir = (c.sort === 'title' || c.sort === 'source' || c.sort === 'license' || c.sort === 'natural' || c.sort === 'review') ? 1 : -1; }
          self.state.page = 0;
          self.update();
          self.renderSortMarks();
        });
        th.appendChild(b);
      } else {
        th.textContent = c.label;
      }
      tr.appendChild(th);
    });
    this.thead.appendChild(tr);
    this.renderSortMarks();
  };

  Table.prototype.renderSortMarks = function () {
    var st = this.state;
    this.thead.querySelectorAll('th').forEach(function (th) {
      var b = th.querySelector('button.sort');
      if (!b) return;
      var on = b.dataset.sort === st.sort;
      th.setAttribute('aria-sort', on ? (st.dir > 0 ? 'ascending' : 'descending') : 'none');
      b.classList.toggle('on', on);
      b.dataset.dir = on ? (st.dir > 0 ? '▲' : '▼') : '';
    });
  };

  Table.prototype.cell = function (tr, c, r, i) {
    var td = el('td', c.cls), self = this;
    switch (c.id) {
      case 'why': {
        var band0 = this.bands[this.band[i]];
        if (this.key === 'queue' && band0) td.appendChild(el('span', 'why why-' + this.band[i], band0.label));
        if (this.key === 'rejected' && r[F.review]) td.appendChild(el('span', 'small', String(r[F.review][4]).slice(0, 10)));
        break;
      }
      case 'rv': {
        var local = localOf(r), rv = r[F.review], shown = local || rv;
        if (shown) {
          var badge = el('span', 'rv rv-' + shown[0] + (local ? ' rv-local' : ''), SYMBOLS[shown[0]] + ' ' + VERBS[shown[0]] +
                         (local ? ' · here' : ''));
          badge.title = (local ? 'your choice in this browser, not recorded yet: ' : '') + describe(shown);
          td.appendChild(badge);
          if (!local && rv[1]) td.appendChild(el('div', 'small rv-reason', [rv[2], rv[1]].filter(Boolean).join(': ')));
          if (local && local[1]) td.appendChild(el('div', 'small rv-reason', [local[2], local[1]].filter(Boolean).join(': ')));
        }
        var buttons = el('div', 'rv-buttons');
        ['accept', 'reject', 'unsure'].forEach(function (d) {
          var btn = el('button', 'rv-btn rv-do-' + d, SYMBOLS[d]);
          btn.type = 'button';
          btn.dataset.decision = d;
          btn.title = d.charAt(0).toUpperCase() + d.slice(1) + '…';
          btn.setAttribute('aria-label', d.charAt(0).toUpperCase() + d.slice(1));
          btn.addEventListener('click', function () { self.expanded[i] = d; self.renderBody(); });
          buttons.appendChild(btn);
        });
        td.appendChild(buttons);
        break;
      }
      case 'x': {
        var b = el('button', 'expand', self.expanded[i] ? '▾' : '▸');
        b.type = 'button';
        b.setAttribute('aria-label', 'Details');
        b.setAttribute('aria-expanded', self.expanded[i] ? 'true' : 'false');
        b.addEventListener('click', function () {
          if (self.expanded[i]) delete self.expanded[i]; else self.expanded[i] = true;
          self.renderBody();
        });
        td.appendChild(b);
        break;
      }
      case 'title': {
        td.appendChild(link(r[F.url], r[F.title], 'title'));
        var meta = el('div', 'meta');
        meta.appendChild(el('span', 'id', r[F.source_id]));
        if (r[F.doi]) meta.appendChild(link('https://doi.org/' + r[F.doi], 'doi:' + r[F.doi], 'doi'));
        td.appendChild(meta);
        break;
      }
      case 'new':
        if (r[F['new']]) td.appendChild(el('span', 'badge new', 'NEW'));
        break;
      case 'source':
        td.appendChild(el('span', 'src src-' + D.sources[r[F.source]].replace(/[^a-z0-9-]/gi, ''), D.sources[r[F.source]]));
        break;
      case 'p': {
        var p = r[F.p];
        if (p !== null) {
          var bar = el('div', 'pbar');
          var fill = el('span', 'b' + this.band[i]);
          fill.style.width = Math.round(p * 100) + '%';
          bar.appendChild(fill);
          td.appendChild(el('div', 'pnum', p.toFixed(2)));
          td.appendChild(bar);
        }
        break;
      }
      case 'reasons': {
        /* the label's reasons, strongest first: plain text, set with textContent only */
        var why = r[F.reasons] || [];
        if (r[F.disagree]) td.appendChild(el('span', 'badge disagree', 'text and files disagree'));
        why.slice(0, 2).forEach(function (w) { td.appendChild(reason(w)); });
        if (why.length > 2) td.appendChild(el('span', 'muted', '+' + (why.length - 2) + ' more'));
        if (!why.length && !r[F.disagree]) td.appendChild(el('span', 'muted', '—'));
        break;
      }
      case 'mods': {
        var mask = r[F.modalities];
        if (!mask) td.appendChild(el('span', 'muted', 'none detected'));
        for (var b2 = 0; b2 < MODS.length; b2++) {
          if (mask & (1 << b2)) td.appendChild(el('span', 'chip m-' + MODS[b2].tag, MODS[b2].label));
        }
        break;
      }
      case 'types': {
        var types = r[F.file_types] ? r[F.file_types].split(' ') : [];
        types.slice(0, 6).forEach(function (x) { td.appendChild(el('span', 'ext', x)); });
        if (types.length > 6) td.appendChild(el('span', 'muted', '+' + (types.length - 6)));
        var facts = [];
        if (r[F.file_count] !== null) facts.push(nf.format(r[F.file_count]) + ' file' + (r[F.file_count] === 1 ? '' : 's'));
        if (r[F.size_mb] !== null) facts.push(bytes(r[F.size_mb]));
        if (facts.length) td.appendChild(el('div', 'facts', facts.join(' · ')));
        break;
      }
      case 'arch':
        td.textContent = r[F.archives] || '';
        if (!r[F.archives]) td.appendChild(el('span', 'muted', '—'));
        break;
      case 'lic': {
        td.appendChild(el('div', 'lic', D.licenses[r[F.license]]));
        var acc = D.access[r[F.access]];
        td.appendChild(el('span', 'acc acc-' + acc.replace(/[^a-z]/g, ''), acc));
        break;
      }
      case 'dups': {
        var dups = r[F.duplicates];
        if (r[F.duplicate_of]) {
          td.appendChild(el('div', 'small', 'duplicate of'));
          var canon = dups.filter(function (d) { return d[3]; })[0];
          var ca = link(canon ? canon[1] : '', r[F.duplicate_of].split(':')[0], 'dup');
          ca.title = r[F.duplicate_of];
          td.appendChild(ca);
        } else if (dups.length) {
          td.appendChild(el('div', 'small muted', 'also on'));
          dups.slice(0, 3).forEach(function (d) {
            var a = link(d[1], d[0].split(':')[0], 'dup');
            a.title = d[0];
            td.appendChild(a);
          });
          if (dups.length > 3) td.appendChild(el('span', 'muted', '+' + (dups.length - 3)));
        }
        break;
      }
      case 'dl': {
        var state = D.downloadStates[r[F.download]];
        if (state) td.appendChild(el('span', 'dl dl-' + state, state));
        break;
      }
    }
    tr.appendChild(td);
  };

  Table.prototype.reviewForm = function (r, i) {
    var self = this, form = el('form', 'rv-form'), local = localOf(r), rv = r[F.review];
    var preset = typeof this.expanded[i] === 'string' ? this.expanded[i] : (local ? local[0] : 'accept');
    form.setAttribute('aria-label', 'Your decision');
    var pick = el('select', 'rv-decision');
    pick.setAttribute('aria-label', 'Decision');
    // a decision recorded on this very record can be withdrawn (one made on a duplicate: there)
    var choices = rv && rv[6] === rowKey(r) ? ['accept', 'reject', 'unsure', 'withdraw'] : ['accept', 'reject', 'unsure'];
    choices.forEach(function (d) {
      var o = el('option', null, d === 'withdraw' ? 'Withdraw the recorded decision' : d.charAt(0).toUpperCase() + d.slice(1));
      o.value = d;
      if (d === preset) o.selected = true;
      pick.appendChild(o);
    });
    var code = el('select', 'rv-code');
    code.setAttribute('aria-label', 'Reason code');
    var none = el('option', null, 'no reason code');
    none.value = '';
    code.appendChild(none);
    RV.codes.forEach(function (c) {
      var o = el('option', null, c.code + ': ' + c.label);
      o.value = c.code;
      if (local && local[2] === c.code) o.selected = true;
      code.appendChild(o);
    });
    var reason = el('input', 'rv-text');
    reason.type = 'text';
    reason.maxLength = 2000;
    reason.placeholder = 'reason (needed to reject, unless a code says it)';
    reason.setAttribute('aria-label', 'Reason');
    if (local) reason.value = local[1] || '';
    var save = el('button', 'rv-save', 'Save');
    save.type = 'submit';
    var msg = el('span', 'rv-msg');
    msg.setAttribute('aria-live', 'polite');
    form.appendChild(pick);
    form.appendChild(code);
    form.appendChild(reason);
    form.appendChild(save);
    if (local) {
      var drop = el('button', 'rv-undo', 'Undo my choice');
      drop.type = 'button';
      drop.addEventListener('click', function () { undo(r); });
      form.appendChild(drop);
    }
    form.appendChild(msg);
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var text = reason.value.replace(/\s+/g, ' ').trim();
      if (pick.value === 'reject' && !text && !code.value) {
        msg.textContent = 'Say why: a reason or a reason code.';
        reason.focus();
        return;
      }
      delete self.expanded[i]; // saved: the row shows the choice, the form closes
      decide(r, pick.value, text, pick.value === 'withdraw' ? '' : code.value); // a withdrawal has no code
    });
    if (typeof this.expanded[i] === 'string') setTimeout(function () { reason.focus(); }, 0);
    return form;
  };

  Table.prototype.details = function (r, i) {
    var tr = el('tr', 'details'), td = el('td');
    td.colSpan = this.columns.length;
    var box = el('div', 'detail-grid');
    var add = function (label, node) {
      if (!node) return;
      var d = el('div', 'detail');
      d.appendChild(el('div', 'dl-label', label));
      d.appendChild(node);
      box.appendChild(d);
    };
    if (r[F.description]) add('Description', el('p', null, r[F.description]));
    if (r[F.keywords]) add('Keywords', el('p', null, r[F.keywords]));
    if (r[F.reasons] && r[F.reasons].length) {
      var wl = el('ul', 'reasons');
      r[F.reasons].forEach(function (w) { var li = el('li'); li.appendChild(reason(w)); wl.appendChild(li); });
      if (r[F.disagree]) wl.appendChild(el('li', 'disagree', 'Its text and its files disagree.'));
      add('Why the model says ' + (r[F.model_label] || '?') +
        (r[F.p_text] !== null ? ' (text alone: P(eye) ' + r[F.p_text].toFixed(2) + ')' : ''), wl);
    }
    if (r[F.modality_note]) add('Modality evidence', el('p', null, r[F.modality_note]));
    if (r[F.members].length) {
      var ul = el('ul', 'members');
      r[F.members].forEach(function (m) { ul.appendChild(el('li', null, m)); });
      add('Archive members (sample)', ul);
    }
    if (r[F.file_types]) add('All file types', el('p', 'mono', r[F.file_types]));
    if (r[F.duplicates].length) {
      var dl = el('ul', 'members');
      r[F.duplicates].forEach(function (d) {
        var li = el('li');
        li.appendChild(link(d[1], d[0], 'dup'));
        if (d[3]) li.appendChild(el('span', 'badge canon', 'canonical'));
        if (d[2]) li.appendChild(el('span', 'muted', ' ' + d[2]));
        dl.appendChild(li);
      });
      add('Same dataset' + (r[F.rules] ? ' (' + r[F.rules] + ')' : ''), dl);
    }
    if (r[F.confidence] !== null) add('Confidence of the label', el('p', null, r[F.confidence].toFixed(3)));
    var decision = el('div', 'rv-state'), rv = r[F.review], local = localOf(r);
    decision.appendChild(el('p', null, rv ? 'Stands: ' + describe(rv) +
      (rv[6] && rv[6] !== rowKey(r) ? ' — made on its duplicate ' + rv[6] : '') : 'No curator has decided yet.'));
    if (local) decision.appendChild(el('p', 'rv-local', 'Your choice in this browser (not recorded yet): ' + describe(local)));
    decision.appendChild(el('p', 'small muted', 'The model says ' + (r[F.model_label] || 'nothing yet') +
      (r[F.p] !== null ? ', P(eye) ' + r[F.p].toFixed(3) : '') + (D.models[r[F.model_id]] ? ' (' + D.models[r[F.model_id]] + ')' : '')));
    decision.appendChild(this.reviewForm(r, i));
    var wide = el('div', 'detail wide');
    wide.appendChild(el('div', 'dl-label', 'Curator decision'));
    wide.appendChild(decision);
    box.insertBefore(wide, box.firstChild);
    td.appendChild(box);
    tr.appendChild(td);
    return tr;
  };

  Table.prototype.renderBody = function () {
    var st = this.state, view = this.view, frag = document.createDocumentFragment();
    var start = st.page * st.size, end = Math.min(view.length, start + st.size);
    for (var k = start; k < end; k++) {
      var i = view[k], r = this.rows[i], tr = el('tr');
      tr.dataset.key = rowKey(r);
      var shown = localOf(r) || r[F.review];
      if (shown) tr.dataset.decision = shown[0];
      if (r[F['new']]) tr.className = 'is-new';
      tr.dataset.i = String(i);
      for (var c = 0; c < this.columns.length; c++) this.cell(tr, this.columns[c], r, i);
      frag.appendChild(tr);
      if (this.expanded[i]) frag.appendChild(this.details(r, i));
    }
    this.tbody.textContent = '';
    if (!view.length) {
      var tr0 = el('tr', 'none'), td0 = el('td', null, this.n ? 'No record matches these filters.' : 'No records in this table.');
      td0.colSpan = this.columns.length;
      tr0.appendChild(td0);
      frag.appendChild(tr0);
    }
    this.tbody.appendChild(frag);
    var folded = D.tables[this.key].folded;
    this.status.textContent = (view.length ? 'Showing ' + nf.format(start + 1) + '–' + nf.format(end) + ' of ' : 'Showing 0 of ') +
      nf.format(view.length) + (view.length === this.n ? ' records' : ' matching (' + nf.format(this.n) + ' in all)') +
      (folded ? '; ' + nf.format(folded) + ' duplicates folded' : '');
  };

  Table.prototype.renderPager = function (pages) {
    var self = this, st = this.state, p = this.pager;
    p.textContent = '';
    var btn = function (label, page, disabled, cls) {
      var b = el('button', cls || 'pg', label);
      b.type = 'button';
      b.disabled = disabled;
      b.addEventListener('click', function () { st.page = page; self.update(); self.section.scrollIntoView({ block: 'start' }); });
      p.appendChild(b);
    };
    btn('‹ Prev', st.page - 1, st.page === 0, 'pg prev');
    var shown = {}, list = [0, pages - 1];
    for (var k = st.page - 2; k <= st.page + 2; k++) list.push(k);
    list.filter(function (k) { return k >= 0 && k < pages; }).sort(function (a, b) { return a - b; }).forEach(function (k, j, arr) {
      if (shown[k]) return;
      shown[k] = true;
      if (j > 0 && k - arr[j - 1] > 1) p.appendChild(el('span', 'gap', '…'));
      btn(String(k + 1), k, false, k === st.page ? 'pg cur' : 'pg');
    });
    btn('Next ›', st.page + 1, st.page >= pages - 1, 'pg next');
    var size = el('select', 'size');
    size.setAttribute('aria-label', 'Rows per page');
    [25, 50, 100, 250].forEach(function (s) {
      var o = el('option', null, s + ' per page');
      o.value = String(s);
      if (s === st.size) o.selected = true;
      size.appendChild(o);
    });
    size.addEventListener('change', function (ev) { st.size = parseInt(ev.target.value, 10); st.page = 0; self.update(); });
    p.appendChild(size);
  };

  /* ------------------------------------------------------------------ the page */
  var tables = {};
  document.querySelectorAll('[data-table]').forEach(function (s) {
    tables[s.dataset.table] = new Table(s, s.dataset.table);
  });

  /* ------------------------------------------------------------------ the decisions bar */
  var bar = document.getElementById('review-bar');
  function rv(name) { return bar.querySelector('[data-rv="' + name + '"]'); }
  var exportNote = '';
  function refreshAll() {
    Object.keys(tables).forEach(function (k) { tables[k].orders = {}; tables[k].update(); });
    var n = Object.keys(store.decisions).length;
    rv('count').textContent = (n ? n + ' choice' + (n === 1 ? '' : 's') + ' in this browser, not recorded yet' :
      'No choices waiting to be exported') + (exportNote ? ' · ' + exportNote : '') + (storeProblem ? ' · ' + storeProblem : '');
    rv('export').disabled = !n;
    rv('discard').disabled = !n;
    bar.dataset.pending = String(n);
  }
  var curator = rv('curator');
  curator.value = store.curator;
  curator.addEventListener('input', function () { store.curator = curator.value.trim(); persist(); });
  rv('export').addEventListener('click', function () {
    var list = Object.keys(store.decisions).sort().map(function (k) {
      var d = Object.assign({}, store.decisions[k]);
      if (!d.curator) d.curator = store.curator;
      return d;
    });
    if (!list.length) return;
    var stamp = nowIso();
    var doc = { format: RV.format, version: RV.version, exported_at: stamp, ledger: RV.ledger,
                page: { run_id: RV.run_id, generated_at: RV.generated_at }, decisions: list };
    var name = 'envision-decisions-' + stamp.replace(/[-:]/g, '') + '.json';
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1) + '\n'], { type: 'application/json' }));
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 60000);
    exportNote = list.length + ' exported as ' + name + ': record them with  scrapy review import ' + name;
    refreshAll();
  });
  rv('discard').addEventListener('click', function () {
    if (!window.confirm('Forget the choices kept in this browser for this page?')) return;
    store.decisions = {};
    exportNote = '';
    persist();
    refreshAll();
  });
  refreshAll();

  // chart bars and figure cards filter and jump to the tables
  function activate(node, handler) {
    node.addEventListener('click', handler);
    node.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); handler(); } });
  }
  document.querySelectorAll('[data-filter]').forEach(function (g) {
    activate(g, function () {
      var t = tables.eye, kind = g.dataset.filter, v = g.dataset.value;
      if (!t) return;
      if (kind === 'source') t.set('source', D.sources.indexOf(v));
      if (kind === 'modality') {
        var i = MODS.map(function (m) { return m.tag; }).indexOf(v);
        t.set('modality', v === 'none' ? NONE_MOD : i);
      }
      t.section.scrollIntoView({ behavior: 'smooth', block: 'start' });
    });
  });
  document.querySelectorAll('[data-jump]').forEach(function (c) {
    activate(c, function () {
      var parts = c.dataset.jump.split(':'), t = tables[parts[0]];
      if (t && parts[1] === 'new') { t.reset(); t.set('isNew', true); }
      var target = document.getElementById(parts[0]);
      if (target) target.scrollIntoView({ behavior: 'smooth', block: 'start' });
    });
  });

  window.__report = { tables: tables, readyMs: performance.now() - t0 };
  document.documentElement.dataset.ready = '1';
})();
