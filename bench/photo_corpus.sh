#!/usr/bin/env bash
# Builds the real-photograph corpus the tests and benchmarks use, from
# Debian packages (wallpaper photographs: 1-24 MP JPEGs, baseline and
# progressive, many with EXIF, some with ICC profiles and XMP), into
# target/photo-corpus/ (or $1): one copy of each distinct file, named by
# the first 16 hex digits of its SHA-256, plus an index (index.tsv: name,
# bytes, package path). Needs apt-get (download only, no install) and
# dpkg-deb. Then the phone formats, in DIR/phone: the four smallest photos
# as HEIC (HEVC, x265) and AVIF (AV1, libaom), written by Debian's heif-enc
# (libheif-examples, which `./setup.sh test` installs), keeping the photos'
# EXIF and ICC.
#   bench/photo_corpus.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/photo-corpus}
phone_formats() {
  local dir="$out/phone" f name
  [ -f "$dir/done" ] && return 0
  command -v heif-enc >/dev/null 2>&1 || {
    echo "photo corpus: heif-enc not found (apt install libheif-examples)" >&2
    exit 1
  }
  mkdir -p "$dir"
  while read -r f; do
    name=${f%.jpg}
    heif-enc -q 60 -o "$dir/$name.heic" "$out/$f" >/dev/null
    heif-enc -A -q 60 -o "$dir/$name.avif" "$out/$f" >/dev/null
  done < <(sort -t$'\t' -k2,2n "$out/index.tsv" | head -n 4 | cut -f1)
  touch "$dir/done"
  echo "photo corpus: $(find "$dir" -name '*.heic' -o -name '*.avif' | wc -l) HEIC and AVIF files in $dir"
}
if [ -f "$out/index.tsv" ] && [ "$(wc -l < "$out/index.tsv")" -ge 40 ]; then
  echo "photo corpus: $(wc -l < "$out/index.tsv") photos in $out"
  phone_formats
  exit 0
fi
packages=(plasma-workspace-wallpapers gnome-backgrounds mate-backgrounds ukui-wallpapers
  lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 sway-backgrounds)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${packages[@]}" >/dev/null 2>&1) || {
  echo "photo corpus: apt-get download failed (no network to Debian's mirrors?)" >&2
  exit 1
}
for d in "$work"/*.deb; do dpkg-deb -x "$d" "$work/x"; done
mkdir -p "$out"
: > "$out/index.tsv.tmp"
find "$work/x" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -size +100k | sort | while read -r f; do
  sum=$(sha256sum "$f" | cut -c1-16)
  if [ ! -f "$out/$sum.jpg" ]; then
    cp "$f" "$out/$sum.jpg"
    printf '%s.jpg\t%s\t%s\n' "$sum" "$(stat -c %s "$f")" "${f#"$work"/x}" >> "$out/index.tsv.tmp"
  fi
done
mv "$out/index.tsv.tmp" "$out/index.tsv"
echo "photo corpus: $(wc -l < "$out/index.tsv") photos in $out"
phone_formats
