# shellcheck shell=bash
# Installs what the demo and the tests need when it is missing, and says what it installs.
# Sourced by ./run-tests and ./run-demo; needs only bash and Python 3.11+ (Debian's python3).
#
# - Debian packages, with apt-get (as root; otherwise it prints the command to run as root);
# - Node.js 20.19+ from the npm registry (package `node`) when Debian's is older (Debian 12 has 18);
# - uv, tox and tox-uv from PyPI, in a virtual environment under $TOOLS_HOME, linked into
#   ~/.local/bin (where uv's own installer puts uv);
# - the test identity provider's npm packages (npm ci --prefix tests/idp).

TOOLS_HOME="${XDG_DATA_HOME:-$HOME/.local/share}/microcloud-cluster-manager"
LINK_DIR="$HOME/.local/bin"
export PATH="$LINK_DIR:$TOOLS_HOME/node/node_modules/.bin:$PATH"

say() { printf '==> %s\n' "$*"; }

# Prints the Debian packages (of postgresql, prometheus, chromium, nodejs, npm) that are missing.
missing_debian_packages() {
    local package missing=()
    for package in "$@"; do
        case "$package" in
            postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
                || command -v initdb >/dev/null || missing+=(postgresql) ;;
            prometheus) command -v prometheus >/dev/null || missing+=(prometheus) ;;
            chromium) [ -n "${CLUSTER_MANAGER_CHROMIUM:-}" ] || command -v chromium >/dev/null \
                || missing+=(chromium) ;;
            nodejs) command -v node >/dev/null || missing+=(nodejs) ;;
            npm) command -v npm >/dev/null || missing+=(npm) ;;
            *) command -v "$package" >/dev/null || missing+=("$package") ;;
        esac
    done
    echo "${missing[*]}"
}

# apt-get install the packages among "$@" that are missing.
need_debian_packages() {
    local missing
    read -r -a missing <<<"$(missing_debian_packages "$@")"
    ((${#missing[@]})) || return 0
    apt_install "${missing[@]}"
}

# apt-get install "$@" as root; as another user, say how and stop.
apt_install() {
    local missing=("$@")
    if [ "$(id -u)" -ne 0 ]; then
        say "Missing Debian packages: ${missing[*]}. Install them as root, then run this again:"
        echo "    sudo apt-get update && sudo apt-get install --no-install-recommends ${missing[*]}"
        exit 1
    fi
    say "Installing Debian packages: ${missing[*]} (apt-get update, apt-get install)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Node.js 20.19 or later: Debian 12's is 18, so then the npm package `node@20` (the official
# binaries, from the npm registry) goes to $TOOLS_HOME/node.
need_node() {
    local check='const [a, b] = process.versions.node.split(".").map(Number);
        process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
    node -e "$check" 2>/dev/null && return 0
    say "Node.js $(node --version) is older than 20.19: installing node@20 from npm into $TOOLS_HOME/node"
    mkdir -p "$TOOLS_HOME/node"
    npm install --prefix "$TOOLS_HOME/node" --no-audit --no-fund --loglevel=error --no-update-notifier node@20
    hash -r
    node -e "$check" || { say "Node.js 20.19+ is needed; $(command -v node) is $(node --version)"; exit 1; }
}

# uv, and with "tox" also tox and tox-uv: from PyPI into $TOOLS_HOME/tools when missing.
need_python_tools() {
    local wanted=(uv) tool missing=()
    [ "${1:-}" = tox ] && wanted+=(tox)
    for tool in "${wanted[@]}"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]})) || return 0
    say "Installing uv, tox and tox-uv from PyPI into $TOOLS_HOME/tools (linked into $LINK_DIR)"
    if [ ! -x "$TOOLS_HOME/tools/bin/pip" ]; then
        rm -rf "$TOOLS_HOME/tools"
        if ! python3 -m venv "$TOOLS_HOME/tools" 2>/dev/null; then
            rm -rf "$TOOLS_HOME/tools"
            apt_install python3-venv # Debian ships venv's pip (ensurepip) separately
            python3 -m venv "$TOOLS_HOME/tools"
        fi
    fi
    "$TOOLS_HOME/tools/bin/pip" install -q --disable-pip-version-check uv tox tox-uv
    mkdir -p "$LINK_DIR"
    for tool in uv uvx tox; do
        ln -sf "$TOOLS_HOME/tools/bin/$tool" "$LINK_DIR/$tool"
    done
    hash -r
}

# The test identity provider's npm packages, unless node_modules already matches the lock file.
need_idp_packages() {
    local wanted installed
    wanted=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/oidc-provider"]["version"])' tests/idp/package-lock.json)
    installed=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
        tests/idp/node_modules/oidc-provider/package.json 2>/dev/null || true)
    [ "$wanted" = "$installed" ] && return 0
    say "Installing the test identity provider: npm ci --prefix tests/idp"
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error --no-update-notifier
}
