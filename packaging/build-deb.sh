#!/usr/bin/env bash
# Builds takedown's Debian package from the checked-out commit:
#
#   packaging/build-deb.sh [OUT_DIR]        # default: dist/
#
# Reproducible: the same commit and toolchain give the same bytes. Every
# time in the package (files, the binary's build date) is the last
# commit's (SOURCE_DATE_EPOCH), the binary is built with -trimpath, man
# pages are gzipped without names or times. nfpm is the pinned release
# below ($NFPM, if set, is used instead: CI builds it once).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
nfpm_version=v2.45.2

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
commit="$(git rev-parse HEAD)"
date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
# v1.2.3 tags give 1.2.3; otherwise 0.0~git<commit date>.<short commit>.
if tag="$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)"; then
	version="${tag#v}"
else
	version="0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).${commit:0:12}"
fi
export DEB_VERSION="$version"
export DEB_ARCH="$(go env GOARCH)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/man" "$stage/completions" "$stage/doc" "$stage/scripts"

pkg=github.com/takedown-project/takedown/internal/cli
CGO_ENABLED=1 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X $pkg.version=$version -X $pkg.commit=$commit -X $pkg.date=$date" \
	-o "$stage/takedown" ./cmd/takedown

# The unit runs the packaged binary; the conffile is the example config
# (loopback, unprivileged ports) with the package's data directory.
sed 's|/usr/local/bin/takedown|/usr/bin/takedown|g' deploy/takedown.service >"$stage/takedown.service"
sed 's|^# data_dir: /var/lib/takedown|data_dir: /var/lib/takedown|' takedown.example.yaml >"$stage/takedown.yaml"
grep -q '^data_dir: /var/lib/takedown$' "$stage/takedown.yaml"

"$stage/takedown" completion bash >"$stage/completions/takedown.bash"
"$stage/takedown" completion zsh >"$stage/completions/_takedown"
"$stage/takedown" completion fish >"$stage/completions/takedown.fish"
# Man pages come from `takedown docs man` (once the binary has it).
if "$stage/takedown" docs man --help >/dev/null 2>&1; then
	"$stage/takedown" docs man --dir "$stage/man"
	for f in "$stage"/man/*; do gzip -9n "$f"; done
else
	echo "build-deb.sh: this takedown has no 'docs man' command; the package has no man pages" >&2
fi
cp README.md "$stage/doc/README.md"
cp deploy/README.md "$stage/doc/DEPLOY.md"
cp packaging/scripts/* "$stage/scripts/"
if [ -n "$(ls "$stage/man")" ]; then
	cp packaging/nfpm.yaml "$stage/nfpm.yaml"
else
	sed '/src: \.\/man\//,+1d' packaging/nfpm.yaml >"$stage/nfpm.yaml"
fi
# Stage files and directories at the commit's time, as nfpm writes them.
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
out="$(cd "$out" && pwd)"
deb="$out/takedown_${version}_${DEB_ARCH}.deb"
rm -f "$deb"
if [ -n "${NFPM:-}" ]; then
	(cd "$stage" && "$NFPM" package --config nfpm.yaml --packager deb --target "$deb" >&2)
else
	(cd "$stage" && go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version" package --config nfpm.yaml --packager deb --target "$deb" >&2)
fi
echo "$deb"
