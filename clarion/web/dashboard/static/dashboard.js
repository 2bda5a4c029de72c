// Progressive enhancement only: every page works without this file.
"use strict";

function liveCounters() {
  const box = document.getElementById("live");
  if (!box || !window.EventSource) return;
  const source = new EventSource(box.dataset.src);
  source.addEventListener("counters", (event) => {
    const data = JSON.parse(event.data);
    for (const name of ["accepted", "delivered", "failed", "read"]) {
      const cell = document.getElementById("live-" + name);
      if (cell) cell.textContent = String(data[name] ?? 0);
    }
    const total = document.getElementById("total-accepted");
    if (total && data.accepted) {
      total.textContent = String(Number(total.textContent) + data.accepted);
    }
  });
  window.addEventListener("pagehide", () => source.close());
}

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

function livePreview() {
  const form = document.getElementById("template-form");
  if (!form) return;
  let timer = 0;
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const body = new URLSearchParams(new FormData(form));
      const r = await fetch(form.dataset.preview, {
        method: "POST",
        body,
        headers: { "X-Dashboard-Fragment": "preview" },
      });
      const target = document.getElementById("preview");
      if (target) target.innerHTML = await r.text();
    }, 300);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  liveCounters();
  confirmForms();
  livePreview();
});
