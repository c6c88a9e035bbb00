// Offline fleet map: meters (from the page's compact /map/meters.json) and concentrators
// (from /api/map/concentrators) drawn on a plain coordinate canvas (no tile server), meters
// clustered with Supercluster so 100,000 points stay fluid.
(function () {
  "use strict";
  const COLOURS = {
    registered: "#9e9e9e",
    linked: "#f0a202",
    commissioned: "#2b7bb9",
    reachable: "#1b998b",
    in_dc_table: "#2e7d32",
  };
  const canvas = document.getElementById("map");
  const status = document.getElementById("map-status");
  const ctx = canvas.getContext("2d");
  const view = { lon: -70.65, lat: -33.45, zoom: 9 };
  let index = null;
  let concentrators = [];

  function project(lon, lat, zoom) {
    const size = 256 * Math.pow(2, zoom);
    const sin = Math.sin((lat * Math.PI) / 180);
    const y = 0.5 - (0.25 * Math.log((1 + sin) / (1 - sin))) / Math.PI;
    return [((lon + 180) / 360) * size, Math.min(Math.max(y, 0), 1) * size];
  }
  function unproject(x, y, zoom) {
    const size = 256 * Math.pow(2, zoom);
    const lon = (x / size) * 360 - 180;
    const n = Math.PI - (2 * Math.PI * y) / size;
    return [lon, (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)))];
  }
  function toScreen(lon, lat) {
    const [cx, cy] = project(view.lon, view.lat, view.zoom);
    const [x, y] = project(lon, lat, view.zoom);
    return [x - cx + canvas.width / 2, y - cy + canvas.height / 2];
  }
  function bounds() {
    const [cx, cy] = project(view.lon, view.lat, view.zoom);
    const [w, n] = unproject(cx - canvas.width / 2, cy - canvas.height / 2, view.zoom);
    const [e, s] = unproject(cx + canvas.width / 2, cy + canvas.height / 2, view.zoom);
    return [w, s, e, n];
  }

  function graticule() {
    const [w, s, e, n] = bounds();
    const span = Math.max(e - w, n - s);
    const step = Math.pow(10, Math.floor(Math.log10(span))) / 2;
    ctx.strokeStyle = "#e3e7ec";
    ctx.fillStyle = "#8a96a3";
    ctx.font = "11px sans-serif";
    ctx.lineWidth = 1;
    for (let lon = Math.ceil(w / step) * step; lon <= e; lon += step) {
      const [x] = toScreen(lon, 0);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.stroke();
      ctx.fillText(lon.toFixed(2), x + 2, canvas.height - 4);
    }
    for (let lat = Math.ceil(s / step) * step; lat <= n; lat += step) {
      const [, y] = toScreen(0, lat);
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(canvas.width, y); ctx.stroke();
      ctx.fillText(lat.toFixed(2), 2, y - 2);
    }
  }

  function draw() {
    ctx.fillStyle = "#fbfcfd";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    graticule();
    if (index) {
      const clusters = index.getClusters(bounds(), Math.round(view.zoom));
      for (const c of clusters) {
        const [x, y] = toScreen(c.geometry.coordinates[0], c.geometry.coordinates[1]);
        if (c.properties.cluster) {
          const n = c.properties.point_count;
          const r = 8 + Math.min(22, Math.log2(n) * 2);
          ctx.fillStyle = "rgba(43,123,185,0.55)";
          ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill();
          ctx.fillStyle = "#0b2239";
          ctx.font = "11px sans-serif";
          ctx.textAlign = "center"; ctx.textBaseline = "middle";
          ctx.fillText(c.properties.point_count_abbreviated, x, y);
          ctx.textAlign = "start"; ctx.textBaseline = "alphabetic";
        } else {
          ctx.fillStyle = COLOURS[c.properties.lifecycle_state] || "#000";
          ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill();
        }
      }
    }
    for (const f of concentrators) {
      const [x, y] = toScreen(f.geometry.coordinates[0], f.geometry.coordinates[1]);
      ctx.fillStyle = f.properties.reachable ? "#5b2a86" : "#c62828";
      ctx.fillRect(x - 5, y - 5, 10, 10);
    }
  }

  function fit(lons, lats) {
    if (!lons.length) return;
    let w = 180, e = -180, s = 90, n = -90;
    for (let i = 0; i < lons.length; i++) {
      w = Math.min(w, lons[i]); e = Math.max(e, lons[i]);
      s = Math.min(s, lats[i]); n = Math.max(n, lats[i]);
    }
    view.lon = (w + e) / 2; view.lat = (s + n) / 2;
    for (view.zoom = 16; view.zoom > 1; view.zoom -= 1) {
      const [x1, y1] = project(w, n, view.zoom);
      const [x2, y2] = project(e, s, view.zoom);
      if (x2 - x1 < canvas.width * 0.9 && y2 - y1 < canvas.height * 0.9) break;
    }
  }

  async function load() {
    const [meters, dcs] = await Promise.all([
      fetch("/map/meters.json", { credentials: "same-origin" }).then((r) => r.json()),
      fetch("/api/map/concentrators", { credentials: "same-origin" }).then((r) => r.json()),
    ]);
    // Coordinates arrive as whole multiples of 1/scale degree; states as codes into
    // the `states` table.
    const meterLons = meters.lon.map((v) => v / meters.scale);
    const meterLats = meters.lat.map((v) => v / meters.scale);
    const points = new Array(meterLons.length);
    for (let i = 0; i < points.length; i++) {
      points[i] = {
        type: "Feature",
        geometry: { type: "Point", coordinates: [meterLons[i], meterLats[i]] },
        properties: { lifecycle_state: meters.states[meters.state[i]] },
      };
    }
    index = new Supercluster({ radius: 50, maxZoom: 16 }).load(points);
    concentrators = dcs.features;
    const lons = meterLons.concat(concentrators.map((f) => f.geometry.coordinates[0]));
    const lats = meterLats.concat(concentrators.map((f) => f.geometry.coordinates[1]));
    fit(lons, lats);
    canvas.dataset.meters = String(points.length);
    canvas.dataset.concentrators = String(concentrators.length);
    const skipped = meters.skipped_without_coordinates + dcs.skipped_without_coordinates;
    status.textContent = points.length + " / " + concentrators.length +
      (skipped ? " (" + skipped + " " + status.dataset.skipped + ")" : "");
    draw();
    canvas.dataset.ready = "true";
  }

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => { drag = [ev.clientX, ev.clientY]; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const [cx, cy] = project(view.lon, view.lat, view.zoom);
    [view.lon, view.lat] = unproject(cx - (ev.clientX - drag[0]), cy - (ev.clientY - drag[1]), view.zoom);
    drag = [ev.clientX, ev.clientY];
    requestAnimationFrame(draw);
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    view.zoom = Math.min(18, Math.max(2, view.zoom + (ev.deltaY < 0 ? 0.5 : -0.5)));
    requestAnimationFrame(draw);
  }, { passive: false });

  load().catch((err) => { status.textContent = String(err); });
})();
