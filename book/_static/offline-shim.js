/* Offline support for ipywidgets in the static book (loaded after require.js, before embed-amd.js).
 *
 * 1. Fonts: the widget manager's CSS asks require.js for "@jupyter-widgets/html-manager/dist/*.woff2",
 *    which would resolve next to the page (404) or to a CDN. Map that AMD id to our local copy in
 *    _static/widgets/html-manager/ (fetched by tools/fetch_widgets.sh).
 * 2. MathJax: widget labels are typeset through the MathJax 2 API (MathJax.Hub.Queue); the book ships
 *    MathJax 3. Provide a tiny MathJax 2 -> 3 bridge so "$\alpha$" labels render instead of throwing
 *    "Cannot read properties of undefined (reading 'Queue')".
 */
(function () {
  var me = document.currentScript && document.currentScript.src;
  if (me && window.require) {
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": new URL("widgets/html-manager", me).href },
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var MJ = window.MathJax;
    if (MJ && MJ.startup && !MJ.Hub) {
      MJ.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (!el) return;
          // MathJax 3 has no "$" inline delimiter by default: rewrite $...$ to \(...\).
          el.textContent = el.textContent.replace(/\$([^$]+)\$/g, "\\($1\\)");
          MJ.startup.promise.then(function () { return MJ.typesetPromise([el]); });
        },
      };
    }
  });
})();
