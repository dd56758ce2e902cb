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

// Deliveries in flight (a redelivery, a retry being sent) refresh without a reload: the page marks them with
// class in-flight under an element with data-poll-url (a class: Razor renders a data- attribute even when its value is null), a JSON handler that answers their current state.
const pollEvery = 1500;
document.querySelectorAll("[data-poll-url]").forEach((root) => {
  const own = root.hasAttribute("data-delivery-id");
  const inFlight = () => own ? (root.classList.contains("in-flight") ? [root] : []) : [...root.querySelectorAll("[data-delivery-id].in-flight")];
  const update = (target, d) => {
    const badge = target.querySelector(".badge");
    if (badge) {
      badge.textContent = d.label;
      badge.className = "badge " + d.css;
    }
    target.dataset.status = d.status;
    const attempts = target.querySelector(".attempts");
    if (attempts) attempts.textContent = String(d.attempts);
    const response = target.querySelector(".response-cell");
    if (response && (d.status_code !== null || d.error)) {
      response.textContent = "";
      const text = document.createElement(d.status_code !== null ? "strong" : "span");
      text.className = d.status_code !== null ? "status-code" : "error-text";
      text.textContent = d.status_code !== null ? String(d.status_code) : d.error;
      response.append(text);
    }
    if (!d.settled) return;
    target.classList.remove("in-flight");
    target.querySelectorAll("form.redeliver[hidden]").forEach((form) => { form.hidden = false; });
    if (target.classList.contains("reload-when-settled")) location.reload();
  };
  const tick = async () => {
    const targets = inFlight();
    if (targets.length === 0) return;
    const url = new URL(root.dataset.pollUrl, location.href);
    if (!own) targets.forEach((t) => url.searchParams.append("ids", t.dataset.deliveryId));
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const body = await response.json();
        for (const d of body.deliveries) {
          const target = targets.find((t) => t.dataset.deliveryId === d.id);
          if (target) update(target, d);
        }
      }
    } catch {
      // The server is restarting or the network dropped: try again on the next tick.
    }
    setTimeout(tick, pollEvery);
  };
  setTimeout(tick, pollEvery);
});

// Forms: the pressed button says its request is running ("Sending test…"), a second press sends nothing more, and a
// request still running after the button's data-slow-after milliseconds says so in the status line beside it.
// A GET form (a filter, a download) is left alone: repeating it changes nothing, and a download never leaves the
// page, so a guard would keep its buttons busy until a reload.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const method = (event.submitter && event.submitter.getAttribute("formmethod")) || form.method;
  if (method.toLowerCase() === "get") return;
  if (form.dataset.submitting === "true") {
    event.preventDefault();
    return;
  }
  form.dataset.submitting = "true";
  const button = event.submitter instanceof HTMLButtonElement ? event.submitter : form.querySelector("button[type=submit]");
  if (!button) return;
  button.dataset.label = button.textContent;
  button.setAttribute("aria-busy", "true");
  button.classList.add("busy");
  if (button.dataset.busy) button.textContent = button.dataset.busy;
  // Disabled after the browser has read the form, so the button's own name and value still go with it.
  setTimeout(() => { button.disabled = true; }, 0);
  const status = form.parentElement && form.parentElement.querySelector("[data-progress-for]");
  if (status) status.textContent = button.dataset.busy || "Working…";
  const slowAfter = Number(button.dataset.slowAfter);
  if (slowAfter > 0 && button.dataset.slow) {
    setTimeout(() => {
      button.classList.add("slow");
      if (status) status.textContent = button.dataset.slow;
    }, slowAfter);
  }
});
// Back to a page kept in the browser's cache: its buttons are idle again.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  document.querySelectorAll("form[data-submitting]").forEach((form) => { delete form.dataset.submitting; });
  document.querySelectorAll("button[aria-busy]").forEach((button) => {
    button.removeAttribute("aria-busy");
    button.classList.remove("busy", "slow");
    button.disabled = false;
    if (button.dataset.label) button.textContent = button.dataset.label;
  });
  document.querySelectorAll("[data-progress-for]").forEach((status) => { status.textContent = ""; });
});

// The event picker: choosing an event means "Only the events I choose"; "All events" clears the choice; each
// category has a select-all button.
document.querySelectorAll("[data-event-picker]").forEach((picker) => {
  const all = picker.querySelector("#events-all");
  const chosen = picker.querySelector("#events-chosen");
  const boxes = () => picker.querySelectorAll("input[type=checkbox]");
  picker.querySelectorAll("button[data-select-group]").forEach((button) => { button.hidden = false; });
  picker.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement)) return;
    if (input.type === "checkbox" && input.checked && chosen) chosen.checked = true;
    if (input === all && all.checked) boxes().forEach((box) => { box.checked = false; });
  });
  picker.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-select-group]") : null;
    if (!button) return;
    const group = picker.querySelector(`[data-event-group="${button.dataset.selectGroup}"]`);
    if (!group) return;
    group.querySelectorAll("input[type=checkbox]:not([data-alias-of])").forEach((box) => { box.checked = true; });
    if (chosen) chosen.checked = true;
  });
});

// Set-up: preselect the browser's own time zone where the server knows it; the owner can still choose another.
document.querySelectorAll("select[data-detect-time-zone='true']").forEach((select) => {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return;
  }
  if (zone === "UTC" || zone === "Etc/UTC") return;
  if (select.value === "UTC" && [...select.options].some((o) => o.value === zone)) select.value = zone;
});
