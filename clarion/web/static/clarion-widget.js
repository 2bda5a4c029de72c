// Clarion's in-app widget: <clarion-bell>, <clarion-inbox>, <clarion-toast> and
// <clarion-preferences>, one ES module with no dependencies and no build step.
// Documentation: docs/widget.md. Every notification field is put on the page as text
// (Text nodes, textContent, setAttribute); links and images only with http(s) URLs.

const STRINGS = {
  en: {
    notifications: "Notifications", bellLabel: { zero: "Notifications", one: "Notifications, {n} unread", other: "Notifications, {n} unread" },
    all: "All", unread: "Unread", archived: "Archived", markAllRead: "Mark all as read",
    markRead: "Mark as read", markUnread: "Mark as unread", archive: "Archive", unarchive: "Move to inbox",
    remove: "Delete", empty: "You're all caught up", emptyArchived: "Nothing archived",
    loading: "Loading…", error: "Couldn't load notifications", retry: "Try again",
    offline: "Offline: showing what was loaded; new notifications will appear when the connection returns",
    newNotification: "New notification: {title}", close: "Close", dismiss: "Dismiss",
    others: { one: "{name} and {n} other", other: "{name} and {n} others" },
    more: { one: "{n} more in this thread", other: "{n} more in this thread" },
    showThread: "Show thread", hideThread: "Hide thread", actionFailed: "That didn't work: try again",
    preferences: "Notification preferences", saved: "Saved", channel_email: "Email", channel_push: "Push",
    channel_sms: "SMS", channel_in_app: "In the app", channel_webhook: "Webhook", channel_apprise: "Chat",
    byType: "By type", pref_inherit: "Default", pref_on: "On", pref_off: "Off", quietHours: "Quiet hours", quietHoursOn: "Pause notifications at night", quietStart: "From", quietEnd: "Until", timezone: "Time zone",
  },
  pt: {
    notifications: "Notificações", bellLabel: { zero: "Notificações", one: "Notificações, {n} por ler", other: "Notificações, {n} por ler" },
    all: "Todas", unread: "Por ler", archived: "Arquivadas", markAllRead: "Marcar todas como lidas",
    markRead: "Marcar como lida", markUnread: "Marcar como não lida", archive: "Arquivar", unarchive: "Mover para a caixa",
    remove: "Eliminar", empty: "Está tudo em dia", emptyArchived: "Nada arquivado",
    loading: "A carregar…", error: "Não foi possível carregar as notificações", retry: "Tentar de novo",
    offline: "Sem ligação: as novas notificações aparecem quando a ligação voltar",
    newNotification: "Nova notificação: {title}", close: "Fechar", dismiss: "Dispensar",
    others: { one: "{name} e mais {n} pessoa", other: "{name} e mais {n} pessoas" },
    more: { one: "mais {n} nesta conversa", other: "mais {n} nesta conversa" },
    showThread: "Mostrar conversa", hideThread: "Esconder conversa", actionFailed: "Não resultou: tente de novo",
    preferences: "Preferências de notificação", saved: "Guardado", channel_email: "Email", channel_push: "Push",
    channel_sms: "SMS", channel_in_app: "Na aplicação", channel_webhook: "Webhook", channel_apprise: "Chat",
    byType: "Por tipo", pref_inherit: "Predefinido", pref_on: "Ligado", pref_off: "Desligado", quietHours: "Horas de silêncio", quietHoursOn: "Pausar as notificações à noite", quietStart: "Das", quietEnd: "Até às", timezone: "Fuso horário",
  },
  es: {
    notifications: "Notificaciones", bellLabel: { zero: "Notificaciones", one: "Notificaciones, {n} sin leer", other: "Notificaciones, {n} sin leer" },
    all: "Todas", unread: "Sin leer", archived: "Archivadas", markAllRead: "Marcar todas como leídas",
    markRead: "Marcar como leída", markUnread: "Marcar como no leída", archive: "Archivar", unarchive: "Mover a la bandeja",
    remove: "Eliminar", empty: "Estás al día", emptyArchived: "Nada archivado",
    loading: "Cargando…", error: "No se pudieron cargar las notificaciones", retry: "Reintentar",
    offline: "Sin conexión: las nuevas notificaciones aparecerán al volver la conexión",
    newNotification: "Nueva notificación: {title}", close: "Cerrar", dismiss: "Descartar",
    others: { one: "{name} y {n} persona más", other: "{name} y {n} personas más" },
    more: { one: "{n} más en este hilo", other: "{n} más en este hilo" },
    showThread: "Mostrar hilo", hideThread: "Ocultar hilo", actionFailed: "No funcionó: inténtalo de nuevo",
    preferences: "Preferencias de notificación", saved: "Guardado", channel_email: "Correo", channel_push: "Push",
    channel_sms: "SMS", channel_in_app: "En la aplicación", channel_webhook: "Webhook", channel_apprise: "Chat",
    byType: "Por tipo", pref_inherit: "Predeterminado", pref_on: "Activado", pref_off: "Desactivado", quietHours: "Horas de silencio", quietHoursOn: "Pausar las notificaciones por la noche", quietStart: "Desde", quietEnd: "Hasta", timezone: "Zona horaria",
  },
  de: {
    notifications: "Benachrichtigungen", bellLabel: { zero: "Benachrichtigungen", one: "Benachrichtigungen, {n} ungelesen", other: "Benachrichtigungen, {n} ungelesen" },
    all: "Alle", unread: "Ungelesen", archived: "Archiviert", markAllRead: "Alle als gelesen markieren",
    markRead: "Als gelesen markieren", markUnread: "Als ungelesen markieren", archive: "Archivieren", unarchive: "In den Posteingang",
    remove: "Löschen", empty: "Alles erledigt", emptyArchived: "Nichts archiviert",
    loading: "Wird geladen…", error: "Benachrichtigungen konnten nicht geladen werden", retry: "Erneut versuchen",
    offline: "Offline: neue Benachrichtigungen erscheinen, sobald die Verbindung zurück ist",
    newNotification: "Neue Benachrichtigung: {title}", close: "Schließen", dismiss: "Ausblenden",
    others: { one: "{name} und {n} weitere Person", other: "{name} und {n} weitere" },
    more: { one: "{n} weitere in diesem Verlauf", other: "{n} weitere in diesem Verlauf" },
    showThread: "Verlauf zeigen", hideThread: "Verlauf ausblenden", actionFailed: "Das hat nicht geklappt: bitte erneut versuchen",
    preferences: "Benachrichtigungseinstellungen", saved: "Gespeichert", channel_email: "E-Mail", channel_push: "Push",
    channel_sms: "SMS", channel_in_app: "In der App", channel_webhook: "Webhook", channel_apprise: "Chat",
    byType: "Nach Typ", pref_inherit: "Standard", pref_on: "An", pref_off: "Aus", quietHours: "Ruhezeiten", quietHoursOn: "Benachrichtigungen nachts pausieren", quietStart: "Von", quietEnd: "Bis", timezone: "Zeitzone",
  },
  fr: {
    notifications: "Notifications", bellLabel: { zero: "Notifications", one: "Notifications, {n} non lue", other: "Notifications, {n} non lues" },
    all: "Toutes", unread: "Non lues", archived: "Archivées", markAllRead: "Tout marquer comme lu",
    markRead: "Marquer comme lue", markUnread: "Marquer comme non lue", archive: "Archiver", unarchive: "Remettre dans la boîte",
    remove: "Supprimer", empty: "Vous êtes à jour", emptyArchived: "Rien d'archivé",
    loading: "Chargement…", error: "Impossible de charger les notifications", retry: "Réessayer",
    offline: "Hors ligne : les nouvelles notifications apparaîtront au retour de la connexion",
    newNotification: "Nouvelle notification : {title}", close: "Fermer", dismiss: "Ignorer",
    others: { one: "{name} et {n} autre personne", other: "{name} et {n} autres personnes" },
    more: { one: "{n} de plus dans ce fil", other: "{n} de plus dans ce fil" },
    showThread: "Afficher le fil", hideThread: "Masquer le fil", actionFailed: "Cela n'a pas fonctionné : réessayez",
    preferences: "Préférences de notification", saved: "Enregistré", channel_email: "E-mail", channel_push: "Push",
    channel_sms: "SMS", channel_in_app: "Dans l'application", channel_webhook: "Webhook", channel_apprise: "Chat",
    byType: "Par type", pref_inherit: "Par défaut", pref_on: "Activé", pref_off: "Désactivé", quietHours: "Heures calmes", quietHoursOn: "Suspendre les notifications la nuit", quietStart: "De", quietEnd: "À", timezone: "Fuseau horaire",
  },
};

// ---------------------------------------------------------------------------- helpers

/** An element with attributes (all set as attributes, never as HTML) and children (strings
 * become Text nodes). Functions under on* become listeners. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(4)) if (kid != null && kid !== false) el.append(kid);
  return el;
}

/** An absolute http(s) URL, or null: relative references resolve against the page. */
export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, document.baseURI);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function jwtClaims(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b64));
  } catch {
    return {};
  }
}

function emit(target, name, detail) {
  target.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// How long a tab waits for the leading tab's counts before asking the server itself,
// and how often the leading tab says it lives (in localStorage).
const ASK_LEADER_MS = 150;
const BEAT_MS = 5000;
// The longest a tab holds back the server's counts for another tab's change in flight.
const HOLD_MS = 10000;

/** localStorage, or null where the page may not use it. */
function storage() {
  try { return globalThis.localStorage || null; } catch { return null; }
}

// ---------------------------------------------------------------------------- the client

/**
 * One per page and user: the REST calls, the token and its renewal, the counts, and the
 * live connection. The tabs of one browser share a single connection: the tab holding the
 * Web Lock is the leader, opens the WebSocket (or SSE) and relays every frame to the other
 * tabs over a BroadcastChannel.
 */
export class ClarionClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.url = String(options.url || new URL(import.meta.url).origin).replace(/\/+$/, "");
    this.token = options.token || null;
    this.getToken = options.getToken || null;
    this.locale = options.locale || null;
    this.strings = options.strings || {};
    this.transport = options.transport || "auto"; // auto | websocket | sse
    this.shareConnection = options.shareConnection !== false;
    this.counts = null;
    this.status = "connecting";
    this.cursor = 0;
    this.leader = false;
    this._attempt = 0;
    this._wsFailures = 0;
    this._closed = false;
    this._renewing = null;
    this._countVersion = 0;
    this.ready = this._start();
  }

  get userId() {
    return jwtClaims(this.token || "").sub || null;
  }

  async _start() {
    if (!this.token) await this.renewToken();
    this._scheduleRenewal();
    addEventListener("online", () => this._reconnectSoon(0));
    addEventListener("offline", () => this._setStatus("offline"));
    const lockName = `clarion:${this.url}:${this.userId}`;
    if (this.shareConnection && globalThis.BroadcastChannel && navigator.locks) {
      this._bc = new BroadcastChannel(lockName);
      this._bc.onmessage = (e) => this._fromTab(e.data);
      this._beatKey = `${lockName}:leader`;
      // Another tab leads: it holds the live counts and answers "hello" with them at
      // once; the REST call is only the fallback when no answer came soon. Whether a
      // leader lives is read synchronously from its heartbeat (asking the Web Locks
      // manager first costs a page tens of milliseconds).
      this._bc.postMessage({ t: "hello" });
      if (Date.now() - Number(storage()?.getItem(this._beatKey) || 0) < BEAT_MS * 2) {
        setTimeout(() => this.counts || this.refreshCount().catch(() => {}), ASK_LEADER_MS);
      } else {
        this.refreshCount().catch(() => {});
      }
      navigator.locks.request(lockName, () => new Promise((release) => {
        this._release = release;
        this._lead();
      }));
    } else {
      this.refreshCount().catch(() => {});
      this._lead();
    }
  }

  // --- tokens

  /** Ask the host app for a new token (getToken), once at a time. */
  async renewToken() {
    if (!this.getToken) throw new Error("the token expired and no getToken() was given");
    if (!this._renewing) {
      this._renewing = (async () => {
        try {
          const token = await this.getToken();
          if (typeof token !== "string" || !token) throw new Error("getToken() returned no token");
          this.token = token;
          this._scheduleRenewal();
          if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify({ type: "auth", token }));
          return token;
        } finally {
          this._renewing = null;
        }
      })();
    }
    return this._renewing;
  }

  _scheduleRenewal() {
    clearTimeout(this._renewTimer);
    const exp = jwtClaims(this.token || "").exp;
    if (!exp || !this.getToken) return;
    const left = exp * 1000 - Date.now();
    // Renew a minute before expiry (a quarter of the lifetime for short tokens).
    const lead = Math.min(60000, Math.max(left, 0) / 4);
    this._renewTimer = setTimeout(() => this.renewToken().catch((e) => this._error(e)), Math.max(0, left - lead));
  }

  // --- REST

  async api(path, { method = "GET", body, retried = false, keepalive = false } = {}) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(`${this.url}/api/v1${path}`, {
      method, headers, keepalive, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && !retried && this.getToken) {
      await this.renewToken();
      return this.api(path, { method, body, retried: true, keepalive });
    }
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(data?.error?.message || `HTTP ${res.status}`);
      err.status = res.status;
      err.code = data?.error?.code;
      err.details = data?.error?.details;
      throw err;
    }
    return data;
  }

  /** The counts by REST (a page's first badge); a frame arriving meanwhile is newer. */
  async refreshCount() {
    const asked = ++this._countVersion;
    const counts = await this.api("/notifications/unread-count");
    if (asked === this._countVersion) this._setCounts(counts);
  }

  list(params) {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== ""));
    return this.api(`/notifications?${q}`);
  }

  /** read | unread | archive | unarchive | seen | delete; the server's frames follow. */
  async change(id, what) {
    if (what === "delete") return this.api(`/notifications/${id}`, { method: "DELETE" });
    return this.api(`/notifications/${id}/${what}`, { method: "POST" });
  }

  readAll() {
    return this.api("/notifications/read-all", { method: "POST" });
  }

  clickAction(id, actionId, opts = {}) {
    return this.api(`/notifications/${id}/actions/${encodeURIComponent(actionId)}`, { method: "POST", ...opts });
  }

  /** A change this tab makes, shown at once in every tab of this browser before the
   * server's frames confirm it: `update` is shaped like a `notification.updated` frame
   * ({change, id, notification}) or null; `counts` are the counts it leaves, if known. */
  optimistic(update, counts = null) {
    const msg = { update, counts };
    this._local(msg);
    this._bc?.postMessage({ t: "local", ...msg });
  }

  /** Run `request` (the REST call of a change shown optimistically). Meanwhile every tab
   * holds back the server's count frames, which may predate the change (a read, then an
   * unread, then a read in quick succession would show 2, 3, 2 after the fact), and
   * shows the newest of them once the request is over. `undo` runs if it failed, before
   * those frames (the server's truth) are shown. */
  async settling(request, undo) {
    const id = `${Date.now()}:${Math.random()}`;
    this._hold(id);
    this._bc?.postMessage({ t: "hold", id });
    try {
      return await request();
    } catch (error) {
      undo?.();
      throw error;
    } finally {
      this._unhold(id);
      this._bc?.postMessage({ t: "unhold", id });
    }
  }

  _hold(id) {
    this._holds ??= new Map();
    // A tab closed mid-request never says it is over: let go after a while.
    this._holds.set(id, setTimeout(() => this._unhold(id), HOLD_MS));
  }

  _unhold(id) {
    if (!this._holds?.has(id)) return;
    clearTimeout(this._holds.get(id));
    this._holds.delete(id);
    if (!this._holds.size && this._heldCounts) {
      // A held frame may predate the changes just made (the frame of a read can arrive
      // after its request's answer, while the next change is in flight): ask the server,
      // and fall back to the newest frame only if it cannot answer.
      const counts = this._heldCounts;
      this._heldCounts = null;
      this.refreshCount().catch(() => this._setCounts(counts));
    }
  }

  /** The counts moved by (unread, unseen), or null while none are known. */
  countsMoved(unread, unseen) {
    if (!this.counts) return null;
    return { unread: Math.max(0, this.counts.unread + unread), unseen: Math.max(0, this.counts.unseen + unseen) };
  }

  _local({ update, counts }) {
    if (counts) {
      this._countVersion++; // a REST answer still in flight is older
      this._setCounts(counts);
    }
    if (update) this._dispatch("updated", { ...update, optimistic: true });
  }

  // --- the shared connection

  _fromTab(msg) {
    if (msg.t === "frame") this._frame(msg.frame, false);
    else if (msg.t === "local") this._local(msg);
    else if (msg.t === "hold") this._hold(msg.id);
    else if (msg.t === "unhold") this._unhold(msg.id);
    else if (msg.t === "status") this._setStatus(msg.status, false);
    else if (msg.t === "hello" && this.leader) {
      this._bc.postMessage({ t: "status", status: this.status });
      if (this.counts) this._bc.postMessage({ t: "frame", frame: { type: "unread_count", ...this.counts } });
    }
  }

  _lead() {
    this.leader = true;
    if (this._beatKey) {
      const beat = () => storage()?.setItem(this._beatKey, String(Date.now()));
      beat();
      this._beatTimer = setInterval(beat, BEAT_MS);
      this._unbeat = () => { clearInterval(this._beatTimer); storage()?.removeItem(this._beatKey); };
      addEventListener("pagehide", this._unbeat);
    }
    this._connect();
  }

  _connect() {
    if (this._closed) return;
    clearTimeout(this._retryTimer);
    if (this.transport === "sse" || (this.transport === "auto" && this._wsFailures >= 2)) this._connectSse();
    else this._connectWs();
  }

  _connectWs() {
    const url = new URL(`${this.url}/api/v1/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.cursor) url.searchParams.set("cursor", String(this.cursor));
    let opened = false;
    const ws = (this._ws = new WebSocket(url));
    const guard = setTimeout(() => ws.readyState !== 1 && ws.close(), 8000);
    ws.onopen = () => {
      opened = true;
      clearTimeout(guard);
      ws.send(JSON.stringify({ type: "auth", token: this.token }));
    };
    ws.onmessage = (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame.type === "unread_count" && this.status !== "live") {
        this._attempt = 0;
        this._wsFailures = 0;
        this._setStatus("live");
      }
      this._frame(frame, true);
    };
    ws.onclose = (e) => {
      clearTimeout(guard);
      if (this._ws !== ws) return;
      this._ws = null;
      if (!opened) this._wsFailures++;
      this._lost(e.code, opened);
    };
  }

  _connectSse() {
    const url = new URL(`${this.url}/api/v1/notifications/stream`);
    url.searchParams.set("token", this.token);
    if (this.cursor) url.searchParams.set("cursor", String(this.cursor));
    const es = (this._es = new EventSource(url));
    const on = (type) => es.addEventListener(type, (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (type === "unread_count") { this._attempt = 0; this._setStatus("live"); }
      this._frame({ type, ...frame }, true);
    });
    ["notification.created", "notification.updated", "unread_count", "resync_required"].forEach(on);
    const end = (code, reached = true) => {
      es.close();
      if (this._es !== es) return;
      this._es = null;
      this._lost(code, reached);
    };
    es.addEventListener("token_expired", () => end(4002));
    es.addEventListener("closed", () => end(1001));
    es.onerror = () => end(1006, this.status === "live");
  }

  /** The connection ended (`reached`: it had been open): "reconnecting" at first, and
   * "offline" once the server could not be reached. */
  _lost(code, reached) {
    if (this._closed) return;
    this._setStatus(navigator.onLine === false || !reached ? "offline" : "reconnecting");
    if (code === 4002 || code === 4001 || code === 4003) {
      this.renewToken().then(() => this._connect(), (e) => { this._error(e); this._reconnectSoon(); });
      return;
    }
    this._reconnectSoon(code === 4009 ? 10000 : undefined);
  }

  /** Reconnect after an exponential backoff with full jitter (or after `delay`). */
  _reconnectSoon(delay) {
    if (!this.leader || this._closed) return;
    if (delay === 0) this._attempt = 0;
    const base = Math.min(15000, 250 * 2 ** this._attempt++);
    const wait = delay ?? base / 2 + Math.random() * (base / 2);
    clearTimeout(this._retryTimer);
    if (this._ws || this._es) return;
    this._retryTimer = setTimeout(() => this._connect(), wait);
  }

  _frame(frame, relay) {
    if (relay && this._bc) this._bc.postMessage({ t: "frame", frame });
    if (frame.type === "notification.created") {
      this.cursor = Math.max(this.cursor, frame.id);
      this._dispatch("created", frame);
    } else if (frame.type === "notification.updated") {
      this._dispatch("updated", frame);
    } else if (frame.type === "unread_count") {
      this._countVersion++;
      if (this._holds?.size) this._heldCounts = { unread: frame.unread, unseen: frame.unseen };
      else this._setCounts(frame);
    } else if (frame.type === "resync_required") {
      this._dispatch("resync", frame);
      this.refreshCount().catch(() => {});
    }
  }

  /** The newest id this page knows (loaded lists feed it too): the resume cursor. */
  seen(id) {
    this.cursor = Math.max(this.cursor, id || 0);
  }

  _setCounts({ unread, unseen }) {
    this.counts = { unread, unseen };
    this._dispatch("count", this.counts);
  }

  _setStatus(status, relay = true) {
    if (status === this.status) return;
    this.status = status;
    if (relay && this.leader && this._bc) this._bc.postMessage({ t: "status", status });
    this._dispatch("status", { status });
    // Connected without a cursor (nothing known yet): what a list loaded before may
    // have missed cannot be replayed, so lists reload.
    if (status === "live" && !this.cursor) this._dispatch("resync", { reason: "no cursor" });
  }

  _error(error) {
    this._dispatch("error", { error });
  }

  _dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Close the connection and give up leadership (another tab takes over). */
  close() {
    this._closed = true;
    clearTimeout(this._renewTimer);
    clearTimeout(this._retryTimer);
    this._ws?.close(1000);
    this._es?.close();
    this._unbeat?.();
    this._release?.();
    this._bc?.close();
  }

  // --- strings

  lang(el) {
    const want = (this.locale || el?.closest?.("[lang]")?.lang || document.documentElement.lang || navigator.language || "en");
    return want.toLowerCase();
  }

  /** A translated string: the host's overrides for the locale, then the built-in table. */
  t(key, vars = {}, el = null) {
    const lang = this.lang(el);
    const base = lang.split("-")[0];
    let value = this.strings[lang]?.[key] ?? this.strings[base]?.[key] ?? (STRINGS[base] || STRINGS.en)[key] ?? STRINGS.en[key] ?? key;
    if (typeof value === "object") {
      const n = vars.n ?? 0;
      value = (n === 0 && value.zero) || value[new Intl.PluralRules(lang).select(n)] || value.other;
    }
    return value.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
  }

  /** "5 minutes ago", "now", in the element's language. */
  ago(iso, el = null) {
    const secs = (new Date(iso).getTime() - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(this.lang(el), { numeric: "auto", style: "short" });
    const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of units) if (Math.abs(secs) >= size) return rtf.format(Math.round(secs / size), unit);
    return rtf.format(0, "second");
  }
}

let defaultClient = null;
const waiting = [];

/** Configure the default client every element on the page uses: {url, token, getToken,
 * locale, strings, transport}. Returns the client. */
export function configure(options) {
  defaultClient?.close();
  defaultClient = new ClarionClient(options);
  waiting.splice(0).forEach((resolve) => resolve(defaultClient));
  document.querySelectorAll("clarion-bell,clarion-inbox,clarion-toast,clarion-preferences").forEach((el) => el._attach?.());
  return defaultClient;
}

function clientFor(el) {
  if (el.client) return Promise.resolve(el.client);
  if (defaultClient) return Promise.resolve(defaultClient);
  return new Promise((resolve) => waiting.push(resolve));
}

// ---------------------------------------------------------------------------- styles

const LIGHT = "--_bg:var(--clarion-bg,#fff);--_fg:var(--clarion-fg,#1b1e23);--_muted:var(--clarion-muted,#555d68);--_border:var(--clarion-border,#d9dde3);--_accent:var(--clarion-accent,#2450c8);--_accent-fg:var(--clarion-accent-fg,#fff);--_unread:var(--clarion-unread-bg,#eef3ff);--_hover:var(--clarion-hover-bg,#f3f5f8);--_badge:var(--clarion-badge-bg,#c8251a);--_badge-fg:var(--clarion-badge-fg,#fff);--_danger:var(--clarion-danger,#b42318);color-scheme:light;";
const DARK = "--_bg:var(--clarion-dark-bg,#17191d);--_fg:var(--clarion-dark-fg,#eceef1);--_muted:var(--clarion-dark-muted,#a8b0bb);--_border:var(--clarion-dark-border,#343a42);--_accent:var(--clarion-dark-accent,#8fb0ff);--_accent-fg:var(--clarion-dark-accent-fg,#0d1526);--_unread:var(--clarion-dark-unread-bg,#1f2a44);--_hover:var(--clarion-dark-hover-bg,#22262c);--_badge:var(--clarion-dark-badge-bg,#ff6b5e);--_badge-fg:var(--clarion-dark-badge-fg,#1b0503);--_danger:var(--clarion-dark-danger,#ff8a80);color-scheme:dark;";
const CSS = `
:host{${LIGHT}font:var(--clarion-font,14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif)}
@media (prefers-color-scheme:dark){:host(:not([theme=light])){${DARK}}}
:host([theme=dark]){${DARK}}
:host([hidden]){display:none}
*{box-sizing:border-box}
button{font:inherit;color:inherit;background:none;border:1px solid transparent;border-radius:6px;padding:.3em .6em;cursor:pointer}
button:hover{background:var(--_hover)}
:focus-visible{outline:2px solid var(--_accent);outline-offset:1px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.bell{position:relative;display:inline-flex;align-items:center;justify-content:center;width:2.4em;height:2.4em;border-radius:50%;color:var(--clarion-bell-color,currentColor)}
.bell svg{width:1.4em;height:1.4em}
.badge{position:absolute;inset-block-start:0;inset-inline-end:0;min-width:1.4em;height:1.4em;padding:0 .35em;border-radius:.7em;background:var(--_badge);color:var(--_badge-fg);font-size:.72em;font-weight:700;line-height:1.4em;text-align:center}
.wrap{position:relative;display:inline-block}
.popover{position:absolute;z-index:1000;inset-block-start:calc(100% + 6px);inset-inline-end:0;width:min(400px,calc(100vw - 16px))}
.popover.flip{inset-inline-end:auto;inset-inline-start:0}
.center{display:flex;flex-direction:column;background:var(--_bg);color:var(--_fg);border:1px solid var(--_border);border-radius:var(--clarion-radius,10px);overflow:hidden;height:100%}
:host([mode=popover]) .center{max-height:min(70vh,560px);box-shadow:0 8px 28px rgba(0,0,0,.18)}
header{display:flex;align-items:center;justify-content:space-between;gap:.5em;padding:.6em .8em;border-block-end:1px solid var(--_border)}
h2{font-size:1.05em;margin:0}
.link{color:var(--_accent);font-size:.9em}
[role=tablist]{display:flex;gap:.2em;padding:.3em .6em;border-block-end:1px solid var(--_border);overflow-x:auto}
[role=tab]{border-radius:6px 6px 0 0;border-block-end:2px solid transparent;color:var(--_muted)}
[role=tab][aria-selected=true]{color:var(--_fg);border-block-end-color:var(--_accent);font-weight:600}
header,[role=tablist],.banner{flex:none}
.scroll{overflow-y:auto;flex:1 1 auto;min-height:6em}
ul,ol{list-style:none;margin:0;padding:0}
.item{display:flex;gap:.6em;padding:.7em .8em;border-block-end:1px solid var(--_border);position:relative}
.item.unread{background:var(--_unread)}
.item:focus-visible{outline-offset:-2px}
.dot{flex:none;width:.55em;height:.55em;border-radius:50%;margin-block-start:.45em;background:transparent}
.unread>.dot{background:var(--_accent)}
.body{flex:1;min-width:0}
.title{font-weight:600;overflow-wrap:anywhere}
.msg{margin:.15em 0 0;white-space:pre-line;overflow-wrap:anywhere}
.meta{display:flex;flex-wrap:wrap;align-items:center;gap:.2em .6em;margin-block-start:.35em;color:var(--_muted);font-size:.85em}
.meta button{font-size:1em;padding:.1em .35em;color:var(--_muted)}
.avatar{flex:none;width:2.2em;height:2.2em;border-radius:50%;object-fit:cover}
.media{display:block;max-width:100%;max-height:14em;border-radius:8px;margin-block-start:.4em}
.actions{display:flex;flex-wrap:wrap;gap:.4em;margin-block-start:.5em}
.actions a,.actions button{border:1px solid var(--_border);border-radius:6px;padding:.3em .7em;text-decoration:none;color:var(--_fg);font-size:.92em}
.actions .primary{background:var(--_accent);color:var(--_accent-fg);border-color:var(--_accent)}
.actions .danger{color:var(--_danger);border-color:var(--_danger)}
.actions .link{border-color:transparent;color:var(--_accent)}
.card{border:1px solid var(--_border);border-radius:8px;padding:.5em .7em;margin-block-start:.4em}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:.15em .8em;margin:.3em 0}
.card dt{color:var(--_muted)}.card dd{margin:0;overflow-wrap:anywhere}
.card .hd{font-weight:600}.card .ft{color:var(--_muted);font-size:.9em}
.list li{display:flex;align-items:center;gap:.5em;padding:.2em 0}
.list img{width:1.6em;height:1.6em;border-radius:4px}
.list a{color:var(--_accent)}
.sub{color:var(--_muted);font-size:.9em}
.tl{border-inline-start:2px solid var(--_border);margin:.4em 0 0 .3em;padding-inline-start:.7em}
.tl li{position:relative;padding:.15em 0}
.tl li::before{content:"";position:absolute;inset-inline-start:calc(-.7em - 5px);inset-block-start:.55em;width:8px;height:8px;border-radius:50%;background:var(--_accent)}
.tl time{color:var(--_muted);font-size:.85em;margin-inline-end:.4em}
.thread{font-size:.88em;color:var(--_accent);padding:.1em .3em}
.nested{border-inline-start:3px solid var(--_border);margin-block-start:.4em}
.nested .item{padding:.5em .6em}
.state{padding:2em 1em;text-align:center;color:var(--_muted)}
.banner{padding:.4em .8em;background:var(--_hover);color:var(--_fg);font-size:.88em;border-block-end:1px solid var(--_border)}
.toasts{position:fixed;z-index:1001;inset-block-end:1em;inset-inline-end:1em;display:flex;flex-direction:column;gap:.5em;width:min(360px,calc(100vw - 2em))}
.toast{display:flex;gap:.6em;align-items:flex-start;background:var(--_bg);color:var(--_fg);border:1px solid var(--_border);border-inline-start:4px solid var(--_accent);border-radius:8px;padding:.7em .8em;box-shadow:0 6px 20px rgba(0,0,0,.2)}
.toast.urgent{border-inline-start-color:var(--_danger)}
.prefs{padding:.8em;background:var(--_bg);color:var(--_fg);border:1px solid var(--_border);border-radius:var(--clarion-radius,10px)}
.prefs label{display:flex;gap:.5em;align-items:center;flex-wrap:wrap;padding:.25em 0}.prefs fieldset{border:0;padding:.4em 0;margin:0}.prefs .type{display:flex;gap:.8em;flex-wrap:wrap;align-items:center}.prefs .tname{font-weight:600;min-width:6em}.prefs .err{color:#b3261e;flex-basis:100%}.prefs .err:empty{display:none}
`;
let sheet = null;
function adopt(root) {
  try {
    if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
    root.adoptedStyleSheets = [sheet];
  } catch {
    root.append(h("style", null, CSS));
  }
}

const BELL_SVG = "M12 2a6 6 0 0 0-6 6v3.6L4.3 15a1 1 0 0 0 .9 1.5h13.6a1 1 0 0 0 .9-1.5L18 11.6V8a6 6 0 0 0-6-6zm0 20a3 3 0 0 0 3-3H9a3 3 0 0 0 3 3z";
function bellIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("fill", "currentColor");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", BELL_SVG);
  svg.append(path);
  return svg;
}

class Base extends HTMLElement {
  connectedCallback() {
    if (!this.shadowRoot) adopt(this.attachShadow({ mode: "open" }));
    this._attach();
  }

  disconnectedCallback() {
    this._detach?.();
  }

  async _attach() {
    const client = await clientFor(this);
    if (client === this._client || !this.isConnected) return;
    this._detach?.();
    this._client = client;
    const subs = [];
    this._on = (type, fn) => { client.addEventListener(type, fn); subs.push([type, fn]); };
    this._detach = () => { subs.splice(0).forEach(([t, f]) => client.removeEventListener(t, f)); this._client = null; };
    this.setup(client);
  }

  t(key, vars) {
    return this._client.t(key, vars, this);
  }
}

// ---------------------------------------------------------------------------- rendering one notification

const TEMPLATE_RENDERERS = {
  rich_media(n, c) {
    const media = n.media || {};
    const out = [];
    const image = safeUrl(media.image) || safeUrl(media.thumbnail);
    if (image) out.push(h("img", { class: "media", part: "media", src: image, alt: "", loading: "lazy" }));
    const video = safeUrl(media.video);
    if (video) out.push(h("video", { class: "media", part: "media", src: video, controls: true, preload: "none" }));
    return out;
  },
  interactive(n, c, view) {
    const actions = (n.actions || []).map((a) => {
      const style = ["primary", "danger", "link"].includes(a.style) ? a.style : "secondary";
      const url = a.url ? safeUrl(a.url) : null;
      if (a.url && !url) return null;
      if (url) {
        return h("a", { class: style, part: "action", href: url, target: "_blank", rel: "noopener noreferrer",
          onclick: () => view.recordAction(n, a, true) }, a.label);
      }
      return h("button", { type: "button", class: style, part: "action", onclick: () => view.recordAction(n, a) }, a.label);
    });
    return h("div", { class: "actions", part: "actions" }, actions);
  },
  card(n, c) {
    const extra = c.extra || {};
    return h("div", { class: "card", part: "card" },
      extra.header ? h("div", { class: "hd" }, extra.header) : null,
      h("dl", null, (extra.fields || []).map((f) => [h("dt", null, String(f.label)), h("dd", null, String(f.value))])),
      extra.footer ? h("div", { class: "ft" }, extra.footer) : null);
  },
  list(n, c) {
    return h("ul", { class: "list", part: "list-items" }, ((c.extra || {}).items || []).map((it) => {
      const url = safeUrl(it.url);
      const img = safeUrl(it.image);
      return h("li", null, img ? h("img", { src: img, alt: "", loading: "lazy" }) : null,
        h("div", null, url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, it.title) : h("span", null, it.title),
          it.subtitle ? h("div", { class: "sub" }, it.subtitle) : null));
    }));
  },
  timeline(n, c, view) {
    const fmt = new Intl.DateTimeFormat(view._client.lang(view), { dateStyle: "medium", timeStyle: "short" });
    return h("ol", { class: "tl", part: "timeline" }, ((c.extra || {}).entries || []).map((e) => {
      const at = new Date(e.at);
      return h("li", null, h("time", { datetime: e.at }, isNaN(at) ? "" : fmt.format(at)), h("strong", null, e.title),
        e.description ? h("div", { class: "sub" }, e.description) : null);
    }));
  },
};

/** The shared body of a notification: avatar, title, message, the kind's part. */
function notificationBody(n, view) {
  const content = n.content || {};
  const avatar = safeUrl(n.media?.avatar);
  const kind = TEMPLATE_RENDERERS[n.template];
  return [
    avatar ? h("img", { class: "avatar", part: "avatar", src: avatar, alt: "" }) : null,
    h("div", { class: "body" },
      h("div", { class: "title", part: "title" }, n.title || ""),
      n.message ? h("p", { class: "msg", part: "message" }, n.message) : null,
      kind ? kind(n, content, view) : null,
      view.meta ? view.meta(n) : null),
  ];
}

// ---------------------------------------------------------------------------- <clarion-inbox>

const PAGE = 20;
const BASE_TABS = [
  { id: "all", label: "all", q: { status: "all", archived: "false" }, match: (n) => !n.archived_at },
  { id: "unread", label: "unread", q: { status: "unread", archived: "false" }, match: (n) => !n.archived_at && n.status === "unread" },
  { id: "archived", label: "archived", q: { status: "all", archived: "true" }, match: (n) => !!n.archived_at },
];

export class ClarionInbox extends Base {
  static get observedAttributes() { return ["type-tabs"]; }

  attributeChangedCallback() {
    if (this._client) this._build();
  }

  setup(client) {
    this.items = new Map();
    this.expanded = new Set();
    this.pending = new Set();
    // Changes this tab has in flight, per notification: the latest one's answer decides.
    this._inflight = new Map();
    // When each notification was last changed here (a count of changes): a page asked
    // for before that holds an older state of it than the one shown.
    this._changes = 0;
    this._changedAt = new Map();
    this._build();
    this._on("created", (e) => this._created(e.detail));
    this._on("updated", (e) => {
      // A server frame about a notification with a change of ours in flight may describe
      // a state before that change; the change's own answer settles it.
      if (e.detail.optimistic || !this._inflight.has(e.detail.id)) this._updated(e.detail);
    });
    this._on("count", () => this._renderTabs());
    this._on("status", () => this._renderBanner());
    this._on("resync", () => this.reload());
    this._clock = setInterval(() => this._render(), 60000);
    const detach = this._detach;
    this._detach = () => { clearInterval(this._clock); this._observer?.disconnect(); detach(); };
    if (this.getAttribute("mode") !== "popover" || this._wanted) this.show();
  }

  get tabs() {
    const custom = (this.getAttribute("type-tabs") || "").split(",").map((s) => s.trim()).filter(Boolean).map((spec) => {
      const [type, label] = spec.split(":");
      return { id: `type:${type}`, text: label || type, q: { status: "all", archived: "false", type }, match: (n) => !n.archived_at && n.type === type };
    });
    return [...BASE_TABS, ...custom];
  }

  _build() {
    const root = this.shadowRoot;
    this.tabState = new Map(this.tabs.map((t) => [t.id, { ids: [], cursor: null, loaded: false, loading: false, error: null }]));
    this.current = this.current && this.tabState.has(this.current) ? this.current : "all";
    this._live = h("div", { class: "sr", "aria-live": "polite", role: "status" });
    this._banner = h("div", { class: "banner", part: "banner", role: "status", hidden: true });
    this._tablist = h("div", { role: "tablist", part: "tabs", onkeydown: (e) => this._tabKeys(e) });
    this._list = h("ul", { role: "list", part: "list", id: "list", onkeydown: (e) => this._listKeys(e) });
    this._state = h("div", { class: "state", part: "state" });
    this._sentinel = h("div", { "aria-hidden": "true", style: "height:1px" });
    this._scroll = h("div", { class: "scroll", part: "scroll", role: "tabpanel", id: "panel" }, this._list, this._state, this._sentinel);
    this._markAll = h("button", { type: "button", class: "link", part: "mark-all", onclick: () => this.markAllRead() });
    this._heading = h("h2", { id: "heading", part: "heading" });
    root.replaceChildren(h("section", { class: "center", part: "center", "aria-labelledby": "heading" },
      h("header", { part: "header" }, this._heading, this._markAll), this._tablist, this._banner, this._scroll, this._live));
    this._observer?.disconnect();
    this._observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this._loadMore();
    }, { root: this._scroll, rootMargin: "200px" });
    this._observer.observe(this._sentinel);
    this._render();
  }

  /** Load the current tab's first page (popover mode calls this on open). */
  show() {
    this._wanted = true;
    if (!this._client) return;
    const st = this.tabState.get(this.current);
    if (!st.loaded && !st.loading) this._load(this.current);
  }

  /** Mark what the first page shows as seen (a bell counting unseen, on opening). */
  async markSeen() {
    const st = this.tabState.get(this.current);
    if (!st.loaded) {
      this.addEventListener("clarion-loaded", () => this.markSeen(), { once: true });
      return;
    }
    const unseen = st.ids.slice(0, PAGE).map((id) => this.items.get(id)).filter((n) => n && !n.seen_at);
    for (const n of unseen) {
      n.seen_at = new Date().toISOString();
      this._client.change(n.id, "seen").catch(() => {});
    }
  }

  reload() {
    for (const st of this.tabState.values()) Object.assign(st, { ids: [], cursor: null, loaded: false, error: null });
    if (this._wanted) this.show();
  }

  focusFirst() {
    (this._tablist.querySelector("[aria-selected=true]") || this._tablist).focus();
  }

  async _load(tabId, more = false) {
    const st = this.tabState.get(tabId);
    const tab = this.tabs.find((t) => t.id === tabId);
    if (!st || st.loading || (more && !st.cursor)) return;
    st.loading = true;
    st.error = null;
    this._render();
    const asked = this._changes;
    try {
      const page = await this._client.list({ ...tab.q, limit: PAGE, cursor: more ? st.cursor : null });
      for (const n of page.items) {
        // The server read this page before a change made here since (or still in flight)
        // reached it: what this tab shows is newer, and a notification deleted here stays gone.
        if (this._inflight.has(n.id) || (this._changedAt.get(n.id) || 0) > asked) {
          if (!this.items.has(n.id)) continue;
        } else {
          this.items.set(n.id, n);
        }
        this._client.seen(n.id);
        if (!st.ids.includes(n.id)) st.ids.push(n.id);
      }
      st.ids.sort((a, b) => b - a);
      st.cursor = page.next_cursor;
      st.loaded = true;
      st.loading = false;
      this._render();
      emit(this, "clarion-loaded", { tab: tabId, count: page.items.length, more });
    } catch (error) {
      st.loading = false;
      st.error = error;
      this._render();
      emit(this, "clarion-error", { error });
    }
  }

  _loadMore() {
    const st = this.tabState.get(this.current);
    if (st.loaded && st.cursor && !st.loading) this._load(this.current, true);
  }

  _created({ notification: n, replay }) {
    if (!n || this.items.has(n.id)) { if (n) this.items.set(n.id, n); this._render(); return; }
    this.items.set(n.id, n);
    // A page in flight may have been read before this commit: keep it either way.
    for (const [id, st] of this.tabState) {
      if ((st.loaded || st.loading) && this.tabs.find((t) => t.id === id)?.match(n)) {
        st.ids.push(n.id);
        st.ids.sort((a, b) => b - a);
      }
    }
    // Inside a closed popover the region is hidden: the bell announces for it then.
    if (!replay && this.getAttribute("mode") !== "popover") this._live.textContent = this.t("newNotification", { title: n.title });
    this._render();
    if (!replay) emit(this, "clarion-notification", { notification: n });
  }

  _updated({ change, id, notification }) {
    if (change === "deleted") {
      this.items.delete(id);
    } else if (change === "read_all") {
      for (const n of this.items.values()) if (n.status === "unread") Object.assign(n, { status: "read", read_at: n.read_at || new Date().toISOString() });
    } else if (notification) {
      this.items.set(notification.id, notification);
      for (const [tid, st] of this.tabState) {
        const tab = this.tabs.find((t) => t.id === tid);
        if (st.loaded && tab?.match(notification) && !st.ids.includes(id)) { st.ids.push(id); st.ids.sort((a, b) => b - a); }
      }
    }
    this._render();
  }

  /** An optimistic change, reconciled by the server's answer (or undone on failure). */
  async change(n, what) {
    const before = { ...n };
    const after = { ...n };
    const now = new Date().toISOString();
    if (what === "read") Object.assign(after, { status: "read", read_at: now, seen_at: n.seen_at || now });
    else if (what === "unread") Object.assign(after, { status: "unread", read_at: null });
    else if (what === "archive") after.archived_at = now;
    else if (what === "unarchive") after.archived_at = null;
    const gone = what === "delete";
    // The counts hold non-archived notifications that are unread (unseen).
    const counted = (x, key) => (x && !x.archived_at && (key === "unread" ? x.status === "unread" : !x.seen_at) ? 1 : 0);
    const moved = (key) => counted(gone ? null : after, key) - counted(before, key);
    const du = moved("unread");
    const ds = moved("unseen");
    // Every tab of this browser shows the change at once; the server's frames confirm it.
    this._client.optimistic(gone ? { change: "deleted", id: n.id } : { change: what, id: n.id, notification: after },
      this._client.countsMoved(du, ds));
    // Changes to one notification go to the server one after another, in the order they
    // were made (a read then an unread in quick succession must not land the other way
    // round), and only the latest one's answer is shown: an earlier answer arriving after
    // a later optimistic change would show a state the user has already left.
    this._changedAt.set(n.id, ++this._changes);
    const prev = this._inflight.get(n.id);
    const mine = { turn: (prev ? prev.turn.catch(() => {}) : Promise.resolve()).then(() => this._client.change(n.id, what)) };
    this._inflight.set(n.id, mine);
    const latest = () => this._inflight.get(n.id) === mine;
    try {
      const fresh = await this._client.settling(() => mine.turn,
        () => latest() && this._client.optimistic({ change: "restored", id: n.id, notification: before }, this._client.countsMoved(-du, -ds)));
      if (latest()) {
        this._inflight.delete(n.id);
        if (fresh && !gone && this.items.has(n.id)) this._updated({ change: what, id: n.id, notification: fresh });
      }
    } catch (error) {
      if (latest()) this._inflight.delete(n.id);
      this._live.textContent = this.t("actionFailed");
      emit(this, "clarion-error", { error });
    }
  }

  async markAllRead() {
    const counts = this._client.counts;
    this._client.optimistic({ change: "read_all" }, { unread: 0, unseen: 0 });
    try {
      await this._client.settling(() => this._client.readAll(), () => counts && this._client.optimistic(null, counts));
    } catch (error) {
      this._live.textContent = this.t("actionFailed");
      emit(this, "clarion-error", { error });
    }
  }

  async recordAction(n, action, isLink = false) {
    try {
      const fresh = await this._client.clickAction(n.id, action.id, { keepalive: isLink });
      if (fresh) this._updated({ change: "read", id: n.id, notification: fresh });
      emit(this, "clarion-action", { notification: n, action });
    } catch (error) {
      this._live.textContent = this.t("actionFailed");
      emit(this, "clarion-error", { error });
    }
  }

  open(n) {
    if (n.status === "unread") this.change(n, "read");
    emit(this, "clarion-open", { notification: n });
  }

  // --- rendering

  _render() {
    if (!this._client || !this._list) return;
    this._heading.textContent = this.t("notifications");
    this._markAll.textContent = this.t("markAllRead");
    this._markAll.disabled = !(this._client.counts?.unread > 0);
    this._renderTabs();
    this._renderBanner();
    const tab = this.tabs.find((t) => t.id === this.current);
    const st = this.tabState.get(this.current);
    const visible = st.ids.map((id) => this.items.get(id)).filter((n) => n && tab.match(n));
    const rows = this._groups(visible).map((group) => this._row(group));
    const active = this.shadowRoot.activeElement;
    const focusKey = active?.closest?.("[data-key]")?.dataset.key;
    const focusRole = active?.dataset?.role;
    this._list.replaceChildren(...rows);
    if (focusKey) {
      const row = this._list.querySelector(`[data-key="${CSS_ESCAPE(focusKey)}"]`);
      const target = (focusRole && row?.querySelector(`[data-role="${focusRole}"]`)) || row;
      (target || this._list.querySelector(".item") || this._tablist.querySelector("[aria-selected=true]"))?.focus();
    }
    this._rove();
    let state = "";
    if (st.error && !visible.length) state = "error";
    else if (!st.loaded || (st.loading && !visible.length)) state = "loading";
    else if (!visible.length) state = "empty";
    this._state.hidden = !state && !st.loading;
    this._state.replaceChildren();
    this._state.removeAttribute("role");
    if (state === "error") {
      this._state.setAttribute("role", "alert");
      this._state.append(h("p", null, this.t("error")), h("button", { type: "button", part: "retry", onclick: () => this._load(this.current, st.loaded) }, this.t("retry")));
    } else if (state === "loading" || st.loading) {
      this._state.setAttribute("role", "status");
      this._state.append(this.t("loading"));
    } else if (state === "empty") {
      this._state.append(this.t(this.current === "archived" ? "emptyArchived" : "empty"));
    }
  }

  _renderTabs() {
    if (!this._tablist) return;
    const unread = this._client.counts?.unread;
    const tabs = this.tabs.map((tab) => {
      const label = tab.text || this.t(tab.label) + (tab.id === "unread" && unread ? ` (${unread})` : "");
      const selected = tab.id === this.current;
      return h("button", { type: "button", role: "tab", part: selected ? "tab tab-selected" : "tab", id: `tab-${tab.id}`,
        "aria-selected": String(selected), "aria-controls": "panel", tabindex: selected ? "0" : "-1", "data-tab": tab.id,
        onclick: () => this.select(tab.id) }, label);
    });
    const hadFocus = this.shadowRoot.activeElement?.dataset?.tab;
    this._tablist.replaceChildren(...tabs);
    this._scroll.setAttribute("aria-labelledby", `tab-${this.current}`);
    if (hadFocus) this._tablist.querySelector(`[data-tab="${CSS_ESCAPE(hadFocus)}"]`)?.focus();
  }

  _renderBanner() {
    if (!this._banner) return;
    const status = this._client.status;
    const down = status === "offline";
    this._banner.hidden = !down;
    this._banner.textContent = down ? this.t("offline") : "";
  }

  select(tabId) {
    this.current = tabId;
    this._render();
    this.show();
    this._scroll.scrollTop = 0;
  }

  /** Consecutive-or-not notifications with one group_key become one thread (the newest
   * first); "Ana and 3 others" names the distinct actors (data.actor) when known. */
  _groups(list) {
    const groups = [];
    const byKey = new Map();
    for (const n of list) {
      const key = n.group_key;
      if (key && byKey.has(key)) byKey.get(key).push(n);
      else {
        const g = [n];
        groups.push(g);
        if (key) byKey.set(key, g);
      }
    }
    return groups;
  }

  _row(group) {
    const [n, ...rest] = group;
    const key = group.length > 1 ? `g:${n.group_key}` : `n:${n.id}`;
    const unread = group.some((x) => x.status === "unread");
    const li = h("li", { class: unread ? "item unread" : "item", part: unread ? "item item-unread" : "item", "data-key": key,
      "data-id": n.id, tabindex: "-1", "aria-label": null, onkeydown: (e) => this._rowKeys(e, n, key) },
      h("span", { class: "dot", "aria-hidden": "true" }), notificationBody(n, this));
    if (unread) li.prepend(h("span", { class: "sr" }, this.t("unread") + ": "));
    if (rest.length) {
      const open = this.expanded.has(key);
      const body = li.querySelector(".body");
      const actors = [...new Set(group.map((x) => x.data?.actor || x.data?.actor_name).filter(Boolean).map(String))];
      const summary = actors.length > 1
        ? this.t("others", { name: actors[0], n: actors.length - 1 })
        : this.t("more", { n: rest.length });
      body.append(h("button", { type: "button", class: "thread", part: "thread", "aria-expanded": String(open), "data-role": "thread",
        onclick: () => { open ? this.expanded.delete(key) : this.expanded.add(key); this._render(); } },
        summary + " · " + this.t(open ? "hideThread" : "showThread")));
      if (open) body.append(h("ul", { class: "nested", role: "list" }, rest.map((x) => h("li", { class: x.status === "unread" ? "item unread" : "item", part: "item" },
        h("span", { class: "dot", "aria-hidden": "true" }), notificationBody(x, this)))));
    }
    return li;
  }

  meta(n) {
    const unread = n.status === "unread";
    const btn = (role, label, fn) => h("button", { type: "button", "data-role": role, part: `control control-${role}`, onclick: (e) => { e.stopPropagation(); fn(); } }, label);
    return h("div", { class: "meta", part: "meta" },
      h("time", { datetime: n.created_at, title: new Date(n.created_at).toLocaleString(this._client.lang(this)), part: "time" }, this._client.ago(n.created_at, this)),
      btn("read", this.t(unread ? "markRead" : "markUnread"), () => this.change(n, unread ? "read" : "unread")),
      btn("archive", this.t(n.archived_at ? "unarchive" : "archive"), () => this.change(n, n.archived_at ? "unarchive" : "archive")),
      btn("delete", this.t("remove"), () => this.change(n, "delete")));
  }

  // --- keyboard

  _rove() {
    const rows = [...this._list.children];
    if (!rows.length) return;
    if (!rows.some((r) => r.tabIndex === 0)) {
      const focused = rows.find((r) => r.contains(this.shadowRoot.activeElement));
      (focused || rows[0]).tabIndex = 0;
    }
  }

  _listKeys(e) {
    const rows = [...this._list.children];
    const i = rows.findIndex((r) => r.contains(this.shadowRoot.activeElement));
    let j = null;
    if (e.key === "ArrowDown") j = Math.min(rows.length - 1, i + 1);
    else if (e.key === "ArrowUp") j = Math.max(0, i - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = rows.length - 1;
    if (j == null || i < 0) return;
    e.preventDefault();
    rows.forEach((r, k) => (r.tabIndex = k === j ? 0 : -1));
    rows[j].focus();
    if (j >= rows.length - 2) this._loadMore();
  }

  _rowKeys(e, n, key) {
    if (e.target !== e.currentTarget) return;
    if (e.key === "Enter") { e.preventDefault(); this.open(n); }
    else if (e.key === " ") { e.preventDefault(); this.change(n, n.status === "unread" ? "read" : "unread"); }
    else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      if (key.startsWith("g:")) {
        const rtl = getComputedStyle(this).direction === "rtl";
        const openKey = (e.key === "ArrowRight") !== rtl;
        if (openKey) this.expanded.add(key); else this.expanded.delete(key);
        this._render();
      }
    }
  }

  _tabKeys(e) {
    const tabs = [...this._tablist.querySelectorAll("[role=tab]")];
    const i = tabs.findIndex((t) => t.dataset.tab === this.current);
    const rtl = getComputedStyle(this).direction === "rtl";
    let j = null;
    if (e.key === "ArrowRight") j = rtl ? i - 1 : i + 1;
    else if (e.key === "ArrowLeft") j = rtl ? i + 1 : i - 1;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = tabs.length - 1;
    else if (e.key === "ArrowDown") { e.preventDefault(); this._list.querySelector("[tabindex='0']")?.focus(); return; }
    if (j == null) return;
    e.preventDefault();
    j = (j + tabs.length) % tabs.length;
    this.select(tabs[j].dataset.tab);
    this._tablist.querySelector(`[data-tab="${CSS_ESCAPE(tabs[j].dataset.tab)}"]`)?.focus();
  }
}

const CSS_ESCAPE = (s) => (globalThis.CSS?.escape ? globalThis.CSS.escape(s) : String(s).replace(/["\\]/g, "\\$&"));

// ---------------------------------------------------------------------------- <clarion-bell>

export class ClarionBell extends Base {
  setup(client) {
    const root = this.shadowRoot;
    this._badge = h("span", { class: "badge", part: "badge", "aria-hidden": "true", hidden: true });
    this._button = h("button", { type: "button", class: "bell", part: "button", "aria-expanded": "false",
      "aria-haspopup": "dialog", onclick: () => this.toggle(),
      onpointerenter: () => this._prefetch(true), onfocus: () => this._prefetch(true) }, bellIcon(), this._badge);
    const external = this.getAttribute("for");
    if (!external) {
      this._inbox = h("clarion-inbox", { mode: "popover", part: "inbox", exportparts: "center,header,tabs,tab,list,item,title,message,time,actions,action,badge" });
      if (this.hasAttribute("type-tabs")) this._inbox.setAttribute("type-tabs", this.getAttribute("type-tabs"));
      this._inbox.client = this.client || null;
      this._panel = h("div", { class: "popover", part: "panel", role: "dialog", "aria-modal": "false", hidden: true,
        onkeydown: (e) => { if (e.key === "Escape") { e.stopPropagation(); this.close(true); } } }, this._inbox);
    }
    this._live = h("div", { class: "sr", "aria-live": "polite", role: "status" });
    root.replaceChildren(h("div", { class: "wrap" }, this._button, this._panel || null, this._live));
    this._on("count", () => this._renderCount());
    this._on("created", (e) => {
      const { notification: n, replay } = e.detail;
      if (n && !replay) this._live.textContent = this.t("newNotification", { title: n.title });
    });
    this._renderCount();
    // The first page is fetched ahead when the page is idle (prefetch="idle", the default),
    // on hover or focus ("hover"), or only on opening ("none").
    const prefetch = this.getAttribute("prefetch") || "idle";
    if (prefetch === "idle") (globalThis.requestIdleCallback || ((f) => setTimeout(f, 300)))(() => this._prefetch(), { timeout: 2000 });
    this._outside = (e) => { if (this.open && !e.composedPath().includes(this)) this.close(false); };
    document.addEventListener("click", this._outside, true);
    const detach = this._detach;
    this._detach = () => { document.removeEventListener("click", this._outside, true); detach(); };
  }

  get open() {
    return this._button?.getAttribute("aria-expanded") === "true";
  }

  get inbox() {
    const id = this.getAttribute("for");
    return id ? document.getElementById(id) : this._inbox;
  }

  _prefetch(hover = false) {
    if (hover && this.getAttribute("prefetch") === "none") return;
    this.inbox?.show?.();
  }

  toggle() {
    this.open ? this.close(true) : this.show();
  }

  show() {
    const inbox = this.inbox;
    this._button.setAttribute("aria-expanded", "true");
    if (this._panel) {
      this._panel.hidden = false;
      this._panel.setAttribute("aria-label", this.t("notifications"));
      // Open towards the side with room: a bell near the page's start edge flips it.
      this._panel.classList.remove("flip");
      const box = this._panel.getBoundingClientRect();
      if (box.left < 0 || box.right > innerWidth) this._panel.classList.add("flip");
    } else if (inbox) {
      inbox.hidden = false;
    }
    inbox?.show?.();
    if (this.getAttribute("count") === "unseen") inbox?.markSeen?.();
    requestAnimationFrame(() => inbox?.focusFirst?.());
    emit(this, "clarion-toggle", { open: true });
  }

  close(refocus) {
    this._button.setAttribute("aria-expanded", "false");
    if (this._panel) this._panel.hidden = true;
    else if (this.inbox && this.hasAttribute("for")) this.inbox.hidden = true;
    if (refocus) this._button.focus();
    emit(this, "clarion-toggle", { open: false });
  }

  _renderCount() {
    const counts = this._client.counts;
    const which = this.getAttribute("count") === "unseen" ? "unseen" : "unread";
    const n = counts ? counts[which] : 0;
    this._badge.hidden = !n;
    this._badge.textContent = n > 99 ? "99+" : String(n);
    this.dataset.count = counts ? String(n) : "";
    this._button.setAttribute("aria-label", this.t("bellLabel", { n }));
    if (counts) emit(this, "clarion-count", { ...counts });
  }
}

// ---------------------------------------------------------------------------- <clarion-toast>

export class ClarionToast extends Base {
  setup(client) {
    this._stack = h("div", { class: "toasts", part: "toasts" });
    this.shadowRoot.replaceChildren(this._stack);
    this._on("created", (e) => {
      const { notification: n, replay } = e.detail;
      if (!n || replay) return;
      const levels = (this.getAttribute("priorities") || "high,urgent").split(",");
      if (levels.includes(n.priority)) this.show(n);
    });
  }

  show(n) {
    const urgent = n.priority === "urgent";
    const toast = h("div", { class: urgent ? "toast urgent" : "toast", part: "toast", role: urgent ? "alert" : "status" },
      notificationBody(n, { _client: this._client, recordAction: (x, a, link) => this._client.clickAction(x.id, a.id, { keepalive: link }).then(() => emit(this, "clarion-action", { notification: x, action: a }), () => {}) }),
      h("button", { type: "button", part: "dismiss", "aria-label": this.t("dismiss"), onclick: () => toast.remove() }, "×"));
    this._stack.append(toast);
    const ms = Number(this.getAttribute("duration") || 6000);
    if (!urgent && ms > 0) setTimeout(() => toast.remove(), ms);
    emit(this, "clarion-toast", { notification: n });
  }
}

// ---------------------------------------------------------------------------- <clarion-preferences>

export class ClarionPreferences extends Base {
  async setup(client) {
    const list = (v) => (v || "").split(",").map((s) => s.trim()).filter(Boolean);
    const channels = list(this.getAttribute("channels") || "email,push,sms");
    const path = `/notifications/preferences/${encodeURIComponent(client.userId)}`;
    const status = h("div", { role: "status", class: "sub" });
    const box = h("fieldset", { class: "prefs", part: "preferences" }, h("legend", null, this.t("preferences")));
    this.shadowRoot.replaceChildren(box, status);
    let prefs, types;
    try {
      prefs = await client.api(path);
      types = list(this.getAttribute("types"));
      if (!types.length) {
        const page = await client.list({ limit: 100 }).catch(() => ({ items: [] }));
        types = [...new Set([...Object.keys(prefs.types || {}), ...page.items.map((n) => n.type).filter(Boolean)])].sort();
      }
    } catch (error) {
      status.textContent = this.t("error");
      return;
    }
    // Each control is registered under the document field it edits; the server's 422
    // details name those fields, and their messages are shown next to the control.
    const fields = new Map();
    let uid = 0;
    const field = (name, control, label) => {
      const err = h("span", { class: "err", part: "field-error", id: `e${++uid}`, role: "alert" });
      control.setAttribute("aria-describedby", err.id);
      fields.set(name, { control, err });
      return h("div", { class: "f" }, h("label", { part: "option" }, label, control), err);
    };
    const checks = new Map();
    for (const ch of channels) {
      const input = h("input", { type: "checkbox", part: "checkbox", checked: prefs.channels?.[ch] !== false, onchange: () => save() });
      checks.set(ch, input);
      box.append(field(`channels.${ch}`, input, this.t(`channel_${ch}`)));
    }
    const selects = [];
    if (types.length) {
      const tbox = h("fieldset", { part: "types" }, h("legend", null, this.t("byType")));
      for (const type of types) {
        const row = h("div", { class: "type", part: "type", role: "group", "aria-label": type }, h("span", { class: "tname" }, type));
        for (const ch of channels) {
          const v = prefs.types?.[type]?.[ch];
          const sel = h("select", { part: "select", "aria-label": `${type}: ${this.t(`channel_${ch}`)}`, onchange: () => save() },
            ["inherit", "on", "off"].map((o) => h("option", { value: o, selected: o === (v === true ? "on" : v === false ? "off" : "inherit") }, this.t(`pref_${o}`))));
          selects.push({ type, ch, sel });
          row.append(field(`types.${type}.${ch}`, sel, this.t(`channel_${ch}`)));
        }
        tbox.append(row);
      }
      box.append(tbox);
    }
    const q = prefs.quiet_hours;
    const quiet = h("input", { type: "checkbox", part: "checkbox", checked: !!q, onchange: () => { sync(); save(); } });
    const start = h("input", { type: "time", part: "input", value: q?.start || "22:00", onchange: () => save() });
    const end = h("input", { type: "time", part: "input", value: q?.end || "07:00", onchange: () => save() });
    const tz = h("input", { type: "text", part: "input", value: q?.timezone || prefs.timezone || "UTC", autocomplete: "off", onchange: () => save() });
    const sync = () => { for (const el of [start, end, tz]) el.disabled = !quiet.checked; };
    sync();
    box.append(h("fieldset", { part: "quiet-hours" }, h("legend", null, this.t("quietHours")),
      field("quiet_hours", quiet, this.t("quietHoursOn")), field("quiet_hours.start", start, this.t("quietStart")),
      field("quiet_hours.end", end, this.t("quietEnd")), field("quiet_hours.timezone", tz, this.t("timezone"))));
    // One PUT at a time, each built from the controls when it leaves: the last one wins.
    let queue = Promise.resolve();
    const save = () => (queue = queue.then(put));
    const put = async () => {
      const doc = { ...prefs, channels: { ...prefs.channels }, types: {} };
      for (const [ch, input] of checks) {
        if (input.checked && prefs.channels?.[ch] === undefined) delete doc.channels[ch];
        else doc.channels[ch] = input.checked;
      }
      for (const [type, per] of Object.entries(prefs.types || {})) if (!types.includes(type)) doc.types[type] = per;
      for (const { type, ch, sel } of selects) {
        const per = doc.types[type] || { ...(prefs.types?.[type] || {}) };
        if (sel.value === "inherit") delete per[ch]; else per[ch] = sel.value === "on";
        if (Object.keys(per).length) doc.types[type] = per; else delete doc.types[type];
      }
      doc.quiet_hours = quiet.checked ? { ...(q || {}), start: start.value, end: end.value, timezone: tz.value.trim() } : null;
      for (const { control, err } of fields.values()) { err.textContent = ""; control.removeAttribute("aria-invalid"); }
      try {
        prefs = await client.api(path, { method: "PUT", body: doc });
        status.textContent = this.t("saved");
        emit(this, "clarion-preferences", { preferences: prefs });
      } catch (error) {
        status.textContent = this.t("actionFailed");
        for (const d of error.details || []) {
          const f = fields.get(d.field) || fields.get(String(d.field).split(".").slice(0, 2).join("."));
          if (!f) continue;
          f.err.textContent = d.problem;
          f.control.setAttribute("aria-invalid", "true");
        }
      }
    };
  }
}

// Defined once the page's own module (the one calling configure) has run: its count
// request then leaves before the elements upgrade and build their shadow trees.
queueMicrotask(() => {
  for (const [name, cls] of [["clarion-inbox", ClarionInbox], ["clarion-bell", ClarionBell], ["clarion-toast", ClarionToast], ["clarion-preferences", ClarionPreferences]]) {
    if (!customElements.get(name)) customElements.define(name, cls);
  }
});

export { STRINGS };
