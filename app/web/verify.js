// The public verify page. Every string from a report is attacker-controlled: it is only ever set with
// textContent (never parsed as HTML), and the page's CSP allows no inline script.
"use strict";

const OUTCOMES = {
  trusted: [
    "Content Credentials found: intact, from a signer this service trusts",
    "The file carries Content Credentials that have not been changed since they were signed, and a trust " +
      "list this service uses vouches for the signer. What they state is the signer's claim.",
  ],
  valid_untrusted: [
    "Content Credentials found: intact, but the signer is not on a trust list this service uses",
    "The credentials have not been changed since they were signed, but anyone can make a signing " +
      "certificate: the statements are only as reliable as a signer you cannot identify here.",
  ],
  invalid: [
    "Content Credentials found, but they failed validation",
    "The file or its credentials were changed after signing, or the credentials are damaged. " +
      "Do not rely on what they state.",
  ],
  none: [
    "No Content Credentials found",
    "This file carries no Content Credentials that this service could read. That says nothing about how " +
      "the content was made: it may or may not be AI-generated. Credentials are easily removed, for " +
      "example by a screenshot or by re-saving the file.",
  ],
};

const INTEGRITY = {
  intact: "Intact: the content matches what was signed.",
  tampered: "Changed: the content or the credentials no longer match what was signed.",
  unreadable: "Unreadable: the credentials could not be read completely.",
  absent: "No credentials to check.",
};

const TIMESTAMP = {
  trusted: "Trusted timestamp",
  unanchored: "Timestamp accepted, but no trust list this service uses vouches for its authority",
  untrusted: "Timestamp not trusted (no trust list vouches for it, or it is broken)",
  none: "No timestamp: the signing time is only what the signer's clock said",
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// A titled card; the title names it, so assistive technology lists it as a region.
function section(title) {
  const box = el("section", undefined, "card");
  const heading = el("h3", title);
  heading.id = `card-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  box.setAttribute("aria-labelledby", heading.id);
  box.append(heading);
  return box;
}

// A definition list of [label, value] pairs; pairs without a value are left out.
function facts(pairs) {
  const dl = el("dl");
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(el("dt", label), el("dd", value));
  }
  return dl;
}

function outcomeBox(report) {
  const [title, text] = OUTCOMES[report.outcome] || ["Unknown result", ""];
  const box = el("div", undefined, `outcome outcome-${report.outcome}`);
  box.id = "outcome";
  box.append(el("p", title, "outcome-title"), el("p", text));
  if (report.development_trust) {
    box.append(el("p", "Trusted only through a development trust profile: not for production use.", "warn"));
  }
  box.append(el("p", report.summary, "summary"));
  return box;
}

function aiBox(report) {
  const box = section("AI declaration");
  if (report.outcome === "invalid") box.append(el("p", "These statements failed validation: do not rely on them.", "bad"));
  const ai = report.ai;
  if (!ai) {
    box.append(el("p", "No statement about AI involvement was found."));
  } else {
    const when = (ai.action_details || []).map((a) => a.when).find((w) => w);
    box.append(
      facts([
        ["Declared AI-generated", ai.declared ? "Yes" : "No"],
        ["What it says", ai.description],
        ["Model", ai.model_name],
        ["Model version", ai.model_version],
        ["Provider", ai.provider],
        ["When", when],
        ["Digital source type", ai.digital_source_type],
      ]),
    );
  }
  const prefs = report.training_mining || [];
  box.append(el("h4", "Training and data-mining preferences"));
  if (prefs.length === 0) {
    box.append(el("p", "None stated."));
  } else {
    const list = el("ul", undefined, "prefs");
    for (const p of prefs) {
      const item = el("li", `${p.use}: ${p.value}`);
      if (p.constraint_info) item.append(el("span", ` (${p.constraint_info})`));
      list.append(item);
    }
    box.append(list);
  }
  return box;
}

function signerBox(report) {
  const box = section("Signer");
  const s = report.signer;
  if (!s) {
    box.append(el("p", "No signer."));
    return box;
  }
  const vouch = s.trust_profile
    ? `Trust profile "${s.trust_profile}"${s.development ? " (development)" : ""}`
    : "No trust profile this service uses vouches for this signer";
  box.append(
    facts([
      ["Name", s.common_name],
      ["Organization", s.organization],
      ["Issued by", s.issuer],
      ["Vouched for by", vouch],
      ["Algorithm", s.algorithm],
    ]),
  );
  return box;
}

function integrityBox(report) {
  const box = section("Integrity");
  box.append(el("p", INTEGRITY[report.integrity] || report.integrity));
  const failures = (report.codes && report.codes.failure) || [];
  if (failures.length) {
    const list = el("ul", undefined, "codes");
    for (const c of failures) list.append(el("li", c.explanation ? `${c.code}: ${c.explanation}` : c.code));
    box.append(el("p", "Checks that failed:"), list);
  }
  return box;
}

function timestampBox(report) {
  const box = section("Timestamp");
  const t = report.timestamp || { status: "none" };
  const list = { tsa: "its timestamp-authority anchors", signers: "its signer anchors" }[t.trust_list];
  box.append(
    facts([
      ["Status", TIMESTAMP[t.status] || t.status],
      ["Time", t.time],
      ["Vouched for by", t.trust_profile ? `Trust profile "${t.trust_profile}"${list ? `, ${list}` : ""}` : null],
    ]),
  );
  return box;
}

function ingredientLine(ing, failures) {
  const parts = [ing.title || "(untitled)"];
  if (ing.format) parts.push(ing.format);
  if (ing.relationship) parts.push(ing.relationship);
  const item = el("li");
  item.append(el("span", parts.join(" · "), "ingredient"));
  const id = ing.manifest_id || ing.active_manifest;
  if (id) item.append(el("span", ` credentials ${id}`, "muted"));
  if (failures && failures.length) item.append(el("span", ` failed: ${failures.join(", ")}`, "bad"));
  return item;
}

// The tree from the detailed manifest store: each ingredient with credentials nests its own ingredients.
// `failures[i]` are the i-th ingredient's validation failures (known for the direct ingredients only).
function ingredientTree(store, label, seen, depth, failures) {
  const manifest = store.manifests && store.manifests[label];
  const ingredients = (manifest && manifest.ingredients) || [];
  if (!ingredients.length || depth > 20) return null;
  const list = el("ul", undefined, "tree");
  ingredients.forEach((ing, i) => {
    const item = ingredientLine(ing, failures[i]);
    const child = ing.active_manifest;
    if (child && !seen.has(child)) {
      const sub = ingredientTree(store, child, new Set([...seen, child]), depth + 1, []);
      if (sub) item.append(sub);
    }
    list.append(item);
  });
  return list;
}

function ingredientsBox(report) {
  const box = section("Ingredients");
  const store = report.manifest_store;
  const top = report.ingredients || [];
  let tree = null;
  if (store && store.active_manifest) {
    const failures = top.map((ing) => ing.validation_failures);
    tree = ingredientTree(store, store.active_manifest, new Set([store.active_manifest]), 0, failures);
  } else if (top.length) {
    tree = el("ul", undefined, "tree");
    for (const ing of top) tree.append(ingredientLine(ing, ing.validation_failures));
  }
  box.append(tree || el("p", "No ingredients: the credentials name no earlier files this one was made from."));
  return box;
}

const RECOVERY_TITLES = {
  recovered: "Recovered: the original credentials were found",
  similar: "Similar to something this service signed",
  not_found: "Nothing found in this service's records",
  not_searched: "Not searched",
};

function markText(mark) {
  if (!mark.detected) return "Not found";
  const how = mark.test === "known-id" ? ", found by testing for the mark of a similar signed picture" : "";
  return `Found (id ${mark.watermark_id})${how}`;
}

// What the invisible watermark and the fingerprints found when the file has no intact credentials.
function recoveryBox(report) {
  const rec = report.recovery;
  if (!rec) return null;
  const box = section("Recovery");
  box.id = "recovery";
  box.append(el("p", RECOVERY_TITLES[rec.status] || rec.status, `recovery-${rec.status}`), el("p", rec.statement));
  const mark = rec.watermark;
  if (mark) {
    box.append(
      facts([
        ["Invisible watermark", markText(mark)],
        ["How it was matched", rec.method],
        ["Confidence", rec.confidence],
      ]),
    );
  }
  const list = el("ul", undefined, "matches");
  for (const m of rec.matches || []) {
    const ai = m.ai || {};
    const item = el("li");
    item.append(
      facts([
        ["Original credentials", m.manifest_id],
        ["Signed", m.signed_at],
        ["Signer", m.signer && (m.signer.organization || m.signer.common_name)],
        ["Model", [ai.model_name, ai.model_version].filter((x) => x).join(" ")],
        ["Provider", ai.provider],
        ["Fingerprint distances", `ISCC ${m.iscc_distance ?? "-"}, PDQ ${m.pdq_distance ?? "-"}`],
      ]),
    );
    list.append(item);
  }
  if (list.childElementCount) box.append(list);
  return box;
}

function render(report) {
  const out = $("report");
  out.replaceChildren(outcomeBox(report));
  if (report.outcome !== "none") {
    out.append(aiBox(report), signerBox(report), integrityBox(report), timestampBox(report), ingredientsBox(report));
  }
  const recovery = recoveryBox(report);
  if (recovery) out.append(recovery);
  $("raw-json").textContent = JSON.stringify(report, null, 2);
  $("raw").open = false;
  $("result").hidden = false;
}

let lastReport = null;

// Sends one verify request (an upload or a link) and shows its report; `name` is what the status names.
async function submit(name, what, init) {
  const status = $("status");
  status.textContent = `Checking ${name}…`;
  $("result").hidden = true;
  resetFeedback();
  let response;
  try {
    response = await fetch("/v1/verify?detail=full", { method: "POST", ...init });
  } catch (err) {
    status.textContent = "The server could not be reached. Try again.";
    return;
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok || !data) {
    const why = data && (data.detail || data.title);
    status.textContent = `The ${what} could not be checked (${response.status})${why ? `: ${why}` : "."}`;
    if (data && data.type === "/problems/url-fetch-disabled") urlInputOff();
    return;
  }
  lastReport = data;
  status.textContent = `Checked ${name}.`;
  render(data);
}

function check(file) {
  if (!file) return;
  const body = new FormData();
  body.append("file", file, file.name);
  return submit(file.name, "file", { body });
}

function checkUrl(url) {
  if (!url) return;
  const body = JSON.stringify({ url });
  return submit(url, "link", { headers: { "Content-Type": "application/json" }, body });
}

const URL_OFF = "Checking a link is switched off on this server: download the file and choose it above instead.";

function urlInputOff() {
  $("url").disabled = true;
  $("url-submit").disabled = true;
  $("url-hint").textContent = URL_OFF;
}

// The link field is offered only where the operator turned fetching on (the server says so).
async function askOptions() {
  try {
    const response = await fetch("/v1/verify/options");
    const options = response.ok ? await response.json() : null;
    if (!options || !options.url_input) urlInputOff();
  } catch (err) {
    urlInputOff();
  }
}

function resetFeedback() {
  const form = $("feedback-form");
  form.reset();
  form.querySelector("fieldset").disabled = false;
  $("feedback-status").textContent = "";
}

async function sendFeedback(event) {
  event.preventDefault();
  if (!lastReport) return;
  const form = event.target;
  const verdict = form.elements.verdict.value;
  const out = $("feedback-status");
  if (!verdict) {
    out.textContent = "Choose yes or no first.";
    return;
  }
  const comment = form.elements.comment.value.trim();
  const payload = {
    outcome: lastReport.outcome,
    verdict_correct: verdict === "yes",
    manifest_id: lastReport.manifest_id || null,
    comment: comment || null,
  };
  try {
    const response = await fetch("/v1/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    if (!response.ok) throw new Error(String(response.status));
    out.textContent = "Thank you: your feedback was stored.";
    form.querySelector("fieldset").disabled = true;
  } catch (err) {
    out.textContent = "The feedback could not be sent. Try again later.";
  }
}

function setUp() {
  const input = $("file");
  const zone = $("drop-zone");
  input.addEventListener("change", () => check(input.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (e.dataTransfer && e.dataTransfer.files.length) check(e.dataTransfer.files[0]);
  });
  $("verify-form").addEventListener("submit", (e) => {
    e.preventDefault();
    check(input.files[0]);
  });
  $("feedback-form").addEventListener("submit", sendFeedback);
  $("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    checkUrl($("url").value.trim());
  });
  askOptions();
}

setUp();
