#!/usr/bin/env bash
# deploy/k8s offline: every manifest against the Kubernetes API schemas
# (kubernetes-validate from PyPI, --strict: unknown fields fail), the
# kustomization names exactly the manifests there are, and every flag the
# Deployment passes is one nl-server accepts.
set -euo pipefail
validate=$1 server=$2
cd "$(dirname "$0")/.."
mapfile -t listed < <(sed -n 's/^  - \(.*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml)
mapfile -t present < <(find deploy/k8s -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -printf '%f\n')
if [ "$(printf '%s\n' "${listed[@]}" | sort)" != "$(printf '%s\n' "${present[@]}" | sort)" ]; then
  echo "ci: deploy/k8s/kustomization.yaml lists ${listed[*]}; the directory has ${present[*]}" >&2
  exit 1
fi
"$validate" --strict --quiet "${listed[@]/#/deploy/k8s/}"
help=$("$server" --help)
while read -r flag; do
  if ! grep -q -- "$flag" <<<"$help"; then
    echo "ci: deploy/k8s/deployment.yaml passes $flag, which nl-server does not accept" >&2
    exit 1
  fi
done < <(grep -o -- '- --[a-z-]*' deploy/k8s/deployment.yaml | sed 's/^- //')
echo "ci: deploy/k8s: ${#listed[@]} manifests valid"
