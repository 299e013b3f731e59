// scim-gate console. Plain JavaScript, no framework, no build step (docs/console.md).
//
// Rules this file keeps:
// - Data goes into the page only through textContent / value, never innerHTML, so nothing an
//   admin API returns can become markup.
// - A new secret lives in one local variable and the dialog's input; closing the dialog (button,
//   Escape) empties both. It is never written to localStorage, sessionStorage, a URL or a cookie.
// - Every change sends the session's CSRF token, held in memory only.
'use strict';

(() => {
  const state = {
    csrf: null,
    scimUrl: null,
    tokens: [],
    features: { decisions: false, guards: false, cluster: false },
    view: 'tokens',
  };
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // One call to the console's API. Errors come back as ApiError with a sentence to show.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf || '';
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'The console did not answer. Is `scim-gate console` still running?');
    }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (e) { data = null; }
    }
    if (!res.ok) {
      const said = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
      if (res.status === 401 && path !== '/api/login') sessionEnded();
      throw new ApiError(res.status, explain(res.status, said));
    }
    return data;
  }

  // The admin socket's answers, put in words an admin can act on.
  function explain(status, said) {
    switch (status) {
      case 400: return `The gate refused the request: ${said}`;
      case 401: return `Not signed in: ${said}`;
      case 403: return `Refused: ${said}`;
      case 404: return `Not found: ${said}`;
      case 409: return `The gate refused the change: ${said}`;
      case 502: return `The gate's admin socket could not be reached: ${said}`;
      default: return status >= 500 ? `The gate failed: ${said}` : said;
    }
  }

  // ---- feedback --------------------------------------------------------------------------
  function showError(err) {
    $('error-text').textContent = err && err.message ? err.message : String(err);
    $('error').hidden = false;
  }
  function clearError() {
    $('error').hidden = true;
    $('error-text').textContent = '';
  }
  function say(text) {
    $('status').textContent = text;
  }

  // ---- formatting ------------------------------------------------------------------------
  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, '');
  }
  function relative(iso) {
    if (!iso) return 'never';
    const secs = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (Number.isNaN(secs)) return String(iso);
    if (secs < 60) return 'just now';
    const mins = Math.round(secs / 60);
    if (mins < 60) return `${mins} min ago`;
    const hours = Math.round(mins / 60);
    if (hours < 48) return `${hours} h ago`;
    return `${Math.round(hours / 24)} days ago`;
  }
  function list(v) {
    return Array.isArray(v) && v.length ? v.join(', ') : 'any';
  }
  const IDP_LABELS = { entra: 'Entra ID', okta: 'Okta', google: 'Google Workspace', onelogin: 'OneLogin', jumpcloud: 'JumpCloud', other: 'Other' };
  // For table cells.
  function idpLabel(idp) {
    return IDP_LABELS[idp] || idp;
  }
  // For sentences ("Okta cannot provision until…").
  function idpName(idp) {
    return idp === 'other' ? 'the IdP' : idpLabel(idp);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function timeCell(iso) {
    const td = el('td', fmtTime(iso));
    if (iso) td.title = iso;
    return td;
  }
  function button(label, aria, onClick, cls) {
    const b = el('button', label, cls);
    b.type = 'button';
    b.setAttribute('aria-label', aria);
    b.addEventListener('click', onClick);
    return b;
  }
  function fill(tbodyParent, rows, emptyId) {
    const tbody = tbodyParent.querySelector('tbody');
    tbody.replaceChildren(...rows);
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  // ---- dialogs ---------------------------------------------------------------------------
  // Asks before a change that cannot be taken back. Resolves true only for the confirm button.
  function confirmAction(title, text, okLabel) {
    const dlg = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      const done = (yes) => {
        $('confirm-ok').removeEventListener('click', ok);
        $('confirm-cancel').removeEventListener('click', cancel);
        dlg.removeEventListener('close', closed);
        if (dlg.open) dlg.close();
        resolve(yes);
      };
      const ok = () => done(true);
      const cancel = () => done(false);
      const closed = () => done(false);
      $('confirm-ok').addEventListener('click', ok);
      $('confirm-cancel').addEventListener('click', cancel);
      dlg.addEventListener('close', closed);
      dlg.showModal();
      $('confirm-cancel').focus();
    });
  }

  // Shows a new secret once. The secret is passed in, shown in the input, and dropped when
  // the dialog closes however it closes (button or Escape).
  function showSecret(title, secret) {
    const dlg = $('secret-dialog');
    $('secret-title').textContent = title;
    $('secret-value').value = secret;
    $('secret-url-block').hidden = !state.scimUrl;
    $('secret-url').value = state.scimUrl || '';
    $('copy-status').textContent = '';
    dlg.showModal();
    $('copy-secret').focus();
  }
  function forgetSecret() {
    $('secret-value').value = '';
    $('copy-status').textContent = '';
  }

  async function copyFrom(inputId, what) {
    const input = $(inputId);
    try {
      await navigator.clipboard.writeText(input.value);
      $('copy-status').textContent = `${what} copied to the clipboard.`;
    } catch (e) {
      input.focus();
      input.select();
      $('copy-status').textContent = `Copying was blocked by the browser: the ${what.toLowerCase()} is selected, press Ctrl+C.`;
    }
  }

  // ---- sign-in ---------------------------------------------------------------------------
  function showView(name) {
    for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== `view-${name}`;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function sessionEnded(message) {
    state.csrf = null;
    $('nav').hidden = true;
    $('signout').hidden = true;
    if ($('secret-dialog').open) $('secret-dialog').close();
    if ($('confirm-dialog').open) $('confirm-dialog').close();
    $('signin-text').textContent = message ||
      'Your session has ended (signed out, idle for hours, or the console was restarted). Run `scim-gate console` again and open the new link.';
    showView('signin');
  }

  async function start() {
    if (location.pathname === '/login') {
      const key = location.hash.slice(1);
      // The key leaves the address bar and the history entry before anything else happens.
      history.replaceState(null, '', '/');
      if (key) {
        try {
          const s = await api('POST', '/api/login', { key });
          state.csrf = s.csrf;
          state.scimUrl = s.scim_url;
        } catch (e) {
          sessionEnded(e.message.replace(/^Refused: /, 'Sign-in refused: '));
          return;
        }
      }
    }
    if (!state.csrf) {
      try {
        const s = await api('GET', '/api/session');
        state.csrf = s.csrf;
        state.scimUrl = s.scim_url;
      } catch (e) {
        sessionEnded(e.status === 401 ? 'Not signed in. Open the sign-in link that `scim-gate console` printed; each link works once.' : e.message);
        return;
      }
    }
    $('nav').hidden = false;
    $('signout').hidden = false;
    await probeFeatures();
    route();
  }

  // Views whose admin route the gate may not have yet appear only when it answers.
  async function probeFeatures() {
    const probe = async (name, path, usable) => {
      try {
        const data = await api('GET', path);
        state.features[name] = usable(data);
      } catch (e) {
        state.features[name] = false;
      }
      document.querySelector(`#nav a[data-view="${name}"]`).hidden = !state.features[name];
    };
    await Promise.all([
      probe('decisions', '/api/admin/decisions?limit=1', (d) => !!d && Array.isArray(d.decisions)),
      probe('guards', '/api/admin/guards', (d) => !!d && Array.isArray(d.guards)),
      probe('cluster', '/api/admin/cluster', (d) => !!d && Array.isArray(d.replicas) && d.replicas.length > 0),
    ]);
  }

  function route() {
    let name = location.hash.slice(1) || 'tokens';
    if (!['tokens', 'audit', 'decisions', 'guards', 'cluster'].includes(name)) name = 'tokens';
    if (name in state.features && !state.features[name]) name = 'tokens';
    state.view = name;
    showView(name);
    load(name);
  }

  async function load(name) {
    try {
      if (name === 'tokens') await loadTokens();
      else if (name === 'audit') await loadAudit();
      else if (name === 'decisions') await loadDecisions();
      else if (name === 'guards') await loadGuards();
      else if (name === 'cluster') await loadCluster();
    } catch (e) {
      if (e.status !== 401) showError(e);
    }
  }

  // ---- tokens ----------------------------------------------------------------------------
  async function loadTokens() {
    const data = await api('GET', '/api/admin/tokens');
    state.tokens = Array.isArray(data.tokens) ? data.tokens : [];
    renderTokens();
  }

  function renderTokens() {
    const tokens = state.tokens.slice().sort((a, b) =>
      `${a.tenant}/${a.idp}/${a.created_at}`.localeCompare(`${b.tenant}/${b.idp}/${b.created_at}`));
    const lastUsed = tokens.some((t) => 'last_used_at' in t);
    for (const th of document.querySelectorAll('.col-last-used')) th.hidden = !lastUsed;
    const rows = tokens.map((t) => {
      const tr = el('tr');
      tr.dataset.tokenId = t.id;
      tr.append(el('td', t.id, 'mono'), el('td', t.tenant), el('td', idpLabel(t.idp)));
      const st = el('td');
      st.append(el('span', t.status, `badge ${t.status}`));
      tr.append(st, el('td', list(t.domains)), el('td', list(t.networks)),
        timeCell(t.created_at), timeCell(t.refreshed_at));
      tr.append(t.expires_at ? timeCell(t.expires_at) : el('td', 'never'));
      if (lastUsed) {
        const td = el('td', relative(t.last_used_at));
        if (t.last_used_at) td.title = t.last_used_at;
        tr.append(td);
      }
      const actions = el('td', null, 'actions');
      actions.append(button('Refresh…', `Refresh ${t.id}`, () => refreshToken(t)));
      if (t.status === 'active') actions.append(button('Deactivate', `Deactivate ${t.id}`, () => setStatus(t, 'deactivate')));
      else actions.append(button('Activate', `Activate ${t.id}`, () => setStatus(t, 'activate')));
      actions.append(button('Delete…', `Delete ${t.id}`, () => deleteToken(t), 'danger'));
      tr.append(actions);
      return tr;
    });
    fill($('tokens-table'), rows, 'tokens-empty');
    renderRotationHints(tokens, lastUsed);
  }

  // Two tokens for one (tenant, IdP) is how a rotation without outage looks half-way through:
  // say so, and which one to delete once the IdP has switched.
  function renderRotationHints(tokens, lastUsed) {
    const groups = new Map();
    for (const t of tokens) {
      const k = `${t.tenant}\u0000${t.idp}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(t);
    }
    const hints = [];
    for (const ts of groups.values()) {
      if (ts.length < 2) continue;
      const byAge = ts.slice().sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
      const older = byAge[0];
      const newer = byAge[byAge.length - 1];
      let text = `${older.tenant} / ${idpLabel(older.idp)} has ${ts.length} tokens: a rotation may be half done. ` +
        `Once ${idpName(older.idp)} uses the newer token (${newer.id}), delete the older one (${older.id}).`;
      if (lastUsed) {
        text += ` Last used: ${older.id} ${relative(older.last_used_at)}, ${newer.id} ${relative(newer.last_used_at)}.`;
      }
      hints.push(el('p', text, 'hint'));
    }
    $('rotation-hints').replaceChildren(...hints);
  }

  async function createToken(ev) {
    ev.preventDefault();
    clearError();
    const tenant = $('create-tenant').value.trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(tenant)) {
      showError(new Error('Tenant: 1 to 64 letters, digits, dots, underscores or dashes.'));
      $('create-tenant').focus();
      return;
    }
    const split = (v) => v.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const body = { tenant, idp: $('create-idp').value, domains: split($('create-domains').value) };
    const networks = split($('create-networks').value);
    if (networks.length) body.networks = networks;
    if ($('create-expires').value) body.expires_in = $('create-expires').value;
    $('create-submit').disabled = true;
    try {
      const created = await api('POST', '/api/admin/tokens', body);
      const secret = created.token;
      delete created.token;
      $('create-form').reset();
      showSecret(`New token ${created.id} for ${created.tenant} / ${idpLabel(created.idp)}`, secret);
      say(`Created ${created.id}.`);
      await loadTokens();
    } catch (e) {
      showError(e);
    } finally {
      $('create-submit').disabled = false;
    }
  }

  async function refreshToken(t) {
    clearError();
    const idp = idpName(t.idp);
    const yes = await confirmAction(
      `Refresh ${t.id}?`,
      `The current secret of ${t.id} (${t.tenant} / ${idp}) stops working the moment you confirm. ` +
      `${idp} cannot provision until you paste the new secret into it, so have its SCIM settings open now. ` +
      'The new secret is shown once.',
      'Refresh now');
    if (!yes) return;
    try {
      const refreshed = await api('POST', `/api/admin/tokens/${encodeURIComponent(t.id)}/refresh`);
      const secret = refreshed.token;
      delete refreshed.token;
      showSecret(`New secret for ${refreshed.id} (${refreshed.tenant} / ${idpLabel(refreshed.idp)})`, secret);
      say(`Refreshed ${refreshed.id}: the previous secret no longer works.`);
      await loadTokens();
    } catch (e) {
      showError(e);
    }
  }

  async function setStatus(t, action) {
    clearError();
    try {
      await api('POST', `/api/admin/tokens/${encodeURIComponent(t.id)}/${action}`);
      say(`${t.id} ${action}d.`);
      await loadTokens();
    } catch (e) {
      showError(e);
    }
  }

  async function deleteToken(t) {
    clearError();
    const yes = await confirmAction(
      `Delete ${t.id}?`,
      `${idpName(t.idp)} (${t.tenant}) can no longer provision with ${t.id}. This cannot be undone.`,
      'Delete token');
    if (!yes) return;
    try {
      await api('DELETE', `/api/admin/tokens/${encodeURIComponent(t.id)}`);
      say(`Deleted ${t.id}.`);
      await loadTokens();
    } catch (e) {
      showError(e);
    }
  }

  // ---- audit -----------------------------------------------------------------------------
  const AUDIT_SHOWN = 500;

  async function loadAudit() {
    const sinceLocal = $('audit-since').value;
    let path = '/api/admin/audit';
    if (sinceLocal) {
      const d = new Date(sinceLocal);
      if (Number.isNaN(d.getTime())) throw new Error('Since: not a valid time.');
      path += `?since=${encodeURIComponent(d.toISOString())}`;
    }
    const data = await api('GET', path);
    const events = (Array.isArray(data.events) ? data.events : []).slice().reverse();
    const select = $('audit-token');
    const chosen = select.value;
    const ids = [...new Set(events.map((e) => e.token_id).filter(Boolean))].sort();
    const options = [el('option', 'all tokens')];
    options[0].value = '';
    for (const id of ids) {
      const o = el('option', id);
      o.value = id;
      options.push(o);
    }
    select.replaceChildren(...options);
    select.value = ids.includes(chosen) ? chosen : '';
    const shown = events.filter((e) => !select.value || e.token_id === select.value).slice(0, AUDIT_SHOWN);
    const rows = shown.map((e) => {
      const tr = el('tr');
      const details = [];
      if (e.uid !== undefined && e.uid !== null) details.push(`by uid ${e.uid}`);
      if (e.changes) {
        for (const [k, v] of Object.entries(e.changes)) {
          if (Array.isArray(v) && v.length) details.push(`${k}: ${v.join(', ')}`);
        }
      }
      if (e.reason) details.push(String(e.reason));
      tr.append(timeCell(e.time), el('td', e.event), el('td', e.token_id || '', 'mono'),
        el('td', e.tenant || ''), el('td', e.idp ? idpLabel(e.idp) : ''), el('td', details.join('; ')));
      return tr;
    });
    fill($('audit-table'), rows, 'audit-empty');
  }

  // ---- decisions, guards, replicas (when the gate's admin API has them) --------------------
  async function loadDecisions() {
    const token = $('decisions-token').value.trim();
    let path = '/api/admin/decisions?limit=200';
    if (token) path += `&token_id=${encodeURIComponent(token)}`;
    const data = await api('GET', path);
    const rows = (data.decisions || []).map((d) => {
      const tr = el('tr');
      tr.append(timeCell(d.time), el('td', d.token_id || '', 'mono'), el('td', d.tenant || ''),
        el('td', d.idp ? idpLabel(d.idp) : ''), el('td', `${d.method || ''} ${d.route || ''}`),
        el('td', d.status), el('td', [d.reason, d.scim_type].filter(Boolean).join(' / '), 'mono'),
        el('td', d.detail || ''));
      return tr;
    });
    fill($('decisions-table'), rows, 'decisions-empty');
  }

  async function loadGuards() {
    const data = await api('GET', '/api/admin/guards');
    const rows = (data.guards || []).map((g) => {
      const tr = el('tr');
      const rest = Object.entries(g)
        .filter(([k]) => !['token_id', 'tenant', 'idp', 'tripped_at'].includes(k))
        .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
      tr.append(el('td', g.token_id, 'mono'), el('td', g.tenant || ''), el('td', g.idp ? idpLabel(g.idp) : ''),
        timeCell(g.tripped_at), el('td', rest.join('; ')));
      const td = el('td');
      td.append(button('Release', `Release the guard of ${g.token_id}`, () => releaseGuard(g)));
      tr.append(td);
      return tr;
    });
    fill($('guards-table'), rows, 'guards-empty');
  }

  async function releaseGuard(g) {
    clearError();
    const yes = await confirmAction(`Release the guard of ${g.token_id}?`,
      `Destructive requests from ${g.token_id} go through again and its window restarts. Release only after reviewing what tripped it.`,
      'Release guard');
    if (!yes) return;
    try {
      await api('POST', `/api/admin/guards/${encodeURIComponent(g.token_id)}/release`);
      say(`Released the guard of ${g.token_id}.`);
      await loadGuards();
    } catch (e) {
      showError(e);
    }
  }

  async function loadCluster() {
    const data = await api('GET', '/api/admin/cluster');
    $('cluster-revision').textContent = `Cluster revision ${data.revision}.`;
    const rows = (data.replicas || []).map((r) => {
      const tr = el('tr');
      const serving = el('td');
      serving.append(el('span', r.serving ? 'serving' : 'not serving', `badge ${r.serving ? 'active' : 'inactive'}`));
      tr.append(el('td', r.id, 'mono'), el('td', r.host || ''), el('td', r.applied_revision), serving, timeCell(r.started_at));
      return tr;
    });
    fill($('cluster-table'), rows);
  }

  // ---- wiring ----------------------------------------------------------------------------
  document.addEventListener('DOMContentLoaded', () => {
    $('create-form').addEventListener('submit', createToken);
    $('tokens-reload').addEventListener('click', () => load('tokens'));
    $('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); load('audit'); });
    $('audit-token').addEventListener('change', () => load('audit'));
    $('decisions-form').addEventListener('submit', (ev) => { ev.preventDefault(); load('decisions'); });
    $('error-dismiss').addEventListener('click', clearError);
    $('copy-secret').addEventListener('click', () => copyFrom('secret-value', 'Token'));
    $('copy-url').addEventListener('click', () => copyFrom('secret-url', 'URL'));
    // Forgotten as the dialog closes, not a task later: 'cancel' (Escape) and the button run
    // before the dialog disappears; 'close' catches any other way it closes.
    $('secret-close').addEventListener('click', () => { forgetSecret(); $('secret-dialog').close(); });
    $('secret-dialog').addEventListener('cancel', forgetSecret);
    $('secret-dialog').addEventListener('close', forgetSecret);
    $('signout').addEventListener('click', async () => {
      try { await api('POST', '/api/logout'); } catch (e) { /* the session is gone either way */ }
      sessionEnded('Signed out. Run `scim-gate console` again for a new sign-in link.');
    });
    window.addEventListener('hashchange', () => { if (state.csrf) route(); });
    // The "last used" column and the decisions move by themselves; keep them current while no
    // dialog is open.
    setInterval(() => {
      const busy = $('secret-dialog').open || $('confirm-dialog').open;
      if (state.csrf && !busy && (state.view === 'tokens' || state.view === 'decisions')) load(state.view);
    }, 30000);
    start();
  });
})();
