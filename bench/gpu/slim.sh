#!/usr/bin/env bash
# The device call sends tracked + untracked-not-ignored files, at most 64 MiB. With .gpusite/ carried the tree
# is over that, so before a series of GPU calls take the pictures the GPU does not need (docs/ media, quality
# thumbnails) out of git's index and ignore them; put them back before committing. Files on disk are untouched.
#   bash bench/gpu/slim.sh on    # before the calls        bash bench/gpu/slim.sh off   # after, before `git commit`
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ex=.git/info/exclude  # (exclude files allow no trailing comments: the block sits between two marker lines)
paths=(docs/*.png docs/*.mp4 bench/results/thumbs)
case "${1:?on | off}" in
  on)  git rm -r -q --cached "${paths[@]}"
       printf '%s\n' "# gpu-slim begin" '/docs/*.png' '/docs/*.mp4' '/bench/results/thumbs/' "# gpu-slim end" >> $ex ;;
  off) sed -i '/^# gpu-slim begin$/,/^# gpu-slim end$/d' $ex
       git add "${paths[@]}" ;;
  *) echo "usage: slim.sh on|off" >&2; exit 2 ;;
esac
{ git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 stat -c %s 2>/dev/null \
  | awk -v g="$(du -sb .gpusite 2>/dev/null | cut -f1)" '{s+=$1} END {printf "travels: %.1f MiB (+ .gpusite %.1f MiB)\n", s/1048576, g/1048576}'
