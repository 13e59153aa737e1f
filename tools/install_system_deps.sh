#!/usr/bin/env bash
# Installs the Debian packages the lab and the tests use, when missing:
#   openssh-server (real sshd for lab devices), iproute2 (network namespaces, tc),
#   adb (Android transport client), chromium (HTML report screenshots),
#   python3-venv (the lab's device Python is a venv of the system python3),
#   qemu-user-static + mmdebstrap + arch-test (the emulated aarch64 lab device, `lab up --arch aarch64`),
#   redis-server and postgresql (the team device farm's broker and shared results store;
#   the farm tests start their own servers on loopback ports).
# Needs root (CI runs as root); without it, prints what to install and goes on —
# the tests that need a missing part say so.
set -uo pipefail
need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v adb >/dev/null 2>&1 || need+=(adb)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
# the lab builds its device Python (numpy + runtimes only) as a venv of the system python3
[ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && need+=(python3-venv)
# the emulated aarch64 device: a Debian arm64 root made by mmdebstrap, run through qemu-user-static
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v arch-test >/dev/null 2>&1 || need+=(arch-test)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install_system_deps: not root; please install: ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null || true
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >/dev/null \
  || echo "install_system_deps: apt-get install ${need[*]} failed" >&2
exit 0
