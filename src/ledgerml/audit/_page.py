# ruff: noqa: E501
"""The auditor's single-page app (HTML, CSS, JS) as a string, so it ships inside the package.

The page holds no data: it asks for an API key, keeps it in `sessionStorage`, and sends
it as `X-API-Key` on every fetch (never in a URL). The verify button checks an RFC 9162
inclusion proof, the checkpoint's root and its Ed25519 signature with WebCrypto.
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>LedgerML audit</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b2a41;color:#fff;padding:10px 18px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0}
main{padding:14px 18px;max-width:1200px}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:12px 14px;margin:0 0 14px}
h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #e4e7eb;padding:4px 6px;text-align:left;vertical-align:top}
code{font-size:12px;word-break:break-all}
.ok{color:#0a7a2f;font-weight:600}.bad{color:#b3261e;font-weight:600}
button{cursor:pointer}input{padding:3px 6px}
#status{margin-left:auto;font-size:12px}
</style></head>
<body>
<header><h1>LedgerML audit</h1>
<label>API key <input id="key" type="password" size="28" autocomplete="off"></label>
<button id="use-key">Use key</button><span id="status">no key</span></header>
<main>
<section id="checkpoint"><h2>Checkpoint</h2><div id="cp">–</div></section>
<section id="witnesses"><h2>Witnesses</h2><div id="wit">–</div></section>
<section id="decisions"><h2>Search decisions</h2>
<input id="q" placeholder="decision ID" size="40"> <button id="search">Search</button>
<button id="recent">Newest</button><div id="decision-results"></div></section>
<section id="lineage"><h2>Lineage</h2>
<input id="trace-q" placeholder="decision ID" size="40"> <button id="trace-decision">Trace decision</button>
<input id="trace-m" placeholder="model CID or alias" size="30"> <button id="trace-model">Trace model</button>
<div id="trace-out"></div></section>
<section id="ledger"><h2>Ledger</h2>
<button id="newest">Newest</button> <button id="older">Older</button> <button id="newer">Newer</button>
<span id="range"></span><div id="entries"></div></section>
<section id="bundle"><h2>Download a bundle</h2>
<input id="bundle-model" placeholder="model CID or alias" size="30"> or
<input id="bundle-range" placeholder="decisions FROM..TO" size="24">
<button id="download">Download</button> <span id="bundle-status"></span></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();
let key = sessionStorage.getItem("ledgerml-audit-key") || "";
let ledgerStart = null, ledgerSize = 0;

function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); }
async function api(path) {
  const r = await fetch(path, {headers: {"X-API-Key": key}});
  if (!r.ok) {
    let msg = r.status + "";
    try { const j = await r.json(); msg += " " + (j.detail?.message || j.detail || ""); } catch (e) {}
    throw new Error(msg);
  }
  return r;
}
const getJSON = async (path) => (await api(path)).json();

// --- RFC 9162 and C2SP checks, in the browser ---------------------------------
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
const cat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; };
const sha = async (u) => new Uint8Array(await crypto.subtle.digest("SHA-256", u));
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function rootFromProof(index, size, leaf, path) {  // RFC 9162 2.1.3.2
  if (index < 0 || index >= size) return null;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if ((fn & 1) || fn === sn) {
      r = await sha(cat(Uint8Array.of(1), p, r));
      while (fn !== 0 && !(fn & 1)) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha(cat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

async function checkNoteSignature(note, vkeys) {
  const split = note.lastIndexOf("\n\n");
  const text = enc.encode(note.slice(0, split + 1));
  const sigs = note.slice(split + 2).split("\n").filter((l) => l);
  for (const vk of vkeys) {
    const i = vk.indexOf("+"), j = vk.indexOf("+", i + 1);
    const name = vk.slice(0, i), raw = b64(vk.slice(j + 1));
    if (raw[0] !== 1) continue;  // Ed25519 signed-note keys; ML-DSA is checked by the CLI
    const keyId = (await sha(cat(enc.encode(name + "\n"), raw))).slice(0, 4);
    if (hex(keyId) !== vk.slice(i + 1, j)) return "key hash does not match the key";
    const line = sigs.find((l) => l.startsWith("\u2014 " + name + " ") && eq(b64(l.split(" ").pop()).slice(0, 4), keyId));
    if (!line) return "no signature from " + name;
    const blob = b64(line.split(" ").pop());
    try {
      const k = await crypto.subtle.importKey("raw", raw.slice(1), {name: "Ed25519"}, false, ["verify"]);
      const ok = await crypto.subtle.verify({name: "Ed25519"}, k, blob.slice(4), text);
      return ok ? null : "bad signature from " + name;
    } catch (e) { return "Ed25519 not available in this browser (" + e.name + ")"; }
  }
  return "no Ed25519 verifier key";
}

async function verifyEntry(index, out) {
  out.textContent = "verifying…"; out.className = "verify-result"; delete out.dataset.ok;
  try {
    const p = await getJSON("/audit/api/proof/" + index);
    const entry = b64(p.entry_b64);
    const leaf = await sha(cat(Uint8Array.of(0), entry));
    const note = p.checkpoint, head = note.slice(0, note.lastIndexOf("\n\n") + 1).split("\n");
    const cpSize = parseInt(head[1], 10), cpRoot = b64(head[2]);
    const problems = [];
    if (!p.proof) problems.push("no proof (entry newer than the checkpoint)");
    else {
      if (p.proof.tree_size !== cpSize) problems.push("proof is for another tree size");
      if (hex(leaf) !== p.proof.leaf_hash) problems.push("entry bytes do not hash to the proof's leaf");
      const root = await rootFromProof(p.proof.leaf_index, p.proof.tree_size, leaf, p.proof.hashes.map(unhex));
      if (!root || !eq(root, cpRoot)) problems.push("proof does not lead to the checkpoint root");
    }
    const sigProblem = await checkNoteSignature(note, p.vkeys);
    if (sigProblem) problems.push("checkpoint: " + sigProblem);
    if (problems.length) { out.textContent = "FAILED: " + problems.join("; "); out.className = "verify-result bad"; out.dataset.ok = "false"; }
    else { out.textContent = "verified in the browser: leaf, " + p.proof.hashes.length + "-hash path, root of checkpoint " + cpSize + ", Ed25519 signature"; out.className = "verify-result ok"; out.dataset.ok = "true"; }
  } catch (e) { out.textContent = "FAILED: " + e.message; out.className = "verify-result bad"; out.dataset.ok = "false"; }
}

function verifyButton(index) {
  return `<button class="verify" data-index="${index}">verify</button> <span class="verify-result"></span>`;
}
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button.verify");
  if (b) verifyEntry(Number(b.dataset.index), b.parentElement.querySelector(".verify-result"));
  const t = ev.target.closest("a.trace");
  if (t) { ev.preventDefault(); $("trace-q").value = t.dataset.id; traceDecision(); }
});

// --- sections -----------------------------------------------------------------
async function loadCheckpoint() {
  const c = await getJSON("/audit/api/checkpoint");
  $("cp").innerHTML = `origin <code>${esc(c.origin)}</code>, size <b>${c.size}</b>, root <code>${c.root}</code>,
    signature ${c.signature_ok ? '<span class="ok">OK</span>' : '<span class="bad">BAD</span>'}<pre>${esc(c.note)}</pre>`;
}
async function loadWitnesses() {
  const w = await getJSON("/audit/api/witnesses");
  if (!w.policy) { $("wit").textContent = "no witness policy configured: checkpoints are signed by the log only"; return; }
  $("wit").innerHTML = `quorum <b>${esc(w.policy.quorum)}</b> of ${w.policy.witnesses.map((x) => esc(x.name)).join(", ")}
    ${w.fail_open ? '<span class="bad">(fail open)</span>' : "(fail closed)"}
    <table id="witness-table"><tr><th>size</th><th>root</th><th>cosigned by</th><th>stored</th></tr>` +
    w.cosigned.map((c) => `<tr><td>${c.size}</td><td><code>${esc(c.root)}</code></td><td>${c.cosigners.map(esc).join(", ")}</td><td>${esc(c.stored_at)}</td></tr>`).join("") +
    "</table>";
}
function decisionRows(ds) {
  return "<table><tr><th>index</th><th>decision</th><th>outcome</th><th>score</th><th>model</th><th>reasons</th><th></th></tr>" +
    ds.map((d) => `<tr><td>${d.index}</td><td><a href="#" class="trace" data-id="${esc(d.decision_id)}">${esc(d.decision_id)}</a></td>
    <td>${esc(d.outcome)}</td><td>${d.score}</td><td><code>${esc(d.model_cid)}</code></td><td>${esc((d.reasons || []).join(", "))}</td>
    <td>${verifyButton(d.index)}</td></tr>`).join("") + "</table>";
}
async function search(q) {
  try {
    const r = await getJSON("/audit/api/decisions" + (q ? "?q=" + encodeURIComponent(q) : ""));
    $("decision-results").innerHTML = decisionRows(r.decisions);
  } catch (e) { $("decision-results").innerHTML = `<span class="bad">${esc(e.message)}</span>`; }
}
function renderTrace(t) {
  $("trace-out").innerHTML = `<p>${esc(t.kind)} <b>${esc(t.subject)}</b>: ${t.ok ? '<span class="ok">every proof verifies</span>' : '<span class="bad">NOT all proofs verify</span>'}
    against checkpoint ${t.checkpoint.size} (${(t.seconds * 1000).toFixed(1)} ms on the server)</p>
    <table id="trace-table"><tr><th>index</th><th>step</th><th>what</th><th>server</th><th>browser</th></tr>` +
    t.steps.map((s) => `<tr><td>${s.index}</td><td>${esc(s.step)}</td><td>${esc(s.summary)}</td>
      <td>${s.verified ? '<span class="ok">proved</span>' : '<span class="bad">not proved</span>'}</td><td>${verifyButton(s.index)}</td></tr>`).join("") + "</table>";
}
async function traceDecision() {
  try { renderTrace(await getJSON("/audit/api/trace?decision=" + encodeURIComponent($("trace-q").value))); }
  catch (e) { $("trace-out").innerHTML = `<span class="bad">${esc(e.message)}</span>`; }
}
async function traceModel() {
  try { renderTrace(await getJSON("/audit/api/trace?model=" + encodeURIComponent($("trace-m").value))); }
  catch (e) { $("trace-out").innerHTML = `<span class="bad">${esc(e.message)}</span>`; }
}
async function loadEntries(start) {
  try {
    const r = await getJSON("/audit/api/entries" + (start === null ? "" : "?start=" + start));
    ledgerStart = r.start; ledgerSize = r.size;
    $("range").textContent = `entries ${r.start}…${r.start + r.entries.length - 1} of ${r.size}`;
    $("entries").innerHTML = "<table><tr><th>index</th><th>type</th><th>time</th><th>summary</th><th></th></tr>" +
      r.entries.map((e) => `<tr><td>${e.index}</td><td>${esc(e.type)}</td><td>${esc(e.time)}</td><td>${esc(e.summary)}</td><td>${verifyButton(e.index)}</td></tr>`).join("") + "</table>";
  } catch (e) { $("entries").innerHTML = `<span class="bad">${esc(e.message)}</span>`; }
}
async function download() {
  const m = $("bundle-model").value, r = $("bundle-range").value;
  const qs = m ? "model=" + encodeURIComponent(m) : "decisions=" + encodeURIComponent(r);
  $("bundle-status").textContent = "building…";
  try {
    const blob = await (await api("/audit/api/bundle?" + qs)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = "audit-bundle.zip"; a.click();
    $("bundle-status").textContent = `downloaded ${blob.size} bytes`;
  } catch (e) { $("bundle-status").innerHTML = `<span class="bad">${esc(e.message)}</span>`; }
}
async function start() {
  if (!key) { $("status").textContent = "enter an auditor key"; return; }
  try {
    await loadCheckpoint();
    $("status").textContent = "key accepted";
    await Promise.all([search(""), loadEntries(null), loadWitnesses()]);
  } catch (e) { $("status").textContent = "key refused: " + e.message; }
}
$("use-key").onclick = () => { key = $("key").value.trim(); sessionStorage.setItem("ledgerml-audit-key", key); start(); };
$("search").onclick = () => search($("q").value.trim());
$("recent").onclick = () => search("");
$("trace-decision").onclick = traceDecision;
$("trace-model").onclick = traceModel;
$("newest").onclick = () => loadEntries(null);
$("older").onclick = () => loadEntries(Math.max(0, (ledgerStart ?? 0) - 50));
$("newer").onclick = () => loadEntries(Math.min(Math.max(0, ledgerSize - 50), (ledgerStart ?? 0) + 50));
$("download").onclick = download;
start();
</script></body></html>
"""
