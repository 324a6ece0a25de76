// The dashboard's few behaviours, from this file only (the CSP allows no inline script):
// a [data-poll] block is refreshed from its fragment URL for as long as the server's fragment
// keeps asking for it; [data-chart] blocks are drawn with uPlot; forms with [data-confirm] ask
// before they submit.
"use strict";

(() => {
  const COLOURS = { ended: "#2563eb", ok: "#16a34a", throttled: "#d97706" };

  function wire(root) {
    root.querySelectorAll("[data-chart]").forEach(drawChart);
    root.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    const polled = root.matches && root.matches("[data-poll]") ? [root] : root.querySelectorAll("[data-poll]");
    polled.forEach((block) => schedule(block, 0));
  }

  function schedule(block, failures) {
    const every = Number(block.dataset.every) || 2000;
    setTimeout(() => refresh(block, failures), failures ? Math.min(30000, every * 2 ** failures) : every);
  }

  async function refresh(block, failures) {
    let response;
    try {
      response = await fetch(block.dataset.poll, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      schedule(block, failures + 1); // the server is restarting, or gone: try again, more slowly
      return;
    }
    if (!response.ok) {
      block.dataset.refused = String(response.status); // e.g. 403 after the dashboard restarted
      return;
    }
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const fresh = template.content.firstElementChild;
    if (!fresh) return;
    block.replaceWith(fresh);
    wire(fresh);
  }

  function drawChart(box) {
    if (!window.uPlot) return;
    const data = JSON.parse(box.dataset.chart);
    const bars = window.uPlot.paths.bars({ size: [0.8, 48] });
    // A minute either side, so that a job of a minute or two is not drawn across years.
    const [first, last] = [data.x[0], data.x[data.x.length - 1]];
    const series = [
      { label: "ended/s", stroke: COLOURS.ended, fill: "rgba(37, 99, 235, 0.25)", paths: bars, points: { show: false } },
      { label: "ok/s", stroke: COLOURS.ok, width: 2, points: { show: true, size: 6 } },
      { label: "throttled/s", stroke: COLOURS.throttled, width: 2, points: { show: true, size: 6 } },
    ];
    const options = {
      width: Math.max(320, box.clientWidth),
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      height: 220,
      scales: {
        x: { time: true, auto: false, range: [first - 60, last + 60] },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      series: [{ label: "minute (UTC)" }, ...series],
      axes: [{}, { label: "items/s" }],
    };
    box.replaceChildren();
    new window.uPlot(options, [data.x, data.ended, data.ok, data.throttled], box);
  }

  document.addEventListener("DOMContentLoaded", () => wire(document));
})();
