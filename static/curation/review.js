/* Review screen: a zoom-and-pan page viewer (plain JS), the keyboard shortcuts shown in the legend, and moving
   between examples without a page load.
   The page image is shown at its full resolution and moved with a CSS transform, so zooming in makes small
   dimension text readable instead of scaling a thumbnail up.
   Speed: while the reviewer reads one example, the examples the keys lead to (next pending, next, previous)
   are fetched as HTML fragments and their first drawing page decoded; a key then swaps the fetched screen in
   place (history.pushState, so the URL and the back button stay right). A decision is posted first and the
   screen moves only on the server's answer; when the server's next is not the one fetched (someone else took
   it) or anything fails, the screen falls back to a normal page load. */
(function () {
  "use strict";

  let root = document.getElementById("review");
  if (!root) return;

  const DECISION_FORMS = ["review-approve-form", "review-reject-form", "review-needs-changes-form"];
  const FLASH_KEY = "gestima-review-flash";
  let viewer = null;   // the viewer of the example on screen
  let busy = false;    // a decision or a swap is under way: keys wait for it
  // review url -> Promise of the screen element: the examples the keys may lead to, fetched and decoded in advance.
  let prefetched = new Map();

  // --- viewer ---------------------------------------------------------------------------------------
  function makeViewer(screen) {
    const viewport = screen.querySelector("#review-viewport");
    const zoomLabel = screen.querySelector("#review-zoom-label");
    const pages = viewport ? Array.from(viewport.querySelectorAll("img.review-page")) : [];
    const pageButtons = Array.from(screen.querySelectorAll(".review-page-button"));
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
      if (!img()) return;
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
      screen.querySelectorAll("[data-zoom]").forEach((button) => button.addEventListener("click", () => {
        const kind = button.dataset.zoom;
        if (kind === "fit") fit();
        else if (kind === "actual") actualAt(...centre());
        else zoomAt(kind === "in" ? 1.25 : 0.8, ...centre());
      }));
      pageButtons.forEach((button) => button.addEventListener("click", () => showPage(+button.dataset.pageIndex)));
      fit();
    }
    return {
      firstImage: pages[0] || null,
      resized: () => { if (view.fitted) fit(); },
      zoomIn: () => viewport && zoomAt(1.25, ...centre()),
      zoomOut: () => viewport && zoomAt(0.8, ...centre()),
      fit: () => viewport && fit(),
      actual: () => viewport && actualAt(...centre()),
      page: (step) => showPage(current + step),
    };
  }

  // --- "shown" marker ---------------------------------------------------------------------------------
  // Set once the example's first drawing page is decoded and a frame with it has been drawn: what a reviewer
  // sees as "the next example is there" (benchmarks/review.py and the browser tests wait for it).
  function markShown(screen) {
    const image = viewer.firstImage;
    const decoded = image ? image.decode().catch(() => null) : Promise.resolve();
    decoded.then(() => requestAnimationFrame(() => setTimeout(() => {
      if (screen !== root) return;
      performance.mark("review:shown");
      screen.dataset.shownAt = String(performance.timeOrigin + performance.now());
      prefetchNeighbours();
    }, 0)));
  }

  // --- fetching ahead -----------------------------------------------------------------------------------
  function fragmentUrl(url) { return url.replace(/\/review\/$/, "/review/fragment/"); }

  function prefetch(url) {
    if (!url || prefetched.has(url)) return;
    const promise = fetch(fragmentUrl(url), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => {
        if (!response.ok) throw new Error(`The server answered ${response.status}.`);
        return response.text();
      })
      .then((html) => {
        const parsed = new DOMParser().parseFromString(html, "text/html").getElementById("review");
        if (!parsed) throw new Error("No review screen in the answer.");
        // Adopted into this document, its images load now; the first page is decoded off screen, so the swap
        // paints at once.
        const next = document.adoptNode(parsed);
        const page = next.querySelector("img.review-page");
        return page ? page.decode().then(() => next) : next;
      });
    // A failed fetch is forgotten: that key then makes a normal page load.
    promise.catch(() => { if (prefetched.get(url) === promise) prefetched.delete(url); });
    prefetched.set(url, promise);
  }

  function prefetchNeighbours() {
    const data = root.dataset;
    const wanted = [data.nextPendingUrl, data.nextUrl, data.previousUrl].filter(Boolean);
    // Only the screens the keys lead to from here are kept (each holds a decoded drawing in memory).
    for (const url of Array.from(prefetched.keys())) if (!wanted.includes(url)) prefetched.delete(url);
    wanted.forEach(prefetch);
  }

  // --- moving between examples ------------------------------------------------------------------------
  function fullLoad(url, flash) {
    if (flash) sessionStorage.setItem(FLASH_KEY, JSON.stringify({ ...flash, path: new URL(url, location.href).pathname }));
    window.location.assign(url);
  }

  function showMessage(flash) {
    const main = document.getElementById("content-start");
    if (main) main.querySelectorAll("ul.messagelist").forEach((list) => list.remove());
    if (!flash || !main) return;
    const list = document.createElement("ul");
    list.className = "messagelist";
    const item = document.createElement("li");
    item.className = flash.level;
    item.textContent = flash.text;
    list.appendChild(item);
    main.insertBefore(list, document.getElementById("content"));
  }

  function swapIn(url, next, flash) {
    const legend = root.querySelector("#review-legend");
    const nextLegend = next.querySelector("#review-legend");
    if (legend && nextLegend) nextLegend.open = legend.open;  // "?" folds the legend for the whole session
    if (document.activeElement && root.contains(document.activeElement)) document.activeElement.blur();
    root.replaceWith(next);
    root = next;
    history.pushState({ review: root.dataset.exampleId }, "", url);
    document.title = document.title.replace(/^[^|]*/, `${root.dataset.title} `);
    const crumb = document.getElementById("review-crumb");
    if (crumb) { crumb.href = root.dataset.changeUrl; crumb.textContent = `#${root.dataset.exampleId}`; }
    showMessage(flash);
    window.scrollTo(0, 0);
    viewer = makeViewer(root);
    if (window.gestimaTargetEditor) window.gestimaTargetEditor(root);  // the form editor of the new screen
    performance.mark("review:swapped");  // the marks time the steps of a move (benchmarks/review.py prints them)
    markShown(root);
  }

  // Show the example at `url`: the one fetched in advance when there is one, else a normal page load.
  async function moveTo(url, flash) {
    const ahead = prefetched.get(url);
    if (!ahead || url === root.dataset.url) { fullLoad(url, flash); return; }
    let next;
    try {
      next = await ahead;
    } catch (error) {
      fullLoad(url, flash);
      return;
    }
    prefetched.delete(url);  // the element now belongs to the screen
    swapIn(url, next, flash);
  }

  // A decision is stored before the screen moves: post it, read the answer, and stay with the error shown
  // when it is refused or the post fails.
  async function decide(form) {
    let answer;
    try {
      const response = await fetch(root.dataset.url, {
        // Form-encoded, not multipart: the server parses it in a fraction of the time.
        method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      answer = await response.json().catch(() => ({ error: `The server answered ${response.status} ${response.statusText}.` }));
      if (!response.ok && !answer.error) answer.error = `The server answered ${response.status}.`;
    } catch (error) {
      answer = { error: `Not saved: the server could not be reached (${error.message}).` };
    }
    performance.mark("review:answered");
    if (answer.error) {
      showMessage({ level: "error", text: answer.error });
      return;
    }
    // Everything fetched ahead was read before this decision changed the data.
    const keep = prefetched.get(answer.next_url);
    prefetched = new Map(keep ? [[answer.next_url, keep]] : []);
    await moveTo(answer.next_url, { level: "success", text: answer.message });
  }

  async function exclusive(work) {
    if (busy) return;
    busy = true;
    try { await work(); } finally { busy = false; }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!DECISION_FORMS.includes(form.id) || !root.contains(form)) return;
    event.preventDefault();
    exclusive(() => decide(form));
  });

  // The nav buttons move like their keys (a click with a modifier still opens a tab, as a link does).
  const NAV_LINKS = ["review-previous", "review-next", "review-next-pending"];
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a");
    if (!link || !NAV_LINKS.includes(link.id) || !root.contains(link)) return;
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(link.getAttribute("href"));
  });

  // The entries pushed here belong to this document: going back or forward loads the example at that address,
  // so it shows the example as it is now (also when the browser brings this page back from its cache).
  window.addEventListener("popstate", () => window.location.reload());
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });
  window.addEventListener("resize", () => viewer && viewer.resized());

  // --- keyboard -------------------------------------------------------------------------------------
  const go = (url) => { if (url) exclusive(() => moveTo(url, null)); };
  const focusField = (id) => {
    const field = document.getElementById(id);
    if (field) { field.focus(); field.select && field.select(); }
  };
  const submit = (id) => {
    const form = document.getElementById(id);
    if (form) form.requestSubmit ? form.requestSubmit() : form.submit();
  };

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
    const legend = document.getElementById("review-legend");
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
      "+": () => viewer.zoomIn(),
      "=": () => viewer.zoomIn(),
      "-": () => viewer.zoomOut(),
      "0": () => viewer.fit(),
      "1": () => viewer.actual(),
      "[": () => viewer.page(-1),
      "]": () => viewer.page(1),
    };
    const action = actions[event.key];
    if (action) {
      // Keep the typed letter out of the field the shortcut focuses.
      event.preventDefault();
      action();
    }
  });

  // --- start ----------------------------------------------------------------------------------------
  const flash = JSON.parse(sessionStorage.getItem(FLASH_KEY) || "null");
  sessionStorage.removeItem(FLASH_KEY);
  if (flash && flash.path === location.pathname) showMessage(flash);
  history.replaceState({ review: root.dataset.exampleId }, "");
  viewer = makeViewer(root);
  markShown(root);
})();
