#!/usr/bin/env bash
# Fetch the ipywidgets JavaScript the static book needs, from the npm registry only (no CDN at view time).
#   tools/fetch_widgets.sh [DEST]          (DEST defaults to book/_static/widgets, which is git-ignored)
# Versions are pinned: html-manager 1.0.15 bundles @jupyter-widgets/base ^6 and controls ^5, which is what
# ipywidgets 8.1.x (requirements.txt) saves as widget state. Bump them together.
set -euo pipefail
HTML_MANAGER_VERSION="${HTML_MANAGER_VERSION:-1.0.15}"
REQUIREJS_VERSION="${REQUIREJS_VERSION:-2.3.8}"
DEST="${1:-book/_static/widgets}"

command -v npm >/dev/null 2>&1 || { echo "fetch_widgets: npm is required (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@${HTML_MANAGER_VERSION}" "requirejs@${REQUIREJS_VERSION}" >/dev/null )

rm -rf "$DEST.partial" && mkdir -p "$DEST.partial/html-manager"
tar xzf "$tmp/requirejs-${REQUIREJS_VERSION}.tgz" -O package/require.js > "$DEST.partial/require.js"
tar xzf "$tmp/jupyter-widgets-html-manager-${HTML_MANAGER_VERSION}.tgz" -C "$DEST.partial/html-manager" \
  --strip-components=2 --wildcards 'package/dist/embed-amd.js' 'package/dist/*.woff' 'package/dist/*.woff2' \
  'package/dist/*.ttf' 'package/dist/*.eot' 'package/dist/*.svg'
test -s "$DEST.partial/require.js" && test -s "$DEST.partial/html-manager/embed-amd.js"
printf 'html-manager %s\nrequirejs %s\n' "$HTML_MANAGER_VERSION" "$REQUIREJS_VERSION" > "$DEST.partial/VERSIONS"
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"     # atomic-ish: a failed fetch never leaves a half directory
echo "fetch_widgets: $(du -sh "$DEST" | cut -f1) in $DEST"
