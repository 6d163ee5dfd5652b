#!/usr/bin/env bash
# Make sure the Debian bookworm base image exists; print its name on stdout.
#
# Usage: scripts/base-image.sh [IMAGE]     (default: $BASE_IMAGE or debian:bookworm-slim)
#
# Order of preference (what is already here first, the network only for
# what is missing):
#   1. the image is already present locally;
#   2. the equivalent image built here earlier ($LOCAL_BASE_IMAGE) is present;
#   3. `docker pull` works (the ordinary path for a user with internet);
#   4. no registry is reachable: build the equivalent image with debootstrap
#      from Debian's mirror and `docker import` it as $LOCAL_BASE_IMAGE.
# Progress goes to stderr so that callers can capture the image name.
set -euo pipefail

image="${1:-${BASE_IMAGE:-debian:bookworm-slim}}"
local_image="${LOCAL_BASE_IMAGE:-scalelab/debian:bookworm}"
# debootstrap picks Debian's default mirror when DEBIAN_MIRROR is empty.
mirror="${DEBIAN_MIRROR:-}"

say() { printf '%s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
    say "✔ base image $image is present"
    echo "$image"; exit 0
fi
if docker image inspect "$local_image" >/dev/null 2>&1; then
    say "✔ using $local_image, built here earlier from Debian's mirror"
    echo "$local_image"; exit 0
fi
say "… pulling base image $image"
if timeout 300 docker pull -q "$image" >/dev/null 2>&1; then
    say "✔ pulled $image"
    echo "$image"; exit 0
fi

say "… registry unreachable: building $local_image with debootstrap (about a minute)"
if ! command -v debootstrap >/dev/null 2>&1; then
    say "❌ debootstrap is not installed; install it (apt-get install debootstrap) or make $image pullable"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
else
    sudo=()
fi
root="$(mktemp -d "${TMPDIR:-/tmp}/scalelab-rootfs.XXXXXX")"
cleanup() { "${sudo[@]}" rm -rf "$root"; }
trap cleanup EXIT

# --variant=minbase is what the official slim image is made from.
if ! "${sudo[@]}" debootstrap --variant=minbase bookworm "$root" ${mirror:+"$mirror"} \
        > >(while read -r line; do
                # Show the phases, not each of the ~100 packages.
                case "$line" in I:\ Retriev*|I:\ Validat*|I:\ Extract*|I:\ Unpack*|I:\ Configur*) ;;
                                 *) say "   debootstrap: $line" ;; esac
            done) 2>&1; then
    say "❌ debootstrap failed (is Debian's mirror reachable? set DEBIAN_MIRROR to another)"
    exit 1
fi
# Same trimming as the official slim image: no apt lists, no caches, and
# apt settings that keep downloaded packages and translations out of layers.
"${sudo[@]}" rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/usr/share/locale/*
"${sudo[@]}" tee "$root/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
"${sudo[@]}" tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
"${sudo[@]}" tee "$root/etc/apt/apt.conf.d/docker-no-languages" >/dev/null <<'EOF'
Acquire::Languages "none";
EOF
"${sudo[@]}" tee "$root/etc/apt/apt.conf.d/docker-autoremove-suggests" >/dev/null <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
say "… importing rootfs as $local_image"
"${sudo[@]}" tar -C "$root" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV LANG=C.UTF-8' \
    - "$local_image" >/dev/null
say "✔ built $local_image"
echo "$local_image"
