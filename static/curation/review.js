/* Review screen: a zoom-and-pan page viewer (plain JS), the keyboard shortcuts shown in the legend, and moving
   between examples without a page load.
   The page image is shown at its full resolution and moved with a CSS transform, so zooming in makes small
   dimension text readable instead of scaling a thumbnail up.
   Speed: while the reviewer reads one example, the examples the keys lead to (next pending, next, previous)
   are fetched as HTML fragments and their first drawing page decoded; a key then swaps the fetched screen in
   place (history.pushState, so the URL and the back button stay right).
   A decision (a, or reject / needs changes with their text) is optimistic: its POST starts, and the next pending
   example fetched in advance is shown at once while the server stores it. The decision is kept in
   sessionStorage until the server says it is stored; when it is refused or the post fails, a banner on whatever
   screen is shown names the example and offers a retry (it survives page loads until retried or dismissed).
   When the server's next is not the one shown (someone else took it) the screen loads the server's one. */
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
  // `known`: the viewport's size when the caller knows it without a layout (a swapped-in screen's viewport has the
  // size of the one it replaces: the same grid column and height), so the first fit forces no layout of its own.
  function makeViewer(screen, known = null) {
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
      const box = known || { w: viewport.clientWidth, h: viewport.clientHeight };
      const vw = box.w, vh = box.h;
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
      // Fitted to a size taken from the screen before: checked against its own in the frame that draws it (one
      // layout, which that frame does anyway), in case a scrollbar came or went.
      if (known) requestAnimationFrame(() => { known = null; if (view.fitted) fit(); });
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
    promise.then((next) => { promise.ready = next; }, () => null);  // decide() posts later when it is ready
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
    // A decision still being posted is answered first: its outcome is then known to the next page.
    afterSending(() => window.location.assign(url));
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
    const oldViewport = root.querySelector("#review-viewport");  // laid out already: reading it costs nothing
    const known = oldViewport && oldViewport.clientWidth ? { w: oldViewport.clientWidth, h: oldViewport.clientHeight } : null;
    root.replaceWith(next);
    root = next;
    history.pushState({ review: root.dataset.exampleId }, "", url);
    document.title = document.title.replace(/^[^|]*/, `${root.dataset.title} `);
    const crumb = document.getElementById("review-crumb");
    if (crumb) { crumb.href = root.dataset.changeUrl; crumb.textContent = `#${root.dataset.exampleId}`; }
    showMessage(flash);
    window.scrollTo(0, 0);
    viewer = makeViewer(root, known);
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

  // The next pending example after the one on screen, as the server reads it once a decision is stored.
  function setNextPending(url) {
    if (url === (root.dataset.nextPendingUrl || "")) return;
    root.dataset.nextPendingUrl = url;
    const old = root.querySelector("#review-next-pending");
    if (!old) return;
    const fresh = document.createElement(url ? "a" : "span");
    fresh.id = "review-next-pending";
    fresh.className = url ? "button" : "button disabled";
    if (url) {
      fresh.href = url;
      fresh.append("Next pending ");
      const key = document.createElement("kbd");
      key.textContent = "u";
      fresh.append(key);
    } else fresh.textContent = "No other pending";
    old.replaceWith(fresh);
  }

  // --- decisions ------------------------------------------------------------------------------------
  // Every decision the server has not confirmed: {id, url, decision, body, state: "sending" | "failed", error}.
  // Kept in sessionStorage so a page load (the back button reloads) never drops one without a word.
  const UNSAVED_KEY = "gestima-review-unsaved";
  const VERBS = { approve: "Approving", reject: "Rejecting", needs_changes: "Marking as needing changes" };
  const STATUS_AFTER = { approve: "approved", reject: "rejected", needs_changes: "needs_changes" };
  let unsaved = [];
  try { unsaved = JSON.parse(sessionStorage.getItem(UNSAVED_KEY) || "[]"); } catch (error) { unsaved = []; }
  const sending = new Set();  // the posts under way in this document

  function keepUnsaved(record) {
    unsaved = unsaved.filter((other) => other.id !== record.id).concat(record.state ? [record] : []);
    sessionStorage.setItem(UNSAVED_KEY, JSON.stringify(unsaved));
    showUnsaved();
  }
  function forget(record) { record.state = null; keepUnsaved(record); }
  function fail(record, error) { record.state = "failed"; record.error = error; keepUnsaved(record); }

  function afterSending(then) {
    if (!sending.size) then();
    else Promise.allSettled(Array.from(sending)).then(then);
  }

  // The banner above the screen: one line per decision the server refused or never got, naming its example.
  function showUnsaved() {
    const main = document.getElementById("content-start");
    const failed = unsaved.filter((record) => record.state === "failed");
    let banner = document.getElementById("review-unsaved");
    if (!failed.length || !main) { if (banner) banner.remove(); return; }
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "review-unsaved";
      banner.className = "review-unsaved";
      banner.setAttribute("role", "alert");
      main.insertBefore(banner, main.querySelector("ul.messagelist") || document.getElementById("content"));
    }
    banner.replaceChildren(...failed.map((record) => {
      const line = document.createElement("p");
      line.className = "review-unsaved-item";
      line.dataset.exampleId = record.id;
      const text = document.createElement("span");
      text.textContent = `Not saved: ${VERBS[record.decision] || "Deciding on"} example #${record.id} failed. ${record.error} `;
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "review-unsaved-retry";
      retry.textContent = `Retry #${record.id}`;
      retry.addEventListener("click", () => { retry.disabled = true; resend(record); });
      const open = document.createElement("a");
      open.href = record.url;
      open.textContent = `Open example #${record.id}`;
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "review-unsaved-dismiss";
      dismiss.textContent = "Dismiss";
      dismiss.addEventListener("click", () => forget(record));
      line.append(text, retry, " ", open, " ", dismiss);
      return line;
    }));
  }

  function sendable(body) {
    // The token of this document: a retry after a new login (rotated CSRF secret) still passes.
    const params = new URLSearchParams(body);
    const token = document.querySelector("[name=csrfmiddlewaretoken]");
    if (token) params.set("csrfmiddlewaretoken", token.value);
    return params;
  }

  function refusal(response) {
    if (response.redirected && /\/login\//.test(response.url)) return "Your session has ended: log in again, then retry.";
    return `The server answered ${response.status} ${response.statusText}.`.replace(" .", ".");
  }

  // Post a decision; the answer is the server's JSON ({message, next_url, ...}) or {error}. The record stays
  // in sessionStorage until the server confirms it, and is marked failed (with the reason) when it does not.
  function send(record, { after = null } = {}) {
    record.state = "sending";
    keepUnsaved(record);
    const posting = (async () => {
      if (after) await after;
      let answer;
      try {
        const response = await fetch(record.url, {
          // Form-encoded, not multipart: the server parses it in a fraction of the time. keepalive: the post
          // reaches the server even when the reviewer leaves the page meanwhile.
          method: "POST", body: sendable(record.body), credentials: "same-origin", keepalive: true,
          headers: { Accept: "application/json" },
        });
        answer = await response.json().catch(() => ({}));
        if (!response.ok || !answer.next_url) answer = { error: answer.error || refusal(response) };
      } catch (error) {
        answer = { error: `The server could not be reached (${error.message}).` };
      }
      performance.mark("review:answered");
      if (answer.error) fail(record, answer.error); else forget(record);
      return answer;
    })();
    sending.add(posting);
    posting.finally(() => sending.delete(posting));
    return posting;
  }

  async function resend(record) {
    const answer = await send(record);
    if (!answer.error) showMessage({ level: "success", text: answer.message });
  }

  // Once the server answered a decision made optimistically: the screen shown meanwhile is `shown`.
  function settled(record, answer, shown) {
    prefetched.delete(record.url);  // its screen changed with the decision (or someone else's)
    const here = root === shown;
    if (answer.error) {
      if (here) showMessage(null);  // the "Saving" line: the banner says what happened instead
    } else if (here && answer.next_url !== shown.dataset.url) {
      // Someone else took the example shown: the server's next, loaded as a page load shows it.
      fullLoad(answer.next_url, { level: "success", text: answer.message });
      return;
    } else if (here) {
      setNextPending(answer.next_pending_url || "");
      showMessage({ level: "success", text: answer.message });
    }
    if (root.dataset.shownAt) prefetchNeighbours();
  }

  async function decide(form) {
    const body = new URLSearchParams(new FormData(form)).toString();
    const record = { id: root.dataset.exampleId, url: root.dataset.url, decision: new URLSearchParams(body).get("decision"), body };
    const guess = root.dataset.nextPendingUrl;
    // A decision the example already has is refused for sure ("already approved"): said here, on the example.
    const repeated = root.dataset.status === STATUS_AFTER[record.decision];
    const ahead = guess && guess !== record.url && !repeated ? prefetched.get(guess) : null;
    // Optimistic: the next pending example fetched in advance goes on screen now, the post runs behind it.
    const showNext = (next, answering) => {
      prefetched.delete(guess);
      swapIn(guess, next, { level: "info", text: `Saving: ${VERBS[record.decision] || "Deciding on"} example #${record.id}…` });
      const shown = root;
      answering.then((answer) => settled(record, answer, shown));
    };
    if (ahead && ahead.ready) {
      // Ready: on screen in this task, and the post starts right after the frame that draws it (the server and
      // the browser's painting share the machine's cores). The decision is in sessionStorage from now on, so a
      // page left before the post is still told (checkLeftBehind).
      const painted = new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      showNext(ahead.ready, send(record, { after: painted }));
      return;
    }
    const answering = send(record);
    if (ahead) {
      const next = await ahead.catch(() => null);  // still loading: the post runs meanwhile
      if (next && root.dataset.url === record.url) {
        showNext(next, answering);
        return;
      }
    }
    // Nothing ready to show (no other pending example, or its fetch failed): the screen waits for the answer.
    const answer = await answering;
    if (answer.error) {
      forget(record);  // shown on this very example instead of in the banner
      showMessage({ level: "error", text: answer.error });
      return;
    }
    // Everything fetched ahead was read before this decision changed the data.
    const keep = prefetched.get(answer.next_url);
    prefetched = new Map(keep ? [[answer.next_url, keep]] : []);
    await moveTo(answer.next_url, { level: "success", text: answer.message });
  }

  // A decision sent by an earlier page that left before its answer: the example's status says whether it was
  // stored; when not, it goes to the banner with its retry.
  async function checkLeftBehind(records) {
    for (const record of records) {
      if (!unsaved.includes(record)) continue;  // decided again (or dismissed) on this page meanwhile
      let status = null;
      try {
        const response = await fetch(fragmentUrl(record.url), { credentials: "same-origin", headers: { Accept: "text/html" } });
        const found = response.ok && new DOMParser().parseFromString(await response.text(), "text/html").getElementById("review");
        status = found ? found.dataset.status : null;
      } catch (error) { status = null; }
      if (!unsaved.includes(record)) continue;
      if (status === STATUS_AFTER[record.decision]) forget(record);
      else fail(record, "The page changed before the server answered, and the example does not show the decision.");
    }
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
  window.addEventListener("popstate", () => afterSending(() => window.location.reload()));
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
  showUnsaved();
  const leftBehind = unsaved.filter((record) => record.state === "sending");
  // After a second: a post the last page sent as it was left (keepalive) has reached the server by then.
  if (leftBehind.length) setTimeout(() => checkLeftBehind(leftBehind), 1000);
})();
