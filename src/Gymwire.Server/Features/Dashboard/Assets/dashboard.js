// Gymwire dashboard: the copy buttons next to shown-once secrets. A file, not inline script: the CSP allows only 'self'.
"use strict";
document.querySelectorAll("button[data-copy]").forEach((button) => { button.hidden = false; });
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copy + "-status");
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard access (an insecure origin, or denied): select it so the owner can copy with the keyboard.
    field.focus();
    field.select();
    if (status) status.textContent = "Selected: press Ctrl+C (⌘C on a Mac) to copy.";
  }
});
