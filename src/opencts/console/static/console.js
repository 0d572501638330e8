// OpenCTS console: small progressive enhancements. Every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Trace List: a row's button shows or hides its key fields.
  for (const button of document.querySelectorAll("button.expand")) {
    button.addEventListener("click", () => {
      const details = document.getElementById(button.getAttribute("aria-controls"));
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      details.hidden = !open;
    });
  }
  // Trace List: the custom range's fields only when "Custom range" is chosen.
  const range = document.querySelector("select[data-range]");
  if (range) {
    const sync = () => {
      for (const field of document.querySelectorAll("[data-custom]")) field.hidden = range.value !== "custom";
    };
    range.addEventListener("change", sync);
    sync();
  }
  // Login: show the fields of the chosen method.
  const login = document.querySelector("form[data-login]");
  if (login) {
    const sync = () => {
      const chosen = login.querySelector("input[name=method]:checked").value;
      for (const part of login.querySelectorAll("[data-method]")) part.hidden = part.dataset.method !== chosen;
    };
    for (const radio of login.querySelectorAll("input[name=method]")) radio.addEventListener("change", sync);
    sync();
  }
  // Destructive forms ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
