# ruff: noqa: E501
"""The audit report's jinja2 template (a string, so it ships inside the package)."""

TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>LedgerML audit report — {{ d.origin }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;color:#1b1f24;max-width:1150px;margin:0 auto;padding:18px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid #1b2a41;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
td,th{border:1px solid #d8dde3;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f1f4f8}
code{font-size:12px;word-break:break-all}.ok{color:#0a7a2f;font-weight:600}.bad{color:#b3261e;font-weight:600}
img{max-width:100%;border:1px solid #e4e7eb;margin:6px 0}.muted{color:#5b6470}
nav a{margin-right:10px}pre{background:#f6f7f9;padding:8px;font-size:12px;white-space:pre-wrap}
</style></head><body>
<h1>Audit report</h1>
<p class="muted">Log <code>{{ d.origin }}</code> · generated {{ d.generated }} · every fact below is a ledger entry proved against checkpoint {{ d.checkpoint.size }} (or a stored artifact whose CID the ledger names).</p>
<nav><a href="#inventory">Inventory</a><a href="#lineage">Lineage</a><a href="#metrics">Metrics</a><a href="#fairness">Fairness</a><a href="#drift">Drift</a><a href="#compliance">Compliance</a><a href="#approvals">Approvals</a><a href="#anchoring">Anchoring</a><a href="#retention">Retention</a><a href="#verification">Verification</a></nav>

<section id="verification-summary"><p>Verification:
{% if d.verify.ok %}<span class="ok">the whole log verifies</span>{% else %}<span class="bad">the log does NOT verify ({{ d.verify.problems|length }} problem(s))</span>{% endif %}
— {{ d.verify.tree_size }} entries, {{ d.verify.checkpoints_checked }} signed checkpoints, {{ d.verify.trusted_roots_checked }} on-chain anchor(s) checked.</p></section>

<section id="inventory"><h2>Model inventory</h2>
<p class="muted">In the style of SR 26-2 / OCC Bulletin 2026-13 (17 Apr 2026), which superseded SR 11-7 and SR 21-8: an inventory of every model with its purpose, data, development, validation, approval and monitoring. Materiality tiers are set by the model-risk function and are not recorded in the ledger.</p>
<table><tr><th>model</th><th>purpose (model card)</th><th>training data</th><th>development</th><th>validation</th><th>approvals</th><th>status</th><th>monitoring</th><th>decisions</th></tr>
{% for m in d.models %}<tr>
<td><b>{{ m.name }}</b><br><code>{{ m.cid }}</code><br>{{ m.framework }}</td>
<td>{{ m.intended_use or "— (no model card)" }}</td>
<td>{% for ds in m.datasets %}{{ ds.body.name }} ({{ ds.body.rows }} rows)<br><code>{{ ds.body.cid }}</code><br>{% else %}—{% endfor %}</td>
<td>{{ m.run_id or "—" }}</td>
<td>{% if m.evaluation %}AUPRC {{ "%.3f"|format(m.evaluation.body.metrics.auprc or 0) }}; {% endif %}{% for c in m.compliance %}{{ c.body.pack or c.body.policy }}: {% if c.body.passed %}<span class="ok">passed</span>{% else %}<span class="bad">failed</span>{% endif %}<br>{% else %}no compliance check{% endfor %}</td>
<td>{% for a in m.approvals %}{{ a.body.role }}<br>{% else %}none{% endfor %}</td>
<td>{{ m.status }}</td>
<td>{% if m.drift %}max PSI {{ m.drift[-1].body.max_psi }} ({{ m.drift[-1].time[:10] }}){% else %}—{% endif %}</td>
<td>{{ m.decisions if m.decisions is not none else "n/a" }}</td>
</tr>{% endfor %}</table>
<p class="muted">Entries by type: {% for t, n in d.type_counts.items() %}{{ t }} {{ n }}{% if not loop.last %} · {% endif %}{% endfor %}</p>
</section>

<section id="lineage"><h2>Lineage</h2>
{% if d.plots.get('lineage') %}<img alt="lineage graph" src="{{ d.plots['lineage'] }}">{% endif %}
{% for m in d.models %}<h3>{{ m.name }} <code>{{ m.cid }}</code></h3>
<table><tr><th>index</th><th>step</th><th>what</th><th>proof</th></tr>
{% for s in m.trace.steps %}<tr><td>{{ s.entry.index }}</td><td>{{ s.step }}</td><td>{{ s.summary }}</td><td>{% if s.entry.verified %}<span class="ok">verified</span>{% else %}<span class="bad">not verified</span>{% endif %}</td></tr>{% endfor %}
</table>{% endfor %}
</section>

<section id="metrics"><h2>Metrics</h2>
{% for m in d.models %}{% if m.evaluation %}<h3>{{ m.name }} — {{ m.evaluation.body.split or "held-out window" }}</h3>
<table><tr><th>metric</th><th>model</th>{% for b in m.evaluation.body.baselines %}<th>{{ b }}</th>{% endfor %}</tr>
{% for k, v in m.evaluation.body.metrics.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td>{% for b, bm in m.evaluation.body.baselines.items() %}<td>{{ bm.get(k, "—") }}</td>{% endfor %}</tr>{% endfor %}</table>
{% set pr = d.plots.get("pr_curve:" ~ m.cid) %}{% if pr %}<img alt="PR curve {{ m.name }}" class="pr-curve" src="{{ pr }}">{% endif %}
{% set fpr = d.plots.get("fpr_vs_recall:" ~ m.cid) %}{% if fpr %}<img alt="FPR vs recall {{ m.name }}" src="{{ fpr }}">{% endif %}
{% set fp = d.plots.get("fp:" ~ m.cid) %}{% if fp %}<img alt="false positives at fixed recall {{ m.name }}" class="fp-at-recall" src="{{ fp }}">{% endif %}
{% endif %}{% endfor %}
</section>

<section id="fairness"><h2>Fairness by group</h2>
{% set ns = namespace(any=false) %}
{% for m in d.models %}{% for c in m.compliance %}{% for r in c.body.results %}{% if r.metric == "di_ratio" %}{% set ns.any = true %}
<p><b>{{ m.name }}</b> — {{ r.rule_id }}: ratio {{ r.value }} vs {{ r.threshold }} → {% if r.passed %}<span class="ok">passed</span>{% else %}<span class="bad">failed</span>{% endif %}<br><span class="muted">{{ r.detail }} — {{ r.regulation }}</span></p>
{% endif %}{% endfor %}{% endfor %}{% endfor %}
{% if d.plots.get('fairness') %}<img alt="approval rate by group" src="{{ d.plots['fairness'] }}">{% endif %}
{% if not ns.any %}<p class="muted">No fairness screen is recorded: the data of these models has no protected-group column (the card-fraud data holds none), so there are no groups to compare.</p>{% endif %}
</section>

<section id="drift"><h2>Drift over time</h2>
{% if d.plots.get('drift') %}<img alt="drift over time" src="{{ d.plots['drift'] }}">{% else %}<p class="muted">No drift measurement is recorded.</p>{% endif %}
<table><tr><th>index</th><th>time</th><th>model</th><th>largest PSI</th><th>limit</th></tr>
{% for m in d.models %}{% for x in m.drift %}<tr><td>{{ x.index }}</td><td>{{ x.time }}</td><td>{{ m.name }}</td><td>{{ x.body.max_psi }}</td><td>{{ x.body.threshold }}</td></tr>{% endfor %}{% endfor %}</table>
</section>

<section id="compliance"><h2>Compliance results per rule</h2>
{% for m in d.models %}{% for c in m.compliance %}<h3>{{ m.name }} — {{ c.body.pack or c.body.policy }} (entry {{ c.index }}{% if c.body.tx_hash %}, tx <code>{{ c.body.tx_hash }}</code>{% endif %})</h3>
<table><tr><th>rule</th><th>regulation it serves</th><th>metric</th><th>value</th><th>threshold</th><th>result</th><th>on chain</th></tr>
{% for r in c.body.results %}<tr><td>{{ r.rule_id }}</td><td>{{ r.regulation }}</td><td>{{ r.metric or "" }}</td><td>{{ r.value }}</td><td>{{ r.threshold }}</td><td>{% if r.passed %}<span class="ok">pass</span>{% else %}<span class="bad">fail</span>{% endif %}</td><td>{{ "yes" if r.on_chain else "no" }}</td></tr>{% endfor %}
</table>{% endfor %}{% endfor %}
</section>

<section id="approvals"><h2>Approvals</h2>
<table><tr><th>index</th><th>time</th><th>model</th><th>role</th><th>approver (account)</th><th>entry signed by</th><th>transaction</th></tr>
{% for m in d.models %}{% for a in m.approvals %}<tr><td>{{ a.index }}</td><td>{{ a.time }}</td><td>{{ m.name }}</td><td>{{ a.body.role }}</td><td><code>{{ a.body.approver }}</code></td><td><code>{{ a.actor }}</code></td><td><code>{{ a.body.tx_hash or "" }}</code></td></tr>{% endfor %}{% endfor %}
</table></section>

<section id="anchoring"><h2>Anchoring status</h2>
{% if d.anchors_on_chain.read %}<p>On-chain anchors read: {{ d.anchors_on_chain.anchors|length }}; the log {% if d.verify.ok %}<span class="ok">is consistent with every one</span>{% else %}<span class="bad">is NOT consistent</span>{% endif %}.</p>
{% else %}<p class="bad">The chain could not be read: {{ d.anchors_on_chain.error }}</p>{% endif %}
<table><tr><th>index</th><th>time</th><th>tree size</th><th>root</th><th>block</th><th>transaction</th></tr>
{% for a in d.anchors %}<tr><td>{{ a.index }}</td><td>{{ a.time }}</td><td>{{ a.body.tree_size }}</td><td><code>{{ a.body.root }}</code></td><td>{{ a.body.block_number }}</td><td><code>{{ a.body.tx_hash }}</code></td></tr>{% else %}<tr><td colspan="6">no checkpoint anchored yet</td></tr>{% endfor %}
</table></section>

<section id="retention"><h2>Retention status</h2>
<p>As of {{ d.retention.as_of }}: <b>{{ d.retention.due }}</b> entries past their retention period; pruning allowed below index {{ d.retention.prunable_below }} (C2SP tlog-tiles minimum index; report only, the tree is never rewritten).{% if d.retention.vault_subjects is not none %} Vault: {{ d.retention.vault_subjects }} data subjects, {{ d.retention.erasures_recorded }} erasures recorded (GDPR Art. 17 by key destruction).{% endif %}</p>
<table><tr><th>event type</th><th>entries</th><th>oldest</th><th>keep</th><th>due</th><th>basis</th></tr>
{% for t in d.retention.types %}<tr><td>{{ t.event_type }}</td><td>{{ t.count }}</td><td>{{ t.oldest }}</td><td>{{ "forever" if t.keep_days is none else t.keep_days ~ " days" }}</td><td>{{ t.due }}</td><td>{{ t.basis }}</td></tr>{% endfor %}
</table></section>

<section id="verification"><h2>Verification</h2>
<p>{% if d.verify.ok %}<span class="ok">OK</span>{% else %}<span class="bad">FAILED</span>{% endif %}: {{ d.verify.tree_size }} entries recomputed, {{ d.verify.checkpoints_checked }} signed checkpoints, {{ d.verify.trusted_roots_checked }} anchored tree heads; root <code>{{ d.verify.root }}</code> ({{ d.verify.seconds }} s).</p>
{% for p in d.verify.problems %}<p class="bad">{{ p.kind }} {{ p.index or "" }} {{ p.detail }}</p>{% endfor %}
<p>The proofs in this report refer to this checkpoint (signature {% if d.checkpoint.signature_ok %}<span class="ok">verified</span>{% else %}<span class="bad">NOT verified</span>{% endif %}):</p>
<pre id="checkpoint-note">{{ d.checkpoint.note }}</pre>
<p class="muted">Report built in {{ "%.1f"|format(d.seconds) }} s by <code>ledgerml audit report</code>.</p>
</section>
</body></html>
"""
