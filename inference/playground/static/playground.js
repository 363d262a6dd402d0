// The playground page: every GRU4Rec list is the answer of POST /invocations (the model server's own
// route and JSON contract) to the session built here, or of a deployed stage's POST /recommendations
// (same contract) called as a Cognito guest when /playground/config names one (GuestApi, aws_guest.js);
// the most-popular list is /playground/popular's answer to the same request. No framework, no build step.
"use strict";

const state = { session: [], excluded: [], included: [], details: new Map(), reportLoaded: false, api: null };
const $ = (id) => document.getElementById(id);

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `${path} answered ${response.status}`);
  return answer;
}

// GRU4Rec's answer to `body`, from this server or from the deployed API.
async function recommendations(body) {
  if (!state.api) return call("/invocations", body);
  const response = await state.api.post(body);
  const answer = await response.json();
  if (!response.ok) throw new Error(`${state.api.apiUrl}: ${response.status} ${answer.error || answer.message || ""}`);
  return answer;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function itemRow(item, rank, score) {
  const row = element("li");
  row.dataset.itemId = item.item_id;
  if (rank !== undefined) row.append(element("span", "rank", `${rank}.`));
  if (item.image_url) {
    const image = element("img");
    image.src = item.image_url;
    image.alt = "";
    row.append(image);
  }
  const label = element("span", "label", item.name || item.item_id);
  label.title = `item ${item.item_id}`;
  if (item.category) label.append(element("span", "category", item.category));
  row.append(label);
  if (score !== undefined) {
    row.dataset.score = String(score);
    row.append(element("span", "score", score.toFixed(3)));
  }
  row.append(toggleButton("exclude", "never", item.item_id, state.excluded),
             toggleButton("include", "only", item.item_id, state.included));
  row.classList.toggle("excluded", state.excluded.includes(item.item_id));
  row.classList.toggle("included", state.included.includes(item.item_id));
  row.addEventListener("click", () => addToSession(item.item_id));
  return row;
}

function toggleButton(kind, text, itemId, list) {
  const button = element("button", kind, text);
  button.type = "button";
  button.title = kind === "exclude" ? "never recommend this item" : "recommend only items marked so";
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    const at = list.indexOf(itemId);
    if (at >= 0) list.splice(at, 1); else list.push(itemId);
    refresh();
  });
  return button;
}

function describe(itemId) {
  return state.details.get(itemId) || { item_id: itemId };
}

function remember(items) {
  for (const item of items) state.details.set(item.item_id, item);
}

function chips(list, target, onRemove) {
  target.replaceChildren(...list.map((itemId, position) => {
    const chip = element("li", "", describe(itemId).name || itemId);
    chip.dataset.itemId = itemId;
    chip.title = "remove";
    chip.addEventListener("click", () => onRemove(position));
    return chip;
  }));
}

function request() {
  const body = { items: state.session, k: Number($("k").value) || 10, exclude_seen: $("exclude-seen").checked };
  if (state.excluded.length) body.exclude_items = state.excluded;
  if (state.included.length) body.include_items = state.included;
  return body;
}

function ranked(answer, target) {
  target.replaceChildren(...answer.recommendations.map((recommendation, position) =>
    itemRow(describe(recommendation.item_id), position + 1, recommendation.score)));
}

async function refresh() {
  chips(state.session, $("session"), (position) => { state.session.splice(position, 1); refresh(); });
  chips(state.excluded, $("excluded"), (position) => { state.excluded.splice(position, 1); refresh(); });
  chips(state.included, $("included"), (position) => { state.included.splice(position, 1); refresh(); });
  $("session-hint").hidden = state.session.length > 0;
  const status = $("status");
  status.textContent = "";
  status.className = "";
  try {
    const body = request();
    const empty = { recommendations: [] };
    const [model, popular] = await Promise.all([
      state.session.length ? recommendations(body) : empty, call("/playground/popular", body)]);
    const ids = [...model.recommendations, ...popular.recommendations].map((r) => r.item_id);
    remember((await call("/playground/describe", { item_ids: ids })).items);
    ranked(model, $("model-list"));
    ranked(popular, $("popular-list"));
    $("fallback").hidden = !model.fallback;
    if (model.unknown_items) status.textContent = `${model.unknown_items} item(s) of the session unknown to the model`;
    await search();
  } catch (error) {
    status.textContent = error.message;
    status.className = "error";
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
}

function addToSession(itemId) {
  state.session.push(itemId);
  refresh();
}

async function search() {
  const text = $("search").value;
  const answer = await call(`/playground/items?q=${encodeURIComponent(text)}`);
  remember(answer.items);
  $("catalogue").replaceChildren(...answer.items.map((item) => itemRow(item)));
  const described = answer.described ? `, ${answer.described} described by the items file` : "";
  $("catalogue-note").textContent = `${answer.items.length} shown of ${answer.total} items${described}`;
  document.body.dataset.searched = text;
}

function table(target, rows) {
  target.replaceChildren(...rows.map((cells) => {
    const row = element("tr");
    row.append(...cells);
    return row;
  }));
}

function cell(text, attributes = {}) {
  const node = element(attributes.header ? "th" : "td", typeof text === "number" ? "number" : "",
                       typeof text === "number" && !Number.isInteger(text) ? text.toFixed(4) : String(text ?? ""));
  for (const [key, value] of Object.entries(attributes.data || {})) node.dataset[key] = value;
  return node;
}

function showReport(report) {
  $("report-version").textContent = report.model_version;
  const data = report.data || {};
  const splits = Object.keys(data);
  const fields = ["events", "sessions", "items", "examples"];
  table($("report-data"), [[cell(""), ...splits.map((split) => cell(split, { header: true }))],
    ...fields.map((field) => [cell(field, { header: true }), ...splits.map((split) => cell(data[split][field]))])]);
  const validation = report.validation_metrics || {};
  const test = report.metrics || {};
  const names = [...new Set([...Object.keys(validation), ...Object.keys(test)])];
  table($("report-metrics"), [[cell(""), cell("validation", { header: true }), cell("test", { header: true })],
    ...names.map((name) => [cell(name, { header: true }),
      cell(validation[name] ?? "", { data: { metric: name, split: "validation" } }),
      cell(test[name] ?? "", { data: { metric: name, split: "test" } })])]);
  table($("report-parameters"), Object.entries(report.parameters || {}).map(([name, value]) =>
    [cell(name, { header: true }), cell(typeof value === "object" ? JSON.stringify(value) : String(value))]));
  const training = report.training || {};
  $("report-training").textContent = training.seconds === undefined ? "" :
    `${training.epochs} epochs in ${training.seconds.toFixed(1)} s on ${training.backend}`;
  const plot = $("training-plot");
  if (report.has_plot) {
    plot.src = "/playground/training.png";
    plot.hidden = false;
  }
}

async function openTab(panel) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.panel === panel);
  $("try").hidden = panel !== "try";
  $("report").hidden = panel !== "report";
  if (panel === "report" && !state.reportLoaded) {
    state.reportLoaded = true;
    showReport(await call("/playground/report"));
    document.body.dataset.report = "shown";
  }
}

let searchTimer;
async function configure() {
  const { api } = await call("/playground/config");
  if (api) {
    state.api = new GuestApi(api);
    $("target").textContent = `answers from ${api.apiUrl}, as a guest`;
  } else {
    $("target").textContent = "answers from this server's model";
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => openTab(tab.dataset.panel));
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 200);
  });
  $("add-by-id").addEventListener("submit", (event) => {
    event.preventDefault();
    const itemId = $("item-id").value.trim();
    if (itemId) addToSession(itemId);
    $("item-id").value = "";
  });
  $("clear").addEventListener("click", () => { state.session = []; refresh(); });
  $("k").addEventListener("change", refresh);
  $("exclude-seen").addEventListener("change", refresh);
  try {
    await configure();
  } catch (error) {
    $("status").textContent = error.message;
    $("status").className = "error";
  }
  refresh();
});
