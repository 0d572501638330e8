// Key Event Notifications: the operations picker (service -> resource type -> operations), from the
// operations catalogue the page embeds. Without this script the form still works: operations are typed
// one a line, and the ones already picked stay as ticked boxes.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // a refused form: the list of what to fix takes the focus, so a screen reader reads it first
  const errors = document.getElementById("form-errors");
  if (errors) errors.focus();
  const picker = document.querySelector("[data-picker]");
  const data = document.getElementById("catalogue");
  if (!picker || !data) return;
  const catalogue = JSON.parse(data.textContent);
  const service = document.getElementById("pick_service");
  const resource = document.getElementById("pick_resource");
  const ops = document.getElementById("pick_operations");
  const empty = document.getElementById("pick_empty");
  const list = document.getElementById("picked_list");
  const none = document.getElementById("picked_none");
  picker.hidden = false;

  const option = (value, text) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  };
  const clearOps = (hint) => {
    for (const label of ops.querySelectorAll("label")) label.remove();
    empty.textContent = hint;
    empty.hidden = false;
  };
  service.addEventListener("change", () => {
    resource.replaceChildren();
    const types = catalogue[service.value];
    if (!types) {
      resource.append(option("", "Choose a service first"));
      resource.disabled = true;
      clearOps("Choose a service and a resource type.");
      return;
    }
    resource.append(option("", "Choose a resource type"));
    for (const name of Object.keys(types)) resource.append(option(name, name));
    resource.disabled = false;
    clearOps("Choose a resource type.");
  });
  resource.addEventListener("change", () => {
    const names = (catalogue[service.value] || {})[resource.value];
    clearOps("Choose a resource type.");
    if (!names) return;
    empty.hidden = true;
    names.forEach((name, i) => {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      box.id = `pick_op_${i}`;
      label.append(box, ` ${name}`);
      ops.append(label);
    });
  });
  document.getElementById("pick_all").addEventListener("click", () => {
    for (const box of ops.querySelectorAll("input[type=checkbox]")) box.checked = true;
  });
  const picked = () => new Set([...list.querySelectorAll("input[name=op]")].map((b) => b.value));
  document.getElementById("pick_add").addEventListener("click", () => {
    const have = picked();
    let added = 0;
    for (const box of ops.querySelectorAll("input[type=checkbox]:checked")) {
      const value = JSON.stringify([service.value, resource.value, box.value]);
      box.checked = false;
      if (have.has(value)) continue;
      const item = document.createElement("li");
      const label = document.createElement("label");
      label.className = "check";
      const keep = document.createElement("input");
      keep.type = "checkbox";
      keep.name = "op";
      keep.value = value;
      keep.checked = true;
      label.append(keep, ` ${service.value} / ${resource.value} / ${box.value}`);
      item.append(label);
      list.append(item);
      added += 1;
    }
    if (added) none.hidden = true;
    const customized = document.querySelector("input[name=operation_type][value=customized]");
    if (added && customized) customized.checked = true;
  });
});
