#!/usr/bin/env bash
# Installs what the build, the tests and the demo need on a Debian host, and
# only what is missing. Sourced by test.sh and run.sh; fails loudly.
#
#   qemu-system-x86  qemu-system-x86_64, and /usr/lib/qemu/virtiofsd (via
#                    qemu-system-common)
#   cpio             inspecting and building initramfs images
#   gcc, libc6-dev   go test -race needs cgo
#   golang-go        only if no go is installed; go.mod's toolchain line then
#                    makes it fetch the right Go release through the proxy

need_pkgs=()
[[ -x /usr/bin/qemu-system-x86_64 && -x /usr/lib/qemu/virtiofsd ]] || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v go >/dev/null || need_pkgs+=(golang-go ca-certificates git)

if ((${#need_pkgs[@]})); then
	echo "installing missing packages: ${need_pkgs[*]}" >&2
	if [[ $(id -u) != 0 ]]; then
		echo "error: must run as root to install ${need_pkgs[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update || { echo "error: apt-get update failed" >&2; exit 1; }
	apt-get install -y --no-install-recommends "${need_pkgs[@]}" ||
		{ echo "error: apt-get install ${need_pkgs[*]} failed" >&2; exit 1; }
fi

for f in /usr/lib/qemu/virtiofsd /usr/bin/qemu-system-x86_64; do
	[[ -x $f ]] || { echo "error: $f is missing after installing qemu-system-x86" >&2; exit 1; }
done
command -v go >/dev/null || { echo "error: go is not installed" >&2; exit 1; }
# An older distribution Go switches to the release go.mod asks for.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
if [[ $(go env GOTOOLCHAIN) == local ]]; then export GOTOOLCHAIN=auto; fi
