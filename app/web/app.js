// movierec web page: plain JavaScript, no build step, no third-party code.
//
// Every request goes to this service with a relative URL (same origin, works under a path prefix). The
// session's ratings live in localStorage and travel with each request (POST /recommend, /explain,
// /predict/for-ratings): no account and no API key ever reach the browser.
"use strict";

(() => {
  const STORAGE_KEY = "movierec.session.v1";
  const FOR_YOU_K = 10; // length of the For you list
  const SIDE_K = 5; // of its summary beside the search results
  const REASONS = 2; // "because you rated" movies per recommendation
  const PAGE_SIZE = 20;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---- small DOM helpers ----------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function svgEl(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    appendAll(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function appendAll(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const byId = (id) => document.getElementById(id);

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function announce(text) {
    const region = byId("announcer");
    region.textContent = "";
    // A fresh text node after a tick makes screen readers announce a repeated message too.
    setTimeout(() => { region.textContent = text; }, 50);
  }

  function setStatus(node, text, isError = false) {
    node.textContent = text;
    node.classList.toggle("error", isError);
    if (isError) node.setAttribute("role", "alert");
    else node.removeAttribute("role");
  }

  // ---- titles ----------------------------------------------------------------------------------------

  const YEAR = /\s*\((\d{4})(?:\s*[-–]\s*\d{4})?\)\s*$/;
  const TRAILING_ARTICLE = /^([^(]*?), (The|A|An|Les|Le|La|L'|El|Il|Die|Der|Das|Los|Las)(\s*\(.*)?$/;

  // "Godfather, The (1972)" -> {name: "The Godfather", year: 1972}.
  function splitTitle(title) {
    const match = YEAR.exec(title);
    let name = match ? title.slice(0, match.index) : title;
    const article = TRAILING_ARTICLE.exec(name);
    if (article) {
      const sep = article[2].endsWith("'") ? "" : " ";
      name = `${article[2]}${sep}${article[1]}${article[3] || ""}`;
    }
    return { name: name.trim() || title, year: match ? Number(match[1]) : null };
  }

  function titleNode(movieId, title, year, tag = "span") {
    const parts = splitTitle(title);
    const shownYear = year ?? parts.year;
    return el(tag, { class: "movie-title" },
      el("a", { href: `#/movie/${movieId}`, text: parts.name }),
      shownYear ? el("span", { class: "year", text: ` (${shownYear})` }) : null);
  }

  const fmt = (x, digits = 2) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(digits));
  const starsText = (value) => `${fmt(value, 1)} star${Number(value) === 1 ? "" : "s"}`;

  // ---- API -------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, body) {
    const init = body === undefined
      ? { headers: { Accept: "application/json" } }
      : {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify(body),
      };
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "the service cannot be reached");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (err) { data = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.code) || "http_error",
        (data && data.detail) || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  const errorText = (err) => (err instanceof ApiError ? err.message : `unexpected error: ${err}`);

  // The model's rating scale, from GET /model (the stars' range).
  const scale = { min: 0.5, max: 5 };
  let modelInfo = null;

  async function loadModelInfo() {
    if (!modelInfo) {
      modelInfo = await api("model");
      const rs = modelInfo.data && modelInfo.data.rating_scale;
      if (Array.isArray(rs) && rs.length === 2) {
        scale.min = Math.max(0.5, Math.ceil(Number(rs[0]) * 2) / 2);
        scale.max = Number(rs[1]);
      }
    }
    return modelInfo;
  }

  // ---- the session's ratings ---------------------------------------------------------------------------

  const session = {
    ratings: new Map(), // movie_id -> {rating, title}
    listeners: new Set(),

    load() {
      this.ratings.clear();
      try {
        const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
        for (const [id, entry] of Object.entries(saved.ratings || {})) {
          if (entry && Number.isFinite(entry.rating)) {
            this.ratings.set(Number(id), { rating: entry.rating, title: String(entry.title || "") });
          }
        }
      } catch (err) {
        // A corrupt entry starts a fresh session rather than breaking the page.
      }
    },

    save() {
      try {
        localStorage.setItem(STORAGE_KEY, JSON.stringify({ ratings: Object.fromEntries(this.ratings) }));
      } catch (err) {
        announce("Your ratings could not be saved in this browser; they last until the page is closed.");
      }
    },

    get(movieId) {
      const entry = this.ratings.get(movieId);
      return entry ? entry.rating : null;
    },

    set(movieId, rating, title) {
      if (rating === null) this.ratings.delete(movieId);
      else this.ratings.set(movieId, { rating, title });
      this.save();
      this.changed(movieId);
    },

    clear() {
      this.ratings.clear();
      this.save();
      this.changed(null);
    },

    changed(movieId) {
      for (const listener of this.listeners) listener(movieId);
    },

    payload() {
      return [...this.ratings].map(([movieId, entry]) => ({ movie_id: movieId, rating: entry.rating }));
    },
  };

  // ---- the star rating widget --------------------------------------------------------------------------

  // Every widget on the page by movie id, so a rating given in one place shows in all of them.
  const widgets = new Map();
  let widgetCount = 0;

  function starPoints(cx, cy, outer, inner) {
    const points = [];
    for (let i = 0; i < 10; i += 1) {
      const radius = i % 2 === 0 ? outer : inner;
      const angle = -Math.PI / 2 + (i * Math.PI) / 5;
      points.push(`${(cx + radius * Math.cos(angle)).toFixed(2)},${(cy + radius * Math.sin(angle)).toFixed(2)}`);
    }
    return points.join(" ");
  }

  // A slider of half stars: arrow keys step by half a star, Home/End go to the ends, Delete clears, digits set
  // whole stars; a click or tap sets the half star under the pointer.
  function ratingWidget(movieId, title) {
    widgetCount += 1;
    const clipId = `stars-clip-${widgetCount}`;
    const stars = Math.round(scale.max);
    const width = stars * 24;
    const clipRect = svgEl("rect", { x: 0, y: 0, width: 0, height: 24 });
    const empty = svgEl("g", { class: "star-empty" });
    const full = svgEl("g", { class: "star-full", "clip-path": `url(#${clipId})` });
    for (let i = 0; i < stars; i += 1) {
      const pts = starPoints(12 + 24 * i, 12.5, 11, 4.6);
      empty.append(svgEl("polygon", { points: pts }));
      full.append(svgEl("polygon", { points: pts }));
    }
    const graphic = svgEl("svg", { viewBox: `0 0 ${width} 24`, "aria-hidden": "true", focusable: "false" },
      svgEl("defs", {}, svgEl("clipPath", { id: clipId }, clipRect)), empty, full);
    const { name } = splitTitle(title);
    const slider = el("div", {
      class: "stars",
      role: "slider",
      tabindex: "0",
      "aria-label": `Your rating of ${name}`,
      "aria-valuemin": "0",
      "aria-valuemax": String(scale.max),
      "data-movie-id": String(movieId),
    }, graphic);
    const valueText = el("span", { class: "rating-value", "aria-hidden": "true" });
    const clear = el("button", {
      type: "button",
      class: "button secondary small clear-rating",
      "aria-label": `Clear your rating of ${name}`,
      text: "Clear",
    });
    const root = el("div", { class: "rating" }, slider, valueText, clear);

    function show(value) {
      clipRect.setAttribute("width", String(((value || 0) / scale.max) * width));
    }

    function render() {
      const value = session.get(movieId);
      show(value);
      slider.setAttribute("aria-valuenow", String(value ?? 0));
      slider.setAttribute("aria-valuetext", value === null ? "not rated" : starsText(value));
      valueText.textContent = value === null ? "Not rated" : starsText(value);
      clear.hidden = value === null;
    }

    function commit(value) {
      const bounded = value === null ? null : Math.min(scale.max, Math.max(scale.min, Math.round(value * 2) / 2));
      if (bounded === session.get(movieId)) return;
      session.set(movieId, bounded, title);
      announce(bounded === null ? `Rating of ${name} cleared` : `Rated ${name} ${starsText(bounded)}`);
    }

    function valueAt(event) {
      const box = slider.getBoundingClientRect();
      const fraction = (event.clientX - box.left) / box.width;
      return Math.ceil(Math.min(1, Math.max(0, fraction)) * scale.max * 2) / 2;
    }

    slider.addEventListener("keydown", (event) => {
      const current = session.get(movieId);
      let next;
      switch (event.key) {
        case "ArrowRight":
        case "ArrowUp":
          next = current === null ? scale.min : current + 0.5;
          break;
        case "ArrowLeft":
        case "ArrowDown":
          next = current === null ? null : current - 0.5 < scale.min ? null : current - 0.5;
          break;
        case "Home":
          next = scale.min;
          break;
        case "End":
          next = scale.max;
          break;
        case "Delete":
        case "Backspace":
        case "0":
          next = null;
          break;
        default:
          if (/^[1-9]$/.test(event.key) && Number(event.key) <= scale.max) next = Number(event.key);
          else return;
      }
      event.preventDefault();
      commit(next);
    });
    slider.addEventListener("pointermove", (event) => show(valueAt(event)));
    slider.addEventListener("pointerleave", () => show(session.get(movieId)));
    slider.addEventListener("click", (event) => commit(valueAt(event)));
    clear.addEventListener("click", () => {
      commit(null);
      slider.focus();
    });

    render.node = root;
    if (!widgets.has(movieId)) widgets.set(movieId, new Set());
    widgets.get(movieId).add(render);
    render();
    return root;
  }

  function refreshWidgets(movieId) {
    const ids = movieId === null ? [...widgets.keys()] : [movieId];
    for (const id of ids) {
      for (const render of widgets.get(id) || []) render();
    }
  }

  // Widgets whose nodes left the page are forgotten when a list re-renders.
  function pruneWidgets() {
    for (const [id, renders] of widgets) {
      for (const render of renders) {
        if (!render.node.isConnected) renders.delete(render);
      }
      if (!renders.size) widgets.delete(id);
    }
  }

  const widgetFor = ratingWidget;

  // Re-rendering a list replaces the widget that may hold the focus: put the focus back on the same movie's
  // widget when it is still listed, else on `fallback` (the view's heading), so keyboard users keep their place.
  function keepFocus(container, fallback, rerender) {
    const active = document.activeElement;
    const inside = active && container.contains(active);
    const movieId = inside && active.closest("[data-movie-id]") ? active.closest("[data-movie-id]").dataset.movieId : null;
    rerender();
    if (!inside) return;
    const again = movieId && container.querySelector(`[data-movie-id="${movieId}"] .stars`);
    (again || fallback).focus();
  }

  // ---- recommendations (For you) ---------------------------------------------------------------------------

  const recs = { state: "empty", items: [], because: new Map(), error: "", ignored: [], basis: 0 };
  let recsRequest = 0;

  async function refreshRecommendations() {
    const request = ++recsRequest;
    const ratings = session.payload();
    if (!ratings.length) {
      Object.assign(recs, { state: "empty", items: [], because: new Map(), error: "", ignored: [] });
      renderRecommendations();
      return;
    }
    recs.state = "loading";
    renderRecommendationStatus();
    try {
      const list = await api("recommend", { ratings, k: FOR_YOU_K });
      const ids = list.items.map((item) => item.movie_id);
      const explained = ids.length
        ? await api("explain", { ratings, movie_ids: ids, n: REASONS })
        : { items: [] };
      if (request !== recsRequest) return; // a newer rating has asked again
      recs.state = "ok";
      recs.basis = ratings.length;
      recs.items = list.items;
      recs.ignored = list.ignored_movie_ids || [];
      recs.because = new Map(explained.items.map((item) => [item.movie_id, item.because]));
      recs.error = "";
      renderRecommendations();
      announce(`For you: ${recs.items.length} recommendations updated`);
    } catch (err) {
      if (request !== recsRequest) return;
      Object.assign(recs, { state: "error", error: errorText(err) });
      renderRecommendations();
    }
  }

  const scheduleRecommendations = debounce(refreshRecommendations, 250);

  function becauseNode(movieId) {
    const reasons = recs.because.get(movieId) || [];
    if (!reasons.length) return null;
    const parts = [];
    reasons.forEach((reason, i) => {
      if (i) parts.push(i === reasons.length - 1 ? " and " : ", ");
      parts.push(el("a", { href: `#/movie/${reason.movie_id}`, text: splitTitle(reason.title).name }));
      parts.push(` (${fmt(reason.rating, 1)}★)`);
    });
    return el("p", { class: "because" }, "Because you rated ", parts);
  }

  function renderRecommendationStatus() {
    const count = session.ratings.size;
    const messages = {
      empty: "Rate a movie or two and your recommendations appear here.",
      loading: "Updating your recommendations…",
      error: `Recommendations failed: ${recs.error}`,
      ok: recs.ignored.length
        ? `${recs.ignored.length} of your rated movies are unknown to the served model and were left out.`
        : `From your ${count} rating${count === 1 ? "" : "s"}.`,
    };
    for (const id of ["foryou-status", "side-status"]) {
      setStatus(byId(id), messages[recs.state], recs.state === "error");
    }
  }

  function renderRecommendations() {
    renderRecommendationStatus();
    const full = byId("foryou-list");
    const side = byId("side-foryou");
    if (recs.state === "loading") return; // keep the previous list until the new one arrives
    keepFocus(full, byId("foryou-title"), () => fillRecommendations(full, side));
    pruneWidgets();
  }

  function fillRecommendations(full, side) {
    full.replaceChildren();
    side.replaceChildren();
    // How many ratings the list answers: lets a script (and the browser tests) wait for the list of now.
    full.dataset.ratings = side.dataset.ratings = String(recs.state === "ok" ? recs.basis : 0);
    for (const item of recs.items) {
      full.append(el("li", { "data-movie-id": item.movie_id },
        el("div", { class: "movie-text" },
          titleNode(item.movie_id, item.title),
          el("div", { class: "meta", text: item.genres.join(" · ") || "no genres listed" }),
          el("div", { class: "predicted" }, "Predicted rating for you: ",
            el("strong", { text: fmt(item.predicted_rating, 1) }), " / ", String(scale.max)),
          becauseNode(item.movie_id)),
        widgetFor(item.movie_id, item.title)));
    }
    for (const item of recs.items.slice(0, SIDE_K)) {
      side.append(el("li", { "data-movie-id": item.movie_id },
        titleNode(item.movie_id, item.title), " ",
        el("span", { class: "meta", text: `${fmt(item.predicted_rating, 1)}★` })));
    }
  }

  let yourRatingsShown = "";

  // The list of rated movies, redrawn when movies join or leave it (a changed rating only redraws its stars).
  function renderYourRatings(force = true) {
    const ids = [...session.ratings.keys()].sort((a, b) => a - b).join(",");
    if (!force && ids === yourRatingsShown) return;
    yourRatingsShown = ids;
    const list = byId("your-ratings");
    keepFocus(list, byId("your-ratings-title"), () => fillYourRatings(list));
    byId("clear-ratings").hidden = !session.ratings.size;
    pruneWidgets();
  }

  function fillYourRatings(list) {
    list.replaceChildren();
    const entries = [...session.ratings].sort((a, b) => b[1].rating - a[1].rating);
    for (const [movieId, entry] of entries) {
      list.append(el("li", { "data-movie-id": movieId },
        el("div", { class: "movie-text" }, titleNode(movieId, entry.title)),
        widgetFor(movieId, entry.title)));
    }
    if (!entries.length) list.append(el("li", { class: "meta", text: "No ratings yet: find a movie and rate it." }));
  }

  function updateBadge() {
    const count = session.ratings.size;
    const badge = byId("rated-count");
    badge.textContent = String(count);
    badge.setAttribute("aria-label", `${count} movie${count === 1 ? "" : "s"} rated`);
  }

  // ---- Find and rate --------------------------------------------------------------------------------------

  const search = { request: 0, nextOffset: null };

  async function runSearch(append = false) {
    const request = ++search.request;
    const q = byId("q").value.trim();
    const genre = byId("genre").value;
    const offset = append ? search.nextOffset || 0 : 0;
    const params = new URLSearchParams({ q, limit: String(PAGE_SIZE), offset: String(offset) });
    if (genre) params.append("genre", genre);
    const status = byId("search-status");
    setStatus(status, "Searching…");
    try {
      const page = await api(`movies?${params}`);
      if (request !== search.request) return;
      byId("results-title").textContent = q ? `Titles matching “${q}”` : "Most rated movies";
      const list = byId("search-results");
      if (!append) list.replaceChildren();
      for (const movie of page.items) {
        list.append(el("li", { "data-movie-id": movie.movie_id },
          el("div", { class: "movie-text" },
            titleNode(movie.movie_id, movie.title, movie.year),
            el("div", { class: "meta", text: movie.genres.join(" · ") || "no genres listed" }),
            el("div", {
              class: "meta",
              text: `${movie.n_ratings} rating${movie.n_ratings === 1 ? "" : "s"}, mean ${fmt(movie.mean_rating, 1)}`,
            })),
          widgetFor(movie.movie_id, movie.title)));
      }
      search.nextOffset = page.next_offset;
      byId("more-results").hidden = page.next_offset === null;
      const shown = list.children.length;
      setStatus(status, page.total
        ? `${page.total} movie${page.total === 1 ? "" : "s"} found, ${shown} shown.`
        : "No title matches; try fewer or shorter words.");
      pruneWidgets();
    } catch (err) {
      if (request !== search.request) return;
      setStatus(status, `Search failed: ${errorText(err)}`, true);
    }
  }

  async function loadGenres() {
    const select = byId("genre");
    try {
      const genres = await api("genres");
      for (const genre of genres) select.append(el("option", { value: genre, text: genre }));
    } catch (err) {
      setStatus(byId("search-status"), `Genres could not be loaded: ${errorText(err)}`, true);
    }
  }

  // ---- Movie --------------------------------------------------------------------------------------------

  let movieRequest = 0;
  let currentMovie = null;

  async function showMovie(movieId) {
    const request = ++movieRequest;
    currentMovie = movieId;
    const body = byId("movie-body");
    const status = byId("movie-status");
    body.replaceChildren();
    byId("movie-title").textContent = "Movie";
    setStatus(status, "Loading…");
    try {
      const [movie, similar] = await Promise.all([api(`movies/${movieId}`), api(`movies/${movieId}/similar?k=10`)]);
      if (request !== movieRequest) return;
      const { name, year } = splitTitle(movie.title);
      byId("movie-title").textContent = year ? `${name} (${year})` : name;
      document.title = `${name} · movierec`;
      setStatus(status, "");
      const facts = el("dl", { class: "facts", id: "movie-facts" },
        el("dt", { text: "Genres" }), el("dd", { text: movie.genres.join(", ") || "none listed" }),
        el("dt", { text: "Ratings" }), el("dd", { text: String(movie.n_ratings) }),
        el("dt", { text: "Mean rating" }), el("dd", { text: fmt(movie.mean_rating, 2) }),
        el("dt", { text: "Learned bias" }),
        el("dd", { text: movie.bias === null ? "none (this model learns no biases)" : fmt(movie.bias, 3) }),
        el("dt", { text: "Predicted for you" }),
        el("dd", { id: "movie-prediction", text: "…" }));
      const similarList = el("ol", { class: "movie-list", id: "similar-list" });
      for (const item of similar.items) {
        similarList.append(el("li", { "data-movie-id": item.movie_id },
          el("div", { class: "movie-text" },
            titleNode(item.movie_id, item.title),
            el("div", { class: "meta", text: `${item.genres.join(" · ") || "no genres listed"}; similarity ${fmt(item.similarity, 2)}` })),
          widgetFor(item.movie_id, item.title)));
      }
      body.append(
        el("div", { class: "cards" },
          el("section", { class: "card", "aria-labelledby": "facts-title" },
            el("h2", { id: "facts-title", text: "Facts" }), facts),
          el("section", { class: "card", "aria-labelledby": "your-rating-title" },
            el("h2", { id: "your-rating-title", text: "Your rating" }), widgetFor(movie.movie_id, movie.title))),
        el("h2", { id: "similar-title", text: "Similar movies" }),
        el("p", { class: "lead", text: "Nearest by cosine similarity of the model's learned movie vectors." }),
        similarList);
      pruneWidgets();
      await showMoviePrediction(movieId);
    } catch (err) {
      if (request !== movieRequest) return;
      setStatus(status, err instanceof ApiError && err.status === 404
        ? "This movie is not in the served model's catalogue."
        : `The movie could not be loaded: ${errorText(err)}`, true);
    }
  }

  let predictionRequest = 0;

  async function showMoviePrediction(movieId) {
    const request = ++predictionRequest;
    const target = byId("movie-prediction");
    if (!target) return;
    const ratings = session.payload();
    if (!ratings.length) {
      target.textContent = "rate a few movies to get a prediction";
      return;
    }
    try {
      const result = await api("predict/for-ratings", { ratings, movie_ids: [movieId] });
      if (request !== predictionRequest || !target.isConnected) return;
      const count = ratings.length;
      target.textContent = `${fmt(result.predictions[0].predicted_rating, 2)} / ${scale.max} ` +
        `(from your ${count} rating${count === 1 ? "" : "s"})`;
    } catch (err) {
      if (request !== predictionRequest) return;
      target.textContent = `not available: ${errorText(err)}`;
    }
  }

  const scheduleMoviePrediction = debounce(() => {
    if (currentView === "movie" && currentMovie !== null) showMoviePrediction(currentMovie);
  }, 250);

  // ---- Model ---------------------------------------------------------------------------------------------

  function niceTicks(lo, hi, count = 5) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
    return ticks;
  }

  // Train and validation curves of one metric over epochs, as an accessible SVG with its data in a table.
  // `width` is the drawing's width in CSS pixels, so its text keeps its size on a phone.
  function learningChart(metric, train, valid, chosen, width) {
    const W = Math.round(Math.max(280, Math.min(600, width))), H = Math.round(120 + W * 0.3);
    const left = 64, right = 16, top = 16, bottom = 48;
    const values = [...(train || []), ...(valid || [])].filter((v) => v !== null && Number.isFinite(v));
    const epochs = Math.max((train || []).length, (valid || []).length);
    let lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
    lo -= pad; hi += pad;
    const x = (i) => left + (epochs <= 1 ? 0 : (i / (epochs - 1)) * (W - left - right));
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
    const titleId = `chart-${metric}-title`, descId = `chart-${metric}-desc`;
    const best = valid && valid.length ? Math.min(...valid.filter((v) => v !== null)) : null;
    const chart = svgEl("svg", {
      class: `chart chart-learning chart-${metric}`, viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-labelledby": `${titleId} ${descId}`,
    },
    svgEl("title", { id: titleId, text: `${metric} per epoch` }),
    svgEl("desc", {
      id: descId,
      text: `${epochs} epochs; training ${metric} from ${fmt(train && train[0], 3)} to ${fmt(train && train[train.length - 1], 3)}` +
        (best !== null ? `; lowest validation ${metric} ${fmt(best, 3)}` : ""),
    }));
    for (const t of niceTicks(lo, hi)) {
      chart.append(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: y(t), y2: y(t) }),
        svgEl("text", { x: left - 8, y: y(t) + 5, "text-anchor": "end", "font-size": 15, text: fmt(t, 3) }));
    }
    const xStep = Math.max(1, Math.ceil(epochs / 10));
    for (let i = 0; i < epochs; i += xStep) {
      chart.append(svgEl("text", { x: x(i), y: H - bottom + 20, "text-anchor": "middle", "font-size": 15, text: String(i + 1) }));
    }
    chart.append(
      svgEl("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }),
      svgEl("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom }),
      svgEl("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle", "font-size": 15, text: "epoch" }));
    if (chosen && chosen <= epochs) {
      chart.append(svgEl("line", { class: "chosen", x1: x(chosen - 1), x2: x(chosen - 1), y1: top, y2: H - bottom }));
    }
    const drawSeries = (series, kind) => {
      if (!series || !series.length) return;
      const points = series.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
      chart.append(svgEl("polyline", { class: `series-${kind}`, points: points.join(" ") }));
      series.forEach((v, i) => {
        if (v !== null) chart.append(svgEl("circle", { class: `dot-${kind}`, cx: x(i), cy: y(v), r: 3.5 }));
      });
    };
    drawSeries(train, "train");
    drawSeries(valid, "valid");

    const legend = el("div", { class: "legend", "aria-hidden": "true" },
      train ? el("span", {}, el("span", { class: "swatch train" }), "training") : null,
      valid ? el("span", {}, el("span", { class: "swatch valid" }), "validation") : null,
      chosen ? el("span", { text: `dotted line: epoch ${chosen}, the count chosen` }) : null);
    const rows = [];
    for (let i = 0; i < epochs; i += 1) {
      rows.push(el("tr", {}, el("td", { class: "num", text: String(i + 1) }),
        el("td", { class: "num", text: fmt(train && train[i], 4) }),
        el("td", { class: "num", text: fmt(valid && valid[i], 4) })));
    }
    const table = el("details", {}, el("summary", { text: `${metric}: the numbers` }),
      el("table", { class: "data" },
        el("thead", {}, el("tr", {}, el("th", { class: "num", scope: "col", text: "epoch" }),
          el("th", { class: "num", scope: "col", text: "training" }),
          el("th", { class: "num", scope: "col", text: "validation" }))),
        el("tbody", {}, rows)));
    return el("figure", { class: "card" }, el("h3", { text: metric === "rmse" ? "RMSE" : metric }), chart, legend, table);
  }

  function learningCurves(history, chosen, width) {
    const names = Object.keys(history);
    const metrics = [...new Set(names.map((n) => n.replace(/^val_/, "")))]
      .filter((m) => !/^(lr|learning_rate)$/.test(m))
      .sort((a, b) => (a === "rmse" ? -1 : b === "rmse" ? 1 : a.localeCompare(b)));
    return metrics
      .filter((m) => [history[m], history[`val_${m}`]].some((s) => s && s.some((v) => v !== null)))
      .map((m) => learningChart(m, history[m] || null, history[`val_${m}`] || null, chosen, width));
  }

  // Movies by learned bias as diverging horizontal bars (an SVG per row; the titles stay HTML text so they wrap
  // and scale on a phone).
  function biasChart(items, maxAbs, label) {
    const list = el("ol", { class: "bias-chart", "aria-label": label });
    const W = 140, mid = W / 2;
    for (const item of items) {
      const length = (Math.abs(item.bias) / maxAbs) * (mid - 2);
      const positive = item.bias >= 0;
      list.append(el("li", { class: "bias-row" },
        el("span", { class: "bias-title", title: item.title },
          el("a", { href: `#/movie/${item.movie_id}`, text: splitTitle(item.title).name })),
        svgEl("svg", { viewBox: `0 0 ${W} 14`, preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" },
          svgEl("rect", {
            class: positive ? "bar-positive" : "bar-negative",
            x: positive ? mid : mid - length, y: 2, width: Math.max(length, 0.5), height: 10,
          }),
          svgEl("line", { class: "zero", x1: mid, x2: mid, y1: 0, y2: 14 })),
        el("span", { class: "bias-value", text: `${positive ? "+" : ""}${fmt(item.bias, 2)}` })));
    }
    return list;
  }

  function factsList(entries) {
    const dl = el("dl", { class: "facts" });
    for (const [term, value] of entries) {
      if (value === undefined || value === null || value === "") continue;
      dl.append(el("dt", { text: term }), el("dd", { text: String(value) }));
    }
    return dl;
  }

  const METRIC_LABELS = {
    rmse: "Held-out RMSE", mae: "Held-out MAE", n_heldout: "Held-out ratings", validation_rmse: "Best validation RMSE",
    epochs: "Epochs chosen", split: "Split", train_seconds: "Training seconds",
  };

  async function showModel() {
    const status = byId("model-status");
    const body = byId("model-body");
    setStatus(status, "Loading…");
    body.replaceChildren();
    try {
      modelInfo = null; // always the model serving now: it may have been reloaded
      const [info, history, top, bottom] = await Promise.all([
        loadModelInfo(),
        api("model/history"),
        api("movies/bias-ranking?order=desc&limit=15").catch((err) => err),
        api("movies/bias-ranking?order=asc&limit=15").catch((err) => err),
      ]);
      setStatus(status, "");
      const metrics = info.metrics || {};
      const summary = el("section", { class: "card", id: "model-summary", "aria-labelledby": "summary-title" },
        el("h2", { id: "summary-title", text: "What is served" }),
        factsList([
          ["Kind", info.model_kind], ["Run", info.run_id],
          ["Created", String(info.created_at).replace("T", " ").replace(/\+00:00$/, " UTC")],
          ["Scorer", info.scorer], ["Device", info.device],
          ["Served model", info.served_model && info.served_model.fitted_on],
          ["Users × movies", `${info.n_users} × ${info.n_movies}`],
        ]));
      const metricRows = Object.entries(METRIC_LABELS)
        .filter(([key]) => metrics[key] !== undefined)
        .map(([key, text]) => {
          const value = metrics[key];
          if (typeof value !== "number" || Number.isInteger(value)) return [text, value];
          return [text, fmt(value, key.endsWith("seconds") ? 1 : 4)];
        });
      const metricsCard = el("section", { class: "card", "aria-labelledby": "metrics-title" },
        el("h2", { id: "metrics-title", text: "Metrics" }), factsList(metricRows),
        el("p", { class: "meta", text: info.evaluated_model ? `Measured on the model fitted on the ${info.evaluated_model.fitted_on}, scored on the ${info.evaluated_model.scored_on}.` : "" }));
      const data = info.data || {};
      const dataCard = el("section", { class: "card", "aria-labelledby": "data-title" },
        el("h2", { id: "data-title", text: "Data" }),
        factsList([
          ["File", data.ratings_file], ["Layout", data.layout], ["Ratings", data.n_ratings],
          ["Users", data.n_users], ["Movies", data.n_movies],
          ["Rating scale", Array.isArray(data.rating_scale) ? data.rating_scale.join(" to ") : null],
          ["SHA-256", data.sha256 ? `${String(data.sha256).slice(0, 16)}…` : null],
        ]));
      body.append(el("div", { class: "cards" }, summary, metricsCard, dataCard));

      body.append(el("h2", { id: "curves-title", text: "Learning curves" }));
      // A card's inner width: one card per row on a phone, two side by side from about 600px.
      const cardWidth = body.clientWidth >= 600 ? (body.clientWidth - 16) / 2 - 34 : body.clientWidth - 34;
      const curves = learningCurves(history.history || {}, history.epochs_chosen, cardWidth);
      if (curves.length) {
        body.append(el("p", { class: "lead", text: `Recorded on ${history.recorded_on}.` }), el("div", { class: "cards" }, curves));
      } else {
        body.append(el("p", { class: "notice", text: "This run recorded no per-epoch history." }));
      }

      body.append(el("h2", { id: "bias-title", text: "Movies by learned bias" }));
      if (top instanceof Error || bottom instanceof Error) {
        const err = top instanceof Error ? top : bottom;
        body.append(el("p", { class: "notice", text: errorText(err) }));
      } else {
        const maxAbs = Math.max(...[...top.items, ...bottom.items].map((i) => Math.abs(i.bias)), 1e-6);
        body.append(
          el("p", { class: "lead", text: `How much better or worse than expected each movie is rated, among the ${top.most_rated} most-rated movies (the notebook's analysis).` }),
          el("div", { class: "cards" },
            el("section", { class: "card", "aria-labelledby": "bias-top-title" },
              el("h3", { id: "bias-top-title", text: "Highest bias" }), biasChart(top.items, maxAbs, "Movies with the highest learned bias")),
            el("section", { class: "card", "aria-labelledby": "bias-bottom-title" },
              el("h3", { id: "bias-bottom-title", text: "Lowest bias" }), biasChart(bottom.items, maxAbs, "Movies with the lowest learned bias"))));
      }
    } catch (err) {
      setStatus(status, `The model could not be described: ${errorText(err)}`, true);
    }
  }

  // ---- routing ---------------------------------------------------------------------------------------------

  let currentView = null;
  const TITLES = { find: "Find and rate", "for-you": "For you", model: "Model", movie: "Movie" };

  function route() {
    const hash = location.hash || "#/";
    if (!hash.startsWith("#/")) return; // an in-page anchor, not a route
    const [name, arg] = hash.slice(2).split("/");
    let view = { "": "find", "for-you": "for-you", model: "model", movie: "movie" }[name] || "find";
    const movieId = Number(arg);
    if (view === "movie" && !(Number.isInteger(movieId) && movieId > 0)) view = "find";
    for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const first = currentView === null;
    currentView = view;
    document.title = `${TITLES[view]} · movierec`;
    if (view === "movie") showMovie(movieId);
    else currentMovie = null;
    if (view === "model") showModel();
    if (view === "for-you") renderYourRatings();
    if (!first) {
      const heading = document.querySelector(`[data-view="${view}"] h1`);
      if (heading) heading.focus();
    }
  }

  async function start() {
    session.load();
    updateBadge();
    byId("skip-link").addEventListener("click", (event) => {
      event.preventDefault();
      byId("main").focus();
    });
    session.listeners.add((movieId) => {
      updateBadge();
      refreshWidgets(movieId);
      scheduleRecommendations();
      scheduleMoviePrediction();
      if (currentView === "for-you") renderYourRatings(false);
    });
    window.addEventListener("storage", (event) => {
      if (event.key === STORAGE_KEY) {
        session.load();
        session.changed(null);
      }
    });
    byId("clear-ratings").addEventListener("click", () => {
      session.clear();
      renderYourRatings();
      announce("All your ratings were forgotten");
    });
    const searchSoon = debounce(() => runSearch(false), 200);
    byId("q").addEventListener("input", searchSoon);
    byId("genre").addEventListener("change", () => runSearch(false));
    byId("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      runSearch(false);
    });
    byId("more-results").addEventListener("click", () => runSearch(true));
    window.addEventListener("hashchange", route);

    try {
      await loadModelInfo(); // the rating scale, before any star widget is drawn
    } catch (err) {
      setStatus(byId("search-status"), `The service is not ready: ${errorText(err)}`, true);
    }
    route();
    loadGenres();
    runSearch(false);
    refreshRecommendations();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
