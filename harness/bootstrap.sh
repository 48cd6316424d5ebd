#!/usr/bin/env bash
# Prepares a Debian 12 machine for xhdr: system packages, the kernel-header links BCC needs, and the
# virtual environment. Every step checks first and does nothing when its work is already done, so the
# README's commands can call this every time. Then runs what was asked:
#   bootstrap.sh demo [xhdr demo options]   the main job on built-in defaults
#   bootstrap.sh test [pytest options]      the whole test suite
#   bootstrap.sh                            set-up only
set -euo pipefail
action="${1:-}"
[ $# -gt 0 ] && shift
case "$action" in
    ""|demo|test) ;;
    *) echo "xhdr setup: unknown action '$action'; use demo, test, or nothing for set-up only" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
venv="${XHDR_VENV:-$top/.venv}"
apt_packages=(python3-bpfcc libbpfcc libbpf1 linux-headers-amd64 python3-venv python3-pip
              iproute2 nginx-light curl wrk iputils-ping netsniff-ng
              gcc libc6-dev qemu-system-x86 busybox-static   # gcc: C baselines and the guest loader
              libssl-dev                                     # libcrypto: xhdr log --audit (HMAC-SHA256)
              logrotate                                      # the README's rotation stanza, run by a test
              linux-perf                                     # perf: xhdr bench --profile
              redis-server                                   # redis-server: tests of the fuzzer's shared database
              clang libbpf-dev)                              # clang, bpf/bpf_helpers.h: libbpf-style objects (tests)

say() { printf 'xhdr setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root (XDP, BPF and network namespaces need it); try: sudo bash harness/bootstrap.sh ..."
    exit 1
fi

missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# BCC compiles against /lib/modules/$(uname -r)/{build,source}. A VM kernel may ship no module tree, so
# point those links at Debian's header packages (XDP's context and helpers are UAPI and stable).
modules="/lib/modules/$(uname -r)"
if [ ! -e "$modules/build/include" ]; then
    arch_tree=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    common_tree=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$arch_tree" ] || [ -z "$common_tree" ]; then
        say "no kernel headers under /usr/src; install linux-headers-amd64 and run again"
        exit 1
    fi
    say "linking $modules/build -> $arch_tree and $modules/source -> $common_tree"
    mkdir -p "$modules"
    ln -sfn "$arch_tree" "$modules/build"
    ln -sfn "$common_tree" "$modules/source"
fi

# Debian's python3-bpfcc installs the bcc module for /usr/bin/python3 only; a venv with system site
# packages sees it, while PyPI's package called "bcc" is an unrelated project.
stamp="$venv/.xhdr-installed"
if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if [ ! -f "$stamp" ] || [ "$top/pyproject.toml" -nt "$stamp" ]; then
    say "installing xhdr and its Python dependencies into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$top[test]"
    touch "$stamp"
fi

# The event consumer of `xhdr log` is compiled once per version of its source (cached outside the tree).
say "building the event consumer: $("$venv/bin/python" -m harness.log.consumer)"

cd "$top"
case "$action" in
    demo) exec "$venv/bin/xhdr" demo "$@" ;;
    test) exec "$venv/bin/python" -m pytest "$@" ;;
esac
say "ready: $venv/bin/xhdr --help"
