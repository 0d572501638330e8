// OpenCTS console, Functions pages: the Create Trigger dialog. The page works without this script (the
// dialog is then a form on the page, with every field shown).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("create-trigger");
  if (!dialog) return;
  // Open as a modal dialog instead of following the link; Cancel and Escape close it.
  for (const opener of document.querySelectorAll("[data-dialog='create-trigger']")) {
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      if (dialog.open) dialog.close();
      dialog.showModal();
      dialog.querySelector("select, input:not([type=hidden])").focus();
    });
  }
  if (dialog.open) { dialog.close(); dialog.showModal(); }
  for (const closer of dialog.querySelectorAll("[data-close]")) {
    closer.addEventListener("click", (event) => { event.preventDefault(); dialog.close(); });
  }
  // Show the fields of the chosen trigger type only.
  const type = dialog.querySelector("[data-trigger-type]");
  const sync = () => {
    for (const part of dialog.querySelectorAll("[data-kind]")) part.hidden = part.dataset.kind !== type.value;
  };
  type.addEventListener("change", sync);
  sync();
  // Add Custom Operation: one more row, up to 25 (the form's field limit).
  const rows = dialog.querySelector("[data-op-rows]");
  const add = dialog.querySelector("[data-add-op]");
  add.hidden = false;
  add.addEventListener("click", () => {
    const count = rows.children.length;
    if (count >= 25) return;
    const row = rows.lastElementChild.cloneNode(true);
    for (const field of row.querySelectorAll("input")) {
      const part = field.name.replace(/_\d+$/, "");
      field.name = field.id = `${part}_${count}`;
      field.value = "";
    }
    for (const label of row.querySelectorAll("label")) {
      label.htmlFor = label.htmlFor.replace(/_\d+$/, `_${count}`);
      label.textContent = label.textContent.replace(/\d+/, String(count + 1));
    }
    rows.appendChild(row);
    row.querySelector("input").focus();
  });
});
