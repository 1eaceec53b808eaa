#!/usr/bin/env bash
# Run HERE once per checkout when a GPU call needs Ray (issue 18). The GPU machine cannot reach PyPI, Ray's wheel is
# 79 MB and the transfer limit is 64 MiB with the prior's weights (50 MB) in the tree, so this builds
# .ray/p0 p1 p2 (git-ignored, ~6.5 MB each): the cp312 manylinux wheel of ray (RAY_VERSION, default 2.60.0)
# unpacked, its three native binaries stripped, without its Java jars, source maps and the data / train / tune /
# serve / rllib / llm libraries (pnr.batch needs only core Ray: actors, wait, kill), plus jsonschema and the three
# packages it needs, which the image lacks; one .tar.xz split in three. Carry one part per call, calls back to back
# (bench/gpu/call.sh stashes each in the warm machine's /tmp and installs Ray once all three are there).
set -euo pipefail
cd "$(dirname "$0")/../.."
V=${RAY_VERSION:-2.60.0}
grep -qx '/.ray/' .git/info/exclude 2>/dev/null || echo '/.ray/' >> .git/info/exclude
T=$(mktemp -d); trap 'rm -rf $T' EXIT
dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d $T/w "$@"; }
dl "ray==$V" jsonschema jsonschema-specifications referencing rpds-py
mkdir $T/x && for w in $T/w/*.whl; do unzip -q -o "$w" -d $T/x; done
rm -rf $T/x/ray/{jars,llm,tune,train,serve,data,rllib} $T/x/ray/dashboard/client/build/static/js/*.map
strip --strip-unneeded $T/x/ray/_raylet.so $T/x/ray/core/src/ray/gcs/gcs_server $T/x/ray/core/src/ray/raylet/raylet
tar -C $T/x -cf - . | xz -9e -T2 > $T/ray_site.tar.xz
rm -rf .ray && mkdir .ray && split -n 3 -d -a 1 $T/ray_site.tar.xz .ray/p
ls -la .ray
