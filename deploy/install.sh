#!/usr/bin/env bash
# Install one Portcullis service into a new virtual environment, from wheels built from
# this checkout and the third-party versions pinned in requirements.txt, and nothing
# else: the service's own dependency closure. Each image's build runs this, and so do
# the tests (tests/integration/test_deployment.py), which then start what it installed.
#
#   deploy/install.sh auth|resource TARGET
set -euo pipefail

service=${1:-}
target=${2:-}
case "$service" in
    auth | resource) ;;
    *)
        echo "usage: deploy/install.sh auth|resource TARGET" >&2
        exit 2
        ;;
esac
if [ -z "$target" ]; then
    echo "usage: deploy/install.sh auth|resource TARGET" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Pins for every third-party package; the workspace's own packages come as wheels.
grep -v '^-e ' "$root/requirements.txt" >"$work/constraints.txt"
member=$([ "$service" = auth ] && echo services/auth || echo services/resource)
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" \
    "$root/shared" "$root/$member" "$root/cli"

"$python" -m venv "$target"
"$target/bin/python" -m pip install --quiet --upgrade pip
"$target/bin/python" -m pip install --quiet --no-cache-dir \
    --find-links "$work/wheels" --constraint "$work/constraints.txt" \
    "portcullis-cli[$service]"
echo "installed the $service service in $target"
