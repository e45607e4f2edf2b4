#!/usr/bin/env bash
# The one install step (`make install`, `.ci/run`): the Debian packages the tests run for real, the
# project virtualenv .venv (the operator, its test and lint tools, and the dev tools), and the
# binaries the local cluster and the e2e tests use, built once from Go modules and cached.
# Re-running it is cheap: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
VENV=${VENV:-.venv}
step() { printf '==> %s [%ds]\n' "$*" "$SECONDS"; }

step "toolchain check"
if ! command -v go >/dev/null 2>&1; then
  echo "Go 1.26 or newer is required to build the local cluster; install it and run again." >&2
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is required; python3 is $(python3 --version 2>&1)." >&2
  exit 1
fi
echo "$(go version), $(python3 --version)"

step "debian packages"
# g++         Ollama's CPU backend (ggml, llama.cpp) compiles through cgo;
# prometheus  SLOReview tests backfill it with promtool and query it;
# postgresql, redis-server  history and explanation-cache tests start their own servers;
# python3-venv  `python3 -m venv` on Debian (only when ensurepip is missing);
# the real node: containerd runc containernetworking-plugins (the container runtime and pod network),
#   iptables conntrack (kube-proxy, inside the node's own network namespace), iproute2 (namespaces, veth);
# images without Docker: debootstrap umoci skopeo (Debian root filesystems -> OCI archives).
APT_PACKAGES="g++ prometheus postgresql redis-server containerd runc containernetworking-plugins iptables conntrack iproute2 debootstrap umoci skopeo"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
# nodejs npm  the MCP Inspector (an independent MCP client the e2e tests run with npx); only when npx is
#   missing, as a Node from another source (NodeSource) ships its own npm.
command -v npx >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # shellcheck disable=SC2086  # word splitting wanted: one argument per package
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "all present"
fi

step "python virtualenv ($VENV)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# Reinstall only when a pyproject changes (editable installs pick up source changes by themselves).
STAMP="$VENV/.infragenius-install"
wanted=$(cat pyproject.toml devtools/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
  # editable_mode=compat: a plain path in a .pth file. The default for devtools/ (flat layout) is an
  # import hook that costs every Python start in the venv ~30 ms.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat \
    -e '.[test,dev]' -e ./devtools 2>&1 | { grep -v "Running pip as the 'root' user" || true; }
  "$VENV/bin/python" -c "import infragenius, infragenius_devtools, kopf, kubernetes, pydantic"  # fail early
  echo "$wanted" >"$STAMP"
else
  echo "up to date"
fi

step "local cluster binaries (built once from Go modules, cached by version)"
"$VENV/bin/infragenius-dev" devcluster build

step "real node binaries: kubelet, kube-proxy and CoreDNS (built once from Go modules, cached by version)"
"$VENV/bin/python" -c "from infragenius_devtools.devcluster.build import ensure_node_binaries; print(ensure_node_binaries())"

step "ollama (built once from Go modules with cgo, CPU only)"
"$VENV/bin/python" -c "from infragenius_devtools.devcluster.build import ensure_ollama; print(ensure_ollama())"

step "helm (built once from Go modules, cached by version; the chart tests run it)"
"$VENV/bin/python" -c "from infragenius_devtools.devcluster.build import ensure_helm; print(ensure_helm())"

step "OCI images for the real node, from Debian packages without Docker (cached by inputs; needs root)"
"$VENV/bin/infragenius-dev" images

step "installed"
