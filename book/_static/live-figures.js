/* Live figures of the static book (tools/live_figures.py precomputes them at build time).
 * Each .ck-live block holds one range input per slider, an <img>, and the images of every setting of
 * the grid as JSON (row-major over the sliders). Moving a slider shows the image of the new setting.
 * No kernel, no network: the images are in the page. */
(function () {
  "use strict";
  function wire(root) {
    var data = JSON.parse(root.querySelector("script.ck-live-data").textContent);
    var inputs = Array.prototype.slice.call(root.querySelectorAll("input.ck-live-slider"));
    var img = root.querySelector("img.ck-live-img");
    function show() {
      var k = 0;
      inputs.forEach(function (input, d) {
        var i = Number(input.value);
        k = k * data.shape[d] + i;
        input.nextElementSibling.textContent = data.labels[d][i];
      });
      img.src = "data:image/png;base64," + data.frames[k];
      img.setAttribute("data-frame", String(k));
    }
    inputs.forEach(function (input) { input.addEventListener("input", show); });
  }
  function init() { document.querySelectorAll(".ck-live").forEach(wire); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
