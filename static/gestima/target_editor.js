/* The review screen's target editor, generated from the task's JSON Schema (data from the json_script element
   named by #target-editor[data-source]: schema, value, choices per field name, labels, server errors per path).

   The form still posts one field, "target" (the raw JSON textarea under "Advanced"): every edit here writes the
   whole target into it, and an edit of the raw JSON redraws the fields. Unknown keys are kept as they are.
   Checks here are for speed only (type, minimum, required, enum); the server checks again with the schema and
   its messages come back per field path ("$.operations[1].setup_min"), shown beside the same fields. */
(function () {
  "use strict";

// Set up the editor inside `scope`: the page on load, and each review screen the review script swaps in.
function targetEditor(scope) {
  const find = (id) => scope.querySelector(`#${id}`) || document.getElementById(id);
  const root = find("target-editor");
  const raw = find("review-target");
  const form = find("review-edit-form");
  if (!root || !raw || !form) return;
  const data = JSON.parse(find(root.dataset.source).textContent);
  const schema = data.schema || {};
  const choices = data.choices || {};
  const labels = data.labels || {};
  const rawNote = find("target-editor-raw-note");
  let state = parse(raw.value);
  if (!isObject(state)) state = isObject(data.value) ? data.value : {};
  let serverErrors = data.errors || {};

  function parse(text) { try { return JSON.parse(text); } catch (e) { return undefined; } }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function kind(s) {
    if (!s) return "other";
    if (s.enum || ["string", "number", "integer", "boolean"].includes(s.type)) return "scalar";
    if (s.type === "array" && s.items && ["string", "number", "integer"].includes(s.items.type)) return "list";
    if (s.type === "array" && s.items && s.items.type === "object" && s.items.properties) return "table";
    return "other";
  }
  function label(name) { return labels[name] || name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()); }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v !== undefined && v !== null) node.setAttribute(k, v); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function numeric(s) { return s && (s.type === "number" || s.type === "integer"); }
  function display(value, s) {
    if (value === undefined || value === null) return "";
    if (kind(s) === "list") return Array.isArray(value) ? value.join(", ") : String(value);
    return String(value);
  }
  function coerce(text, s) {
    if (kind(s) === "list") return text.split(",").map((p) => p.trim()).filter((p) => p !== "");
    if (numeric(s)) {
      const t = text.trim().replace(",", ".");
      if (t === "") return undefined;
      return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : text;  // not a number: kept, so the check can say so
    }
    if (s && s.type === "boolean") return text === "true";
    return text;
  }

  // The same rules as the schema, for the fields this editor draws; the message says what to do.
  function check(value, s, required) {
    if (value === undefined || value === "" || (Array.isArray(value) && value.length === 0 && (s.minItems || 0) > 0)) {
      return required || (s.minItems || 0) > 0 || (s.minLength || 0) > 0 ? "Required." : "";
    }
    if (numeric(s)) {
      if (typeof value !== "number") return "Enter a number.";
      if (s.type === "integer" && !Number.isInteger(value)) return "Enter a whole number.";
      if (s.minimum !== undefined && value < s.minimum) return `Must be ${s.minimum} or more.`;
      const floor = s.exclusiveMinimum;
      if (floor !== undefined && value <= floor) return `Must be more than ${floor}.`;
      if (s.maximum !== undefined && value > s.maximum) return `Must be ${s.maximum} or less.`;
    }
    if (s.enum && !s.enum.includes(value)) return `Choose one of: ${s.enum.join(", ")}.`;
    if (typeof value === "string" && s.minLength && value.trim().length < s.minLength) return "Required.";
    const long = typeof value === "string" && s.maxLength && value.length > s.maxLength;
    if (long) return `At most ${s.maxLength} characters.`;
    return "";
  }

  function control(name, s, value, path, required, onChange) {
    const id = "te-" + path.slice(2).replace(/[^A-Za-z0-9_]+/g, "-").replace(/-$/, "");
    let input;
    const options = choices[name];
    if (s.enum || (options && name === "machine")) {
      input = el("select", { id, "data-path": path });
      input.append(el("option", { value: "" }, "–"));
      const values = s.enum ? s.enum.map((v) => ({ value: v, label: "" })) : options;
      // A machine the table does not know stays selectable (and says so) rather than being silently dropped.
      if (value && !values.some((o) => o.value === value)) values.push({ value, missing: true });
      values.forEach((o) => input.append(el("option", { value: o.value, title: o.label || null },
                                            o.missing ? `${o.value} (not in the table)` : o.value)));
    } else {
      input = el("input", { id, type: "text", "data-path": path, autocomplete: "off", spellcheck: "false",
                            inputmode: numeric(s) ? "decimal" : null, list: options ? `te-choices-${name}` : null });
    }
    input.value = display(value, s);
    const message = el("span", { class: "target-editor-error", "data-error-for": path, role: "alert" });
    const validate = () => {
      const problem = check(coerce(input.value, s), s, required);
      message.textContent = problem;
      input.setAttribute("aria-invalid", problem ? "true" : "false");
      input.classList.toggle("target-editor-invalid", Boolean(problem));
      return problem;
    };
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
      const v = coerce(input.value, s);
      onChange(v);
      validate();
      sync();
    });
    input.validateField = validate;
    input.setAttribute("aria-describedby", id + "-error");
    message.id = id + "-error";
    return { input, message, id };
  }

  function setKey(obj, key, value) { if (value === undefined) delete obj[key]; else obj[key] = value; }

  function drawTable(name, s, path, container) {
    const rows = Array.isArray(state[name]) ? state[name] : (state[name] = []);
    const columns = Object.keys(s.items.properties);
    const required = s.items.required || [];
    const table = el("table", { class: "review-table target-editor-table", "data-path": path });
    const head = el("tr");
    columns.forEach((c) => head.append(el("th", {}, label(c))));
    head.append(el("th", {}, ""));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    rows.forEach((row, index) => {
      if (!isObject(row)) return;
      const tr = el("tr", { "data-path": `${path}[${index}]` });
      columns.forEach((c) => {
        const cs = s.items.properties[c];
        const td = el("td", { class: numeric(cs) ? "num" : null });
        const field = control(c, cs, row[c], `${path}[${index}].${c}`, required.includes(c), (v) => setKey(row, c, v));
        field.input.setAttribute("aria-label", `${label(c)}, row ${index + 1}`);
        td.append(field.input, field.message);
        tr.append(td);
      });
      const remove = el("button", { type: "button", class: "target-editor-remove", "data-row": index,
                                    "aria-label": `Remove row ${index + 1}` }, "✕");
      remove.addEventListener("click", () => { rows.splice(index, 1); sync(); draw(); });
      const cell = el("td");
      cell.append(remove);
      tr.append(cell);
      body.append(tr);
    });
    table.append(body);
    const add = el("button", { type: "button", class: "target-editor-add", id: `te-add-${name}` }, "+ Add row");
    add.addEventListener("click", () => {
      const row = {};
      columns.forEach((c) => { if (s.items.properties[c].type === "string") row[c] = ""; });
      rows.push(row);
      sync();
      draw();
      const inputs = root.querySelectorAll(`[data-path^="${path}[${rows.length - 1}]."]`);
      if (inputs.length) inputs[0].focus();
    });
    const arrayError = el("span", { class: "target-editor-error", "data-error-for": path, role: "alert" });
    container.append(el("h3", {}, label(name)), table, add, arrayError);
  }

  function draw() {
    root.replaceChildren();
    const required = schema.required || [];
    const facts = el("div", { class: "target-editor-fields" });
    const skipped = [];
    Object.entries(schema.properties || {}).forEach(([name, s]) => {
      const k = kind(s);
      if (k === "scalar" || k === "list") {
        const field = control(name, s, state[name], `$.${name}`, required.includes(name),
                              (v) => setKey(state, name, v));
        const row = el("div", { class: "target-editor-field" });
        row.append(el("label", { for: field.id }, label(name) + (k === "list" ? " (comma-separated)" : "")),
                   field.input, field.message);
        facts.append(row);
      } else if (k === "table") {
        const section = el("div", { class: "target-editor-section" });
        drawTable(name, s, `$.${name}`, section);
        facts.append(section);
      } else {
        skipped.push(name);
      }
    });
    if (skipped.length) facts.append(el("p", { class: "review-hint" }, `Edit ${skipped.join(", ")} under Advanced.`));
    Object.entries(choices).forEach(([name, options]) => {
      const list = el("datalist", { id: `te-choices-${name}` });
      options.forEach((o) => list.append(el("option", { value: o.value, label: o.label || null })));
      facts.append(list);
    });
    root.append(facts);
    showServerErrors();
  }

  // A server message goes beside the field of its path, or of the nearest enclosing one drawn here.
  function showServerErrors() {
    Object.entries(serverErrors).forEach(([path, message]) => {
      let p = path;
      while (p) {
        const slot = root.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
        if (slot) {
          slot.textContent = message;
          const input = root.querySelector(`[data-path="${CSS.escape(p)}"]`);
          if (input && input.tagName !== "TABLE") {
            input.setAttribute("aria-invalid", "true");
            input.classList.add("target-editor-invalid");
          }
          return;
        }
        const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
        p = cut > 1 ? p.slice(0, cut) : "";
      }
    });
  }

  function sync() {
    raw.value = JSON.stringify(state, null, 2);
    if (rawNote) rawNote.textContent = "";
  }

  raw.addEventListener("input", () => {
    const parsed = parse(raw.value);
    if (isObject(parsed)) {
      state = parsed;
      serverErrors = {};
      draw();
      if (rawNote) rawNote.textContent = "";
    } else if (rawNote) {
      rawNote.textContent = "Not valid JSON yet: the fields show the last valid target; "
        + "saving sends the JSON as typed.";
    }
  });

  form.addEventListener("submit", (event) => {
    if (!isObject(parse(raw.value))) return;  // raw text the fields cannot show: the server says what is wrong
    const problems = Array.from(root.querySelectorAll("[data-path]"))
      .filter((input) => input.validateField && input.validateField());
    if (problems.length) {
      event.preventDefault();
      problems[0].focus();
    }
  });

  draw();
}

  window.gestimaTargetEditor = targetEditor;
  targetEditor(document);
})();
