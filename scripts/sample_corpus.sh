#!/usr/bin/env bash
# Put real CS manuals (bash, R, flex, SBCL, camlidl) from Debian's doc packages into $1.
# Needs apt-get (no root: `apt-get download` + `dpkg-deb -x` only).
set -euo pipefail
dest=${1:-data/corpus}
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "The sample corpus comes from Debian packages, and apt-get/dpkg-deb are not available here." >&2
  echo "Use your own PDFs instead: copy them into $dest/ (or pass CORPUS=/path/to/pdfs to make)." >&2
  exit 1
fi
mkdir -p "$dest"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
pkgs="bash-doc r-doc-pdf flex-doc sbcl-doc camlidl-doc"
if ! apt-get download $pkgs >/dev/null 2>apt.err; then
  # a fresh machine may have empty package lists: update them once (needs root) and retry
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
  apt-get download $pkgs >/dev/null 2>apt.err || { cat apt.err >&2;
    echo "Could not download the sample PDFs. Copy your own PDFs into $dest/ instead." >&2; exit 1; }
fi
for deb in *.deb; do dpkg-deb -x "$deb" x; done
cd - >/dev/null
for f in usr/share/doc/bash/bashref.pdf usr/share/R/doc/manual/R-intro.pdf usr/share/R/doc/manual/R-lang.pdf \
         usr/share/doc/camlidl/camlidl-1.04.doc.pdf; do
  cp "$work/x/$f" "$dest/"
done
for f in usr/share/doc/flex-doc/flex.pdf.gz usr/share/doc/sbcl/sbcl.pdf.gz; do
  name=$(basename "$f" .gz)
  gunzip -c "$work/x/$f" > "$dest/$name.tmp" && mv "$dest/$name.tmp" "$dest/$name"
done
echo "Sample corpus in $dest/:"; ls -l "$dest"/*.pdf | awk '{printf "  %-28s %6.1f MB\n", $NF, $5/1e6}'
