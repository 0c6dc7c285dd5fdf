#!/bin/sh
# Debian packages the live isolation proof needs (bench/isolation/run.py --engine podman).
# Run as root; installs only what is missing. podman 4.3, buildah 1.28 and runc from Debian
# work on these machines with the settings in ../shared/POSTE.md ("Running the image for
# real"): vfs storage, chroot isolation for builds, runc + cgroupfs for containers.
# debootstrap makes the Debian runtime the model releases lack (bench/isolation/runtime.py).
set -eu
need=
for tool in podman:podman buildah:buildah runc:runc conmon:conmon debootstrap:debootstrap \
    ip:iproute2 ss:iproute2 nsenter:util-linux openssl:openssl tar:tar; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need="$need ${tool##*:}"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
