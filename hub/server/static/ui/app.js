/* sdhub's page: plain JavaScript over the server's JSON API (/api/sdhub/v1). No build step, nothing fetched
   from elsewhere. Every value from the catalogue or a source is put in with textContent, never as HTML. */
"use strict";

const API = "/api/sdhub/v1";
const FAMILIES = ["sd1", "sd2", "sdxl", "sd3", "flux", "flux2", "cascade", "pony", "illustrious", "hunyuan", "wan",
  "unknown"];
const KINDS = ["checkpoint", "diffusion_model", "lora", "embedding", "vae", "text_encoder", "controlnet", "upscaler",
  "hypernetwork", "unknown"];
const SEARCH_TYPES = ["checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler"];
const NSFW_NAMES = {1: "PG", 2: "PG-13", 4: "R", 8: "X", 16: "XXX"};
const POLL_MS = 400;
const KIND_MARK = {checkpoint: "CKPT", diffusion_model: "UNET", lora: "LoRA", embedding: "TI", vae: "VAE",
  text_encoder: "TE", controlnet: "CN", upscaler: "UP", hypernetwork: "HN"};
const kindMark = kind => KIND_MARK[kind] || "?";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/* -- talking to the server ------------------------------------------------------------------ */
class ApiError extends Error {}

async function api(path, {method = "GET", json, body, headers = {}} = {}) {
  const opts = {method, headers: {"Accept": "application/json", "X-Sdhub-UI": "1", ...headers}};
  if (json !== undefined) { opts.body = JSON.stringify(json); opts.headers["Content-Type"] = "application/json"; }
  else if (body !== undefined) { opts.body = body; opts.headers["Content-Type"] = "application/octet-stream"; }
  let resp;
  try { resp = await fetch(API + path, opts); }
  catch (e) { throw new ApiError("the sdhub server does not answer (is `sdhub ui` still running?)"); }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok && !(data && Array.isArray(data.results))) {
    throw new ApiError((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
  }
  return data;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) p.append(k, v);
  return p.toString();
}

/* -- formatting ----------------------------------------------------------------------------- */
function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
}
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "?";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
function oneLine(text) { return String(text || "").replace(/\s+/g, " ").trim(); }

function toast(text) {
  const t = $("#toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 1800);
}
async function copy(text, what) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      const area = el("textarea", {"aria-hidden": "true", style: "position:fixed;left:-999px"}, text);
      document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
    }
    toast(`copied ${what}`);
  } catch (e) { toast(`could not copy ${what}`); }
  document.body.dataset.lastCopied = text;
}
function showError(where, message) {
  const node = typeof where === "string" ? $(where) : where;
  node.textContent = oneLine(message);
  node.hidden = !message;
  if (message) node.classList.add("error-line"); else node.classList.remove("error-line");
}

/* -- preferences ---------------------------------------------------------------------------- */
const prefs = {
  get nsfw() { return Number(localStorage.getItem("sdhub.nsfw") || prefs.defaultNsfw || 1); },
  set nsfw(v) { localStorage.setItem("sdhub.nsfw", String(v)); },
  get theme() { return localStorage.getItem("sdhub.theme") || "auto"; },
  set theme(v) { localStorage.setItem("sdhub.theme", v); },
  defaultNsfw: 1,
};
function applyTheme() {
  const t = prefs.theme;
  if (t === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.dataset.theme = t;
  $("#theme").value = t;
}

/* -- views and routing ---------------------------------------------------------------------- */
function route() {
  const hash = location.hash || "#/catalogue";
  const [, view, arg] = hash.match(/^#\/([a-z]+)\/?(.*)$/) || [null, "catalogue", ""];
  const known = ["catalogue", "search", "installs", "resources", "file"];
  const name = known.includes(view) ? view : "catalogue";
  for (const section of $$("section[data-view]")) section.hidden = section.dataset.view !== name;
  for (const link of $$("[data-view-link]")) {
    if (link.dataset.viewLink === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.currentView = name;
  if (name === "catalogue" && !catalogue.loaded) catalogue.load();
  if (name === "file") filePage.show(decodeURIComponent(arg));
  if (name === "installs") installs.renderAll();
}

/* -- catalogue ------------------------------------------------------------------------------ */
const catalogue = {
  offset: 0,
  loaded: false,
  files: [],
  seq: 0,
  hasNext: false,

  size() { return Number($("#page-size").value); },
  filters() {
    return {q: $("#filter-text").value.trim(), family: $("#filter-family").value, kind: $("#filter-kind").value,
            source: $("#filter-source").value};
  },

  async load() {
    const seq = ++this.seq;
    this.loaded = true;
    const size = this.size();
    const status = $("#catalogue-status");
    status.textContent = "Loading…";
    let data;
    try {
      data = await api(`/files?${qs({...this.filters(), limit: size + 1, offset: this.offset})}`);
    } catch (e) {
      if (seq !== this.seq) return;
      status.textContent = "";
      showError("#global-error", e.message);
      return;
    }
    if (seq !== this.seq) return;  // a newer filter already asked
    showError("#global-error", "");
    const files = (data.files || []).map(f => ({...f, sha256: f.sha256 || (f.hashes || {}).sha256}));
    this.hasNext = files.length > size;
    this.files = files.slice(0, size);
    this.render();
    const first = this.files.length ? this.offset + 1 : 0;
    status.textContent = this.files.length ? `Files ${first}–${this.offset + this.files.length}`
      : (this.offset ? "No more files." : "No files match. `sdhub scan DIR` or an install adds some.");
    $("#page-info").textContent = `Page ${Math.floor(this.offset / size) + 1}`;
    $("#prev-page").disabled = this.offset === 0;
    $("#next-page").disabled = !this.hasNext;
    this.addOptions(files);
    this.details(seq);
  },

  addOptions(files) {
    for (const [id, key] of [["#filter-family", "family"], ["#filter-kind", "kind"]]) {
      const select = $(id);
      const have = new Set($$("option", select).map(o => o.value));
      for (const f of files) {
        const v = f[key];
        if (v && !have.has(v)) { select.append(el("option", {value: v}, v)); have.add(v); }
      }
    }
  },

  render() {
    const list = $("#cards");
    list.replaceChildren(...this.files.map(f => card(f)));
  },

  async details(seq) {
    const shas = this.files.map(f => f.sha256).filter(Boolean);
    if (!shas.length) return;
    let data;
    try { data = await api(`/ui/cards?${qs({sha256: shas.join(",")})}`); }
    catch (e) { showError("#global-error", e.message); return; }
    if (seq !== this.seq) return;
    for (const [sha, d] of Object.entries(data.cards || {})) {
      const node = $(`#cards li[data-sha256="${sha}"]`);
      if (node) fillCard(node, d);
    }
    $("#cards").dataset.detailsLoaded = "1";
  },

  async checkUpdates() {
    const shas = this.files.filter(f => (f.sources || []).length).map(f => f.sha256);
    const status = $("#catalogue-status");
    if (!shas.length) { status.textContent = "No file on this page has a source to ask."; return; }
    status.textContent = `Asking the sources about ${shas.length} file(s)…`;
    let data;
    try { data = await api("/ui/updates", {method: "POST", json: {sha256: shas}}); }
    catch (e) { status.textContent = ""; showError("#global-error", e.message); return; }
    let n = 0;
    for (const [sha, u] of Object.entries(data.updates || {})) {
      const node = $(`#cards li[data-sha256="${sha}"]`);
      if (!node) continue;
      const badges = $(".badges", node);
      $$(".badge.update", badges).forEach(b => b.remove());
      if (u.update) {
        n++;
        badges.append(el("button", {type: "button", class: "badge info update", title: `Install ${u.latest}`,
          onclick: () => installs.start(u.latest)}, `update available: ${u.version_name || u.latest}`));
      } else if (u.errors && u.errors.length) {
        badges.append(el("span", {class: "badge warn update", title: u.errors.join("; ")}, "update check failed"));
      }
    }
    status.textContent = n ? `${n} update(s) available on this page.` : "Everything on this page is up to date.";
  },
};

function sourcesLine(file) {
  const parts = [];
  for (const s of file.sources || []) {
    const label = `${s.source}${s.version_name ? ` · ${s.version_name}` : ""}`;
    parts.push(s.page_url ? el("a", {href: s.page_url, target: "_blank", rel: "noopener noreferrer"}, label)
      : el("span", {}, label));
  }
  if (!parts.length) parts.push(el("span", {}, "local file"));
  const out = [];
  parts.forEach((p, i) => { if (i) out.push(", "); out.push(p); });
  return out;
}

function card(file) {
  const node = $("#tpl-card").content.firstElementChild.cloneNode(true);
  node.dataset.sha256 = file.sha256 || "";
  node.dataset.family = file.family || "";
  node.dataset.kind = file.kind || "";
  const link = $(".file-link", node);
  link.textContent = file.name;
  link.href = `#/file/${file.sha256}`;
  $(".family", node).textContent = file.family || "unknown family";
  $(".kind", node).textContent = (file.kind || "unknown kind").replace("_", " ");
  $(".variant", node).textContent = file.variant ? ` (${file.variant})` : "";
  $(".size", node).textContent = bytes(file.size);
  $(".sources", node).replaceChildren(...sourcesLine(file));
  const box = $(".preview-box", node);
  box.append(el("span", {class: "placeholder", "aria-hidden": "true"}, kindMark(file.kind)));
  const badges = $(".badges", node);
  if (file.family_mismatch) badges.append(el("span", {class: "badge bad mismatch-family", title: file.family_mismatch}, "family mismatch"));
  if (file.kind_mismatch) badges.append(el("span", {class: "badge bad mismatch-kind", title: file.kind_mismatch}, "kind mismatch"));
  if (file.on_disk === false) badges.append(el("span", {class: "badge bad disk-missing", title: file.path}, "missing on disk"));
  const words = [];
  for (const s of file.sources || []) for (const w of s.trained_words || []) if (!words.includes(w)) words.push(w);
  fillWords($(".words", node), words);
  $(".evidence", node).hidden = true;
  return node;
}

function fillWords(box, words) {
  box.replaceChildren(...words.map(w => el("button", {type: "button", class: "word", title: "Copy this trigger word",
    onclick: () => copy(w, `“${w}”`)}, w)));
}

function previewButton(src, level) {
  const blurred = level > prefs.nsfw;
  const btn = el("button", {type: "button", class: `preview-toggle${blurred ? " blurred" : ""}`,
    "aria-pressed": blurred ? "false" : "true", dataset: {level: String(level)},
    "aria-label": blurred ? `Preview rated ${NSFW_NAMES[level] || level}, hidden: show it` : "Preview image"},
    el("img", {src, alt: "", loading: "lazy"}),
    el("span", {class: "veil"}, `${NSFW_NAMES[level] || level}: click to show`));
  btn.addEventListener("click", () => {
    const now = !btn.classList.contains("blurred");
    btn.classList.toggle("blurred", now);
    btn.setAttribute("aria-pressed", now ? "false" : "true");
  });
  return btn;
}

function fillCard(node, d) {
  if (d.preview) {
    const box = $(".preview-box", node);
    box.replaceChildren(previewButton(d.preview, d.preview_nsfw_level || 1));
  }
  const badges = $(".badges", node);
  $$(".badge.fits, .badge.disk", badges).forEach(b => b.remove());
  if (d.disk === "missing") {
    if (!$(".disk-missing", badges)) badges.append(el("span", {class: "badge bad disk disk-missing", title: d.disk_detail}, "missing on disk"));
  } else if (d.disk === "changed") {
    badges.append(el("span", {class: "badge bad disk disk-changed", title: d.disk_detail}, "changed on disk"));
  }
  if (d.fits) {
    const names = d.fits.files.map(f => f.name);
    const more = d.fits.count - names.length;
    const what = d.fits.role === "bases" ? "checkpoint" : "add-on";
    const text = d.fits.count ? `fits ${d.fits.count} ${what}${d.fits.count === 1 ? "" : "s"}: ${names.join(", ")}${more > 0 ? ` +${more}` : ""}`
      : `fits none of your ${what}s`;
    badges.append(el("span", {class: `badge fits ${d.fits.count ? "ok" : "warn"}`, dataset: {count: String(d.fits.count)}}, text));
  }
  if (d.trigger_words && d.trigger_words.length) fillWords($(".words", node), d.trigger_words);
  const ev = $(".evidence", node);
  const list = $("ul", ev);
  list.replaceChildren(...(d.evidence || []).map(e => el("li", {}, `${e.what} = ${JSON.stringify(e.value)}: ${e.because}`)));
  if (d.identify_error) list.append(el("li", {class: "error-line"}, d.identify_error));
  ev.hidden = !list.children.length;
}

/* -- search --------------------------------------------------------------------------------- */
const search = {
  cursor: null,
  async run(more = false) {
    const q = $("#search-q").value.trim();
    const status = $("#search-status");
    if (!q) { status.textContent = "Type what to look for."; $("#search-q").focus(); return; }
    const source = $("#search-source").value;
    const params = {q, source, type: $("#search-type").value, nsfw: $("#search-nsfw").checked ? "1" : "", limit: 20};
    if (more && this.cursor) params.cursor = this.cursor;
    status.textContent = `Searching ${source || "all sources"}…`;
    $("#search-errors").replaceChildren();
    let data;
    try { data = await api(`/ui/search?${qs(params)}`); }
    catch (e) { status.textContent = ""; $("#search-errors").replaceChildren(el("li", {class: "error-line"}, oneLine(e.message))); return; }
    const list = $("#search-results");
    if (!more) list.replaceChildren();
    for (const r of data.results || []) list.append(result(r));
    const errors = Object.entries(data.errors || {});
    $("#search-errors").replaceChildren(...errors.map(([name, msg]) => el("li", {class: "error-line", dataset: {source: name}}, `${name}: ${oneLine(msg)}`)));
    const cursors = data.next_cursors || {};
    this.cursor = source && cursors[source] ? cursors[source] : null;
    $("#search-more").hidden = !this.cursor;
    const n = list.children.length;
    status.textContent = `${n} result${n === 1 ? "" : "s"}${errors.length ? `; ${errors.length} source(s) failed` : ""}.`;
  },
};

function result(r) {
  const marks = [];
  if (r.early_access_until) marks.push(el("span", {class: "badge warn early-access", title: "Early access: download needs payment or waiting"}, `early access until ${r.early_access_until.slice(0, 10)}`));
  if (r.paid) marks.push(el("span", {class: "badge warn paid"}, "paid"));
  if (r.nsfw) marks.push(el("span", {class: "badge"}, "NSFW"));
  if (r.downloadable === false) marks.push(el("span", {class: "badge bad"}, "not downloadable"));
  const thumb = el("div", {class: "thumb"});
  if (r.preview_url) thumb.append(previewButton(r.preview_url, r.preview_nsfw_level || (r.nsfw ? 8 : 1)));
  else thumb.append(el("span", {class: "placeholder", "aria-hidden": "true"}, kindMark(r.kind)));
  const button = el("button", {type: "button", class: "primary install-btn", disabled: r.downloadable === false,
    onclick: () => installs.start(r.ref)}, "Install");
  const node = el("li", {class: "result", dataset: {ref: r.ref, source: r.source}},
    thumb,
    el("div", {class: "body"},
      el("h3", {}, r.page_url ? el("a", {href: r.page_url, target: "_blank", rel: "noopener noreferrer"}, r.name) : r.name),
      el("p", {class: "meta"}, `${r.source} · ${r.kind || "?"}${r.version ? ` · ${r.version}` : ""}${r.size ? ` · ${bytes(r.size)}` : ""}`),
      el("p", {class: "meta claimed"}, `claims base model: ${r.base_model || "?"}${r.claimed_family ? ` (${r.claimed_family})` : ""}`),
      r.creator ? el("p", {class: "meta"}, `by ${r.creator}`) : null,
      el("div", {class: "badges"}, marks),
      el("p", {class: "meta ref"}, el("code", {}, r.ref)),
      el("div", {class: "job-actions"}, button),
      el("div", {class: "job-inline", dataset: {ref: r.ref}})));
  return node;
}

/* -- installs ------------------------------------------------------------------------------- */
const installs = {
  jobs: new Map(),
  timer: null,

  async start(ref) {
    ref = oneLine(ref);
    if (!ref) return;
    let job;
    try { job = await api("/installs", {method: "POST", json: {ref}}); }
    catch (e) {
      toast(oneLine(e.message));
      this.showInlineError(ref, e.message);
      return;
    }
    this.update(job);
    this.poll();
  },

  showInlineError(ref, message) {
    for (const box of $$(`.job-inline[data-ref="${CSS.escape(ref)}"]`)) {
      box.replaceChildren(el("p", {class: "error-line", role: "alert"}, oneLine(message)));
    }
  },

  async cancel(id) {
    try { this.update(await api(`/installs/${id}`, {method: "DELETE"})); }
    catch (e) { toast(oneLine(e.message)); }
  },

  update(job) {
    this.jobs.set(job.id, job);
    const running = [...this.jobs.values()].filter(j => !["done", "failed", "cancelled"].includes(j.state)).length;
    $("#installs-count").textContent = running ? String(running) : "";
    const node = $(`#jobs li[data-job-id="${job.id}"]`);
    if (node) morph(node, jobNode(job)); else $("#jobs").prepend(jobNode(job));
    const boxes = [...$$(`.job-inline[data-ref="${CSS.escape(job.ref)}"]`),
                   ...$$(`tr[data-install-ref="${CSS.escape(job.ref)}"] .row-job`)];
    for (const box of boxes) {
      const body = box.firstElementChild;
      if (body && body.classList.contains("job-body") && body.dataset.jobId === String(job.id)) morph(body, jobBody(job, true));
      else box.replaceChildren(jobBody(job, true));
    }
    if (job.state === "done" && !job._counted) { job._counted = true; catalogue.loaded = false; }
  },

  renderAll() { for (const j of this.jobs.values()) this.update(j); },

  poll() {
    if (this.timer) return;
    const tick = async () => {
      const open = [...this.jobs.values()].filter(j => !["done", "failed", "cancelled"].includes(j.state));
      if (!open.length) { this.timer = null; return; }
      for (const j of open) {
        try { this.update(await api(`/installs/${j.id}`)); } catch (e) { /* the next tick tries again */ }
      }
      this.timer = setTimeout(tick, POLL_MS);
    };
    this.timer = setTimeout(tick, POLL_MS);
  },

  async load() {
    try {
      const data = await api("/installs");
      for (const j of data.installs || []) this.update(j);
      this.poll();
    } catch (e) { /* shown when the user acts */ }
  },
};

/* Bring ``a`` to look like ``b`` in place: a progress update must not replace the button that has the focus. */
function morph(a, b) {
  if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName || (a.nodeType === 1 && a.className !== b.className)) {
    a.replaceWith(b);
    return;
  }
  if (a.nodeType !== 1) { if (a.nodeValue !== b.nodeValue) a.nodeValue = b.nodeValue; return; }
  for (const attr of [...a.attributes]) if (!b.hasAttribute(attr.name)) a.removeAttribute(attr.name);
  for (const attr of [...b.attributes]) if (a.getAttribute(attr.name) !== attr.value) a.setAttribute(attr.name, attr.value);
  const ac = [...a.childNodes], bc = [...b.childNodes];
  bc.forEach((child, i) => { if (i < ac.length) morph(ac[i], child); else a.append(child); });
  ac.slice(bc.length).forEach(child => child.remove());
}

function jobBody(job, compact = false) {
  const box = el("div", {class: "job-body", dataset: {state: job.state, jobId: String(job.id)}});
  const pct = job.total ? Math.min(100, Math.round(100 * job.bytes / job.total)) : null;
  if (["downloading", "verifying", "done"].includes(job.state) || job.bytes) {
    box.append(el("progress", {max: job.total || 1, value: job.state === "done" ? (job.total || 1) : job.bytes,
      "aria-label": `downloaded ${pct === null ? "?" : pct}%`}));
  }
  const parts = [`${job.state}`];
  if (job.total || job.bytes) parts.push(`${bytes(job.bytes)} of ${job.total ? bytes(job.total) : "?"}${pct === null ? "" : ` (${pct}%)`}`);
  if (job.state === "downloading") parts.push(`${job.speed ? bytes(job.speed) + "/s" : "… /s"}`, `ETA ${duration(job.eta)}`);
  box.append(el("p", {class: "line progress-line"}, parts.join(" · ")));
  if (job.served_by) box.append(el("p", {class: "line served-by"}, `served by ${job.served_by}`));
  if (job.resumed_from) box.append(el("p", {class: "line resumed"}, `resumed from ${bytes(job.resumed_from)} (${job.resumed_from} bytes)`));
  if (job.error) box.append(el("p", {class: "error-line job-error", role: "alert"}, oneLine(job.error)));
  if (!compact || job.state === "done") {
    box.append(el("ol", {class: "steps"}, job.steps.map(s => el("li", {dataset: {state: s.state, step: s.name}}, s.text))));
  } else if (job.steps.length) {
    const last = job.steps[job.steps.length - 1];
    box.append(el("p", {class: "line step"}, last.text));
  }
  for (const w of job.warnings || []) box.append(el("p", {class: "line warn"}, `warning: ${w}`));
  const actions = el("div", {class: "job-actions"});
  if (!["done", "failed", "cancelled"].includes(job.state)) {
    actions.append(el("button", {type: "button", class: "cancel-btn", onclick: () => installs.cancel(job.id)}, "Cancel"));
  } else if (job.state !== "done") {
    actions.append(el("button", {type: "button", class: "retry-btn", onclick: () => installs.start(job.ref)},
      job.state === "cancelled" ? "Resume" : "Try again"));
  } else if (job.result && job.result.sha256) {
    actions.append(el("a", {href: `#/file/${job.result.sha256}`, class: "open-file"}, `Open ${job.result.name}`));
  }
  box.append(actions);
  return box;
}

function jobNode(job) {
  return el("li", {class: "job", dataset: {jobId: String(job.id), state: job.state, ref: job.ref}},
    el("h3", {}, job.filename || job.ref),
    el("p", {class: "meta"}, el("code", {}, job.ref), job.source ? ` · ${job.source}` : ""),
    jobBody(job));
}

/* -- resources ------------------------------------------------------------------------------ */
const resources = {
  async send(file) {
    const status = $("#resources-status");
    if (!file) return;
    status.textContent = `Reading ${file.name}…`;
    $("#resources-errors").replaceChildren();
    let data;
    try {
      const offline = $("#resources-offline").checked ? "1" : "";
      data = await api(`/resources?${qs({filename: file.name, offline})}`, {method: "POST", body: await file.arrayBuffer()});
    } catch (e) {
      status.textContent = "";
      $("#resources-errors").replaceChildren(el("li", {class: "error-line", role: "alert"}, oneLine(e.message)));
      $("#resources-table").hidden = true;
      return;
    }
    this.render(file.name, data);
  },

  render(name, data) {
    const rows = data.resources || [];
    const count = s => rows.filter(r => r.state === s).length;
    $("#resources-status").textContent = `${name}: ${rows.length} model(s): ${count("have")} you have, ${count("fetchable")} to install, ${count("unknown")} unknown.`;
    $("#resources-caption").textContent = `What ${name} uses`;
    $("#resources-errors").replaceChildren(...(data.errors || []).map(e => el("li", {class: "error-line"}, `${e.file}: ${oneLine(e.error)}`)));
    const body = $("#resources-body");
    body.replaceChildren(...rows.map(r => {
      let where = r.path || r.install_ref || "";
      if (r.state === "unknown") where = r.closest && r.closest.length ? `closest in the catalogue: ${r.closest.join(", ")}` : (r.note || "no source knows it");
      const action = r.state === "fetchable" && r.install_ref
        ? el("button", {type: "button", class: "primary install-btn", onclick: () => installs.start(r.install_ref)}, "Install") : "";
      return el("tr", {dataset: {state: r.state, kind: r.kind, installRef: r.install_ref || ""}},
        el("td", {}, r.kind), el("td", {}, r.name || r.hash || r.ref || "?"),
        el("td", {class: `state-${r.state}`}, r.state),
        el("td", {}, where, r.note && r.state !== "unknown" ? el("div", {class: "meta"}, r.note) : null),
        el("td", {}, action, el("div", {class: "row-job"})));
    }));
    $("#resources-table").hidden = !rows.length;
    const fetchable = rows.filter(r => r.state === "fetchable" && r.install_ref);
    const all = $("#install-all-fetchable");
    all.hidden = fetchable.length < 2;
    all.onclick = () => fetchable.forEach(r => installs.start(r.install_ref));
  },
};

/* -- a model's page ------------------------------------------------------------------------- */
const filePage = {
  async show(sha) {
    const body = $("#file-body");
    const status = $("#file-status");
    body.replaceChildren();
    status.textContent = "Loading…";
    let file, details;
    try {
      [file, details] = await Promise.all([api(`/files/${encodeURIComponent(sha)}`),
        api(`/ui/cards?${qs({sha256: sha})}`).then(d => (d.cards || {})[sha] || {})]);
    } catch (e) { status.textContent = ""; showError(status, e.message); return; }
    status.classList.remove("error-line");
    status.textContent = "";
    $("#h-file").textContent = file.name;
    document.title = `${file.name} · sdhub`;
    const hashes = el("dl", {class: "hashes"});
    for (const [k, v] of Object.entries(file.hashes || {})) {
      if (!v) continue;
      hashes.append(el("dt", {}, k), el("dd", {dataset: {hash: k}}, v),
        el("button", {type: "button", class: "copy-hash", dataset: {hash: k}, onclick: () => copy(v, k)}, `Copy ${k}`));
    }
    const preview = el("div", {class: "preview-box"});
    if (details.preview) preview.append(previewButton(details.preview, details.preview_nsfw_level || 1));
    else preview.append(el("span", {class: "placeholder"}, kindMark(file.kind)));
    const facts = el("ul", {},
      el("li", {}, `family: ${file.family || "unknown"}${file.variant ? ` (${file.variant})` : ""}`),
      el("li", {}, `kind: ${file.kind || "unknown"}`),
      el("li", {}, `size: ${bytes(file.size)} (${file.size} bytes), ${file.format}${file.precision ? `, ${file.precision}` : ""}`),
      el("li", {}, `path: `, el("code", {}, file.path)),
      el("li", {class: details.disk && details.disk !== "ok" ? "error-line" : ""}, `on disk: ${details.disk || (file.on_disk ? "ok" : "missing")}${details.disk_detail ? ` (${details.disk_detail})` : ""}`),
      file.family_mismatch ? el("li", {class: "error-line"}, `family mismatch: ${file.family_mismatch}`) : null,
      file.kind_mismatch ? el("li", {class: "error-line"}, `kind mismatch: ${file.kind_mismatch}`) : null);
    const sources = el("ul", {class: "file-sources"}, (file.sources || []).map(s => el("li", {},
      s.page_url ? el("a", {href: s.page_url, target: "_blank", rel: "noopener noreferrer"}, `${s.source}: ${s.model_name || s.model_id}`) : `${s.source}: ${s.model_name || s.model_id}`,
      s.version_name ? ` · ${s.version_name}` : "", s.base_model ? ` · base model ${s.base_model}` : "",
      s.creator ? ` · by ${s.creator}` : "")));
    if (!file.sources || !file.sources.length) sources.append(el("li", {}, "no source knows it (`sdhub lookup` asks them)"));
    const notes = el("dl", {class: "notes"});
    for (const [k, v] of Object.entries(file.metadata || {})) {
      if (v && v.value !== undefined && v.value !== null && v.value !== "" && k !== "hashes") {
        notes.append(el("dt", {}, k.replace(/_/g, " ")), el("dd", {}, Array.isArray(v.value) ? v.value.join(", ") : String(v.value),
          v.from ? el("span", {class: "meta"}, ` (from ${v.from.split("/").pop()})`) : null));
      }
    }
    const fits = el("ul", {class: "fits-list"});
    if (details.fits) {
      for (const f of details.fits.files) fits.append(el("li", {}, el("a", {href: `#/file/${f.sha256}`}, f.name), ` (${f.kind})`));
      if (details.fits.count > details.fits.files.length) fits.append(el("li", {}, `and ${details.fits.count - details.fits.files.length} more`));
      if (!details.fits.count) fits.append(el("li", {}, "nothing in the catalogue fits it"));
    } else fits.append(el("li", {}, "not an add-on or a checkpoint: nothing to fit"));
    const links = el("ul", {class: "ui-links"}, (details.links || []).map(l => el("li", {}, `${l.layout}: `, el("code", {}, l.path), ` (${l.mode})`)));
    if (!links.children.length) links.append(el("li", {}, "not linked into any UI (`sdhub link DIR --layout comfyui` links it)"));
    const evidence = el("ul", {}, ((file.identification || {}).evidence || details.evidence || []).map(e => el("li", {}, `${e.what} = ${JSON.stringify(e.value)}: ${e.because}`)));
    const words = el("div", {class: "words"});
    fillWords(words, details.trigger_words || []);
    body.append(el("div", {class: "file-grid"},
      el("div", {}, preview, el("div", {class: "panel"}, el("h3", {}, "Trigger words"), words)),
      el("div", {},
        el("div", {class: "panel"}, el("h3", {}, "Facts"), facts),
        el("div", {class: "panel"}, el("h3", {}, "Hashes"), hashes),
        el("div", {class: "panel"}, el("h3", {}, "Sources"), sources),
        el("div", {class: "panel"}, el("h3", {}, details.fits && details.fits.role === "addons" ? "Add-ons that fit it" : "Checkpoints it fits"), fits),
        el("div", {class: "panel"}, el("h3", {}, "Links into UIs"), links),
        el("div", {class: "panel"}, el("h3", {}, "Sidecar notes"), notes.children.length ? notes : el("p", {class: "meta"}, "no sidecar beside it")),
        el("div", {class: "panel"}, el("h3", {}, "Why this family and kind"), evidence))));
    $("#h-file").focus && $("#h-file").setAttribute("tabindex", "-1");
  },
};

/* -- wiring --------------------------------------------------------------------------------- */
function init() {
  for (const f of FAMILIES) $("#filter-family").append(el("option", {value: f}, f));
  for (const k of KINDS) $("#filter-kind").append(el("option", {value: k}, k.replace("_", " ")));
  for (const t of SEARCH_TYPES) $("#search-type").append(el("option", {value: t}, t));
  applyTheme();
  $("#theme").addEventListener("change", e => { prefs.theme = e.target.value; applyTheme(); });
  $("#nsfw-level").addEventListener("change", e => {
    prefs.nsfw = Number(e.target.value);
    for (const b of $$(".preview-toggle")) {
      const blurred = Number(b.dataset.level) > prefs.nsfw;
      b.classList.toggle("blurred", blurred);
      b.setAttribute("aria-pressed", blurred ? "false" : "true");
    }
  });
  let typing;
  $("#filters").addEventListener("submit", e => { e.preventDefault(); clearTimeout(typing); catalogue.offset = 0; catalogue.load(); });
  $("#filter-text").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { catalogue.offset = 0; catalogue.load(); }, 250); });
  for (const id of ["#filter-family", "#filter-kind", "#filter-source", "#page-size"]) {
    $(id).addEventListener("change", () => { catalogue.offset = 0; catalogue.load(); });
  }
  $("#prev-page").addEventListener("click", () => { catalogue.offset = Math.max(0, catalogue.offset - catalogue.size()); catalogue.load(); });
  $("#next-page").addEventListener("click", () => { if (catalogue.hasNext) { catalogue.offset += catalogue.size(); catalogue.load(); } });
  $("#check-updates").addEventListener("click", () => catalogue.checkUpdates());
  $("#search-form").addEventListener("submit", e => { e.preventDefault(); search.run(false); });
  $("#search-more").addEventListener("click", () => search.run(true));
  $("#install-form").addEventListener("submit", e => { e.preventDefault(); installs.start($("#install-ref").value); $("#install-ref").value = ""; });
  const drop = $("#dropzone");
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => {
    e.preventDefault(); drop.classList.remove("over");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) resources.send(file);
  });
  $("#resource-file").addEventListener("change", e => { resources.send(e.target.files[0]); e.target.value = ""; });
  // Dropping a file anywhere else on the page must not make the browser navigate away to it.
  window.addEventListener("dragover", e => e.preventDefault());
  window.addEventListener("drop", e => { if (!drop.contains(e.target)) { e.preventDefault(); if (e.dataTransfer.files[0]) { location.hash = "#/resources"; resources.send(e.dataTransfer.files[0]); } } });
  window.addEventListener("hashchange", route);
  api("/ui/settings").then(s => {
    prefs.defaultNsfw = s.nsfw_level || 1;
    $("#nsfw-level").value = String(prefs.nsfw);
  }).catch(() => { $("#nsfw-level").value = String(prefs.nsfw); });
  $("#nsfw-level").value = String(prefs.nsfw);
  installs.load();
  route();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
