#!/usr/bin/env bash
# Build the Dockerfile's targets without a Docker daemon: by default gru4rec:serve and gru4rec:train;
# `build_images.sh train-gpu` (make image-gpu) builds the GPU training image, whose CUDA wheels are several
# GB and which is built only when asked. For linux/amd64, with buildah (root, chroot isolation, vfs storage) into buildah's default store
# (/var/lib/containers/storage), so `STORAGE_DRIVER=vfs buildah images` and `buildah run` find them.
#
# No image registry is reachable, so the Dockerfile's base, python:3.11-slim-bookworm, cannot be pulled.
# Where no image of that name is in the store, a declared stand-in is built once and kept there: Debian
# bookworm from debootstrap with Debian's Python 3.11 and pip (see scripts/build_base_image.sh).
# Debian packages debootstrap downloads are kept in $IMAGE_CACHE_DIR for the next cold build.
set -euo pipefail
cd "$(dirname "$0")/.."

export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm   # the Dockerfile's FROM, fully qualified
PLATFORM=linux/amd64
# The RUN steps reach Debian's archive and PyPI from this machine's network, trusting this machine's
# certificate authorities (needed where HTTPS goes through an intercepting proxy): the bundle is
# mounted read-only for the build's RUN steps only, never written into an image. BUILD_CA_BUNDLE=""
# builds with the base image's own bundle.
CA_BUNDLE=${BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
volumes=()
if [ -n "$CA_BUNDLE" ]; then
    volumes=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
fi

./scripts/ensure_debian_packages.sh buildah debootstrap

if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "base image $BASE_IMAGE is in the store"
else
    ./scripts/build_base_image.sh "$BASE_IMAGE"
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(serve train)
for target in "${targets[@]}"; do
    case $target in
        serve|train|train-gpu) ;;
        *) echo "unknown target $target: the Dockerfile's targets are serve, train and train-gpu" >&2; exit 2 ;;
    esac

    echo "building gru4rec:$target"
    start=$SECONDS
    # --pull=never: the base comes from the store, never from a registry; --layers: the train build
    # reuses the serve stage built just before; --force-rm: a failed step leaves no working container.
    buildah bud --quiet --layers --force-rm --pull=never --platform "$PLATFORM" --isolation chroot "${volumes[@]}" \
        --target "$target" --tag "gru4rec:$target" --file Dockerfile . >/dev/null
    echo "built gru4rec:$target in $((SECONDS - start)) s"
done

# images a rebuild left without a name (the previous gru4rec:serve or :train) give their space back
buildah rmi --prune >/dev/null || echo "note: some unnamed images are still in use and stay in the store"
echo "image sizes:"
buildah images --noheading --format '{{.Name}}:{{.Tag}} {{.Size}}' --filter reference=localhost/gru4rec
