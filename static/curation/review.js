/* Review screen: a zoom-and-pan page viewer (plain JS) and the keyboard shortcuts shown in the legend.
   The page image is shown at its full resolution and moved with a CSS transform, so zooming in makes
   small dimension text readable instead of scaling a thumbnail up. */
(function () {
  "use strict";

  const root = document.getElementById("review");
  if (!root) return;

  // --- viewer ---------------------------------------------------------------------------------------
  const viewport = document.getElementById("review-viewport");
  const zoomLabel = document.getElementById("review-zoom-label");
  const pages = viewport ? Array.from(viewport.querySelectorAll("img.review-page")) : [];
  const pageButtons = Array.from(document.querySelectorAll(".review-page-button"));
  const MIN_SCALE = 0.05, MAX_SCALE = 8;
  let current = 0;
  let view = { scale: 1, x: 0, y: 0, fitted: true };

  function img() { return pages[current]; }
  function natural(image) {
    return { w: image.naturalWidth || +image.getAttribute("width"), h: image.naturalHeight || +image.getAttribute("height") };
  }
  function apply() {
    const image = img();
    if (!image) return;
    image.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    if (zoomLabel) zoomLabel.textContent = `${Math.round(view.scale * 100)} %`;
  }
  function fit() {
    const image = img();
    if (!image) return;
    const size = natural(image);
    const vw = viewport.clientWidth, vh = viewport.clientHeight;
    const scale = Math.min(vw / size.w, vh / size.h);
    view = { scale, x: (vw - size.w * scale) / 2, y: (vh - size.h * scale) / 2, fitted: true };
    apply();
  }
  // Zoom keeping the point (px, py) of the viewport where it is, so the detail under the cursor stays put.
  function zoomAt(factor, px, py) {
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, view.scale * factor));
    const k = scale / view.scale;
    view = { scale, x: px - (px - view.x) * k, y: py - (py - view.y) * k, fitted: false };
    apply();
  }
  function centre() { return [viewport.clientWidth / 2, viewport.clientHeight / 2]; }
  function actualAt(px, py) { zoomAt(1 / view.scale, px, py); }
  function showPage(index) {
    if (!pages.length) return;
    current = (index + pages.length) % pages.length;
    pages.forEach((p, i) => p.classList.toggle("hidden", i !== current));
    pageButtons.forEach((b, i) => b.classList.toggle("active", i === current));
    fit();
  }

  if (viewport && pages.length) {
    pages.forEach((p) => p.addEventListener("load", () => { if (p === img() && view.fitted) fit(); }));
    window.addEventListener("resize", () => { if (view.fitted) fit(); });
    viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = viewport.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - rect.left, event.clientY - rect.top);
    }, { passive: false });
    let drag = null;
    viewport.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
      viewport.setPointerCapture(event.pointerId);
      viewport.classList.add("dragging");
    });
    viewport.addEventListener("pointermove", (event) => {
      if (!drag) return;
      view.x = drag.vx + event.clientX - drag.x;
      view.y = drag.vy + event.clientY - drag.y;
      view.fitted = false;
      apply();
    });
    const endDrag = () => { drag = null; viewport.classList.remove("dragging"); };
    viewport.addEventListener("pointerup", endDrag);
    viewport.addEventListener("pointercancel", endDrag);
    viewport.addEventListener("dblclick", (event) => {
      const rect = viewport.getBoundingClientRect();
      if (Math.abs(view.scale - 1) < 0.01) fit(); else actualAt(event.clientX - rect.left, event.clientY - rect.top);
    });
    document.querySelectorAll("[data-zoom]").forEach((button) => button.addEventListener("click", () => {
      const kind = button.dataset.zoom;
      if (kind === "fit") fit();
      else if (kind === "actual") actualAt(...centre());
      else zoomAt(kind === "in" ? 1.25 : 0.8, ...centre());
    }));
    pageButtons.forEach((button) => button.addEventListener("click", () => showPage(+button.dataset.pageIndex)));
    fit();
  }

  // --- keyboard -------------------------------------------------------------------------------------
  const go = (url) => { if (url) window.location.assign(url); };
  const focusField = (id) => {
    const field = document.getElementById(id);
    if (field) { field.focus(); field.select && field.select(); }
  };
  const submit = (id) => {
    const form = document.getElementById(id);
    if (form) form.requestSubmit ? form.requestSubmit() : form.submit();
  };
  const legend = document.getElementById("review-legend");

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
    if (typing) {
      if (event.key === "Escape") target.blur();
      else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.id === "review-target") {
        event.preventDefault();
        submit("review-edit-form");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      a: () => submit("review-approve-form"),
      r: () => focusField("review-reason"),
      c: () => focusField("review-note"),
      e: () => {
        const edit = document.getElementById("review-edit");
        if (edit) { edit.open = true; focusField("review-target"); }
      },
      n: () => go(root.dataset.nextUrl),
      p: () => go(root.dataset.previousUrl),
      u: () => go(root.dataset.nextPendingUrl),
      "?": () => { if (legend) { legend.open = !legend.open; legend.classList.add("flash"); setTimeout(() => legend.classList.remove("flash"), 600); } },
      "+": () => viewport && zoomAt(1.25, ...centre()),
      "=": () => viewport && zoomAt(1.25, ...centre()),
      "-": () => viewport && zoomAt(0.8, ...centre()),
      "0": () => viewport && fit(),
      "1": () => viewport && actualAt(...centre()),
      "[": () => showPage(current - 1),
      "]": () => showPage(current + 1),
    };
    const action = actions[event.key];
    if (action) {
      // Keep the typed letter out of the field the shortcut focuses.
      event.preventDefault();
      action();
    }
  });
})();
