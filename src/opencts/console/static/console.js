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
  // Code editors (Functions): Tab indents and Shift+Tab dedents the selected lines by four spaces, Enter keeps
  // the line's indentation (one level more after a colon or an opening bracket). Escape hands Tab back to the
  // page for one press, so the keyboard can always leave the editor (WCAG 2.1.2, no keyboard trap).
  for (const editor of document.querySelectorAll("textarea.code")) {
    const hint = document.getElementById(editor.getAttribute("aria-describedby") || "");
    if (hint) hint.hidden = false;
    let released = false;
    const put = (text, start, end) => {
      editor.setSelectionRange(start, end);
      // execCommand keeps the edit on the browser's undo stack; setRangeText is the fallback.
      if (!document.execCommand || !document.execCommand("insertText", false, text)) {
        editor.setRangeText(text, start, end, "end");
      }
    };
    editor.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { released = true; return; }
      if (["Shift", "Control", "Alt", "Meta"].includes(event.key)) return;
      const wasReleased = released;
      released = false;
      if (event.key !== "Tab" && event.key !== "Enter") return;
      if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
      if (event.key === "Tab" && wasReleased) return;
      const value = editor.value;
      const start = editor.selectionStart;
      const end = editor.selectionEnd;
      const lineStart = value.lastIndexOf("\n", start - 1) + 1;
      event.preventDefault();
      if (event.key === "Enter") {
        const line = value.slice(lineStart, start);
        const indent = line.match(/^ */)[0] + (/[:{[(]\s*$/.test(line) ? "    " : "");
        put("\n" + indent, start, end);
      } else if (!event.shiftKey && start === end) {
        put(" ".repeat(4 - ((start - lineStart) % 4)), start, end);
      } else {
        // Indent or dedent every line the selection touches (a selection ending just after a newline
        // leaves the next line alone), then keep those lines selected, or the caret where it was.
        const last = end > start && value[end - 1] === "\n" ? end - 1 : end;
        const found = value.indexOf("\n", last);
        const lineEnd = found < 0 ? value.length : found;
        const block = value.slice(lineStart, lineEnd);
        const text = block
          .split("\n")
          .map((line) => (event.shiftKey ? line.replace(/^ {1,4}/, "") : "    " + line))
          .join("\n");
        put(text, lineStart, lineEnd);
        if (start === end) {
          const caret = Math.max(lineStart, start - (block.length - text.length));
          editor.setSelectionRange(caret, caret);
        } else {
          editor.setSelectionRange(lineStart, lineStart + text.length);
        }
      }
    });
  }
  // Destructive forms ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
