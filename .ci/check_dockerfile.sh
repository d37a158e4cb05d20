#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine: hadolint, every COPY source
# exists in the build context, and the dependency stage's inputs build (a
# scratch copy of the context -> cargo chef prepare -> cargo chef cook of the
# recipe alone, as the image's layers do; debug profile and this checkout's
# target directory, so only the skeleton crates compile).
# Usage: .ci/check_dockerfile.sh HADOLINT
set -euo pipefail
cd "$(dirname "$0")/.."
hadolint=${1:?usage: .ci/check_dockerfile.sh HADOLINT}

echo "dockerfile: hadolint"
"$hadolint" Dockerfile

echo "dockerfile: COPY sources"
status=0
while read -r line; do
  # COPY [--flags] SRC... DEST; sources of --from=STAGE come from a stage.
  read -r -a words <<<"$line"
  case " ${words[*]} " in *" --from="*) continue ;; esac
  srcs=()
  for w in "${words[@]:1}"; do
    case "$w" in --*) ;; *) srcs+=("$w") ;; esac
  done
  for s in "${srcs[@]:0:${#srcs[@]}-1}"; do
    if [ ! -e "$s" ]; then echo "Dockerfile: COPY source '$s' does not exist" >&2; status=1; fi
  done
done < <(grep -E '^COPY ' Dockerfile)
[ "$status" -eq 0 ]

echo "dockerfile: cargo chef prepare + cook in a scratch copy of the context"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$scratch/"
target="$PWD/target"
(cd "$scratch" && cargo chef prepare --recipe-path "$scratch/recipe.json")
mkdir "$scratch/cook"
cp "$scratch/recipe.json" "$scratch/cook/"
(cd "$scratch/cook" && CARGO_TARGET_DIR="$target" cargo chef cook --locked --recipe-path recipe.json \
  -p nlimage-server -p nlimage-client)
echo "dockerfile: ok"
