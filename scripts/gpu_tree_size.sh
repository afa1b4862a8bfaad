#!/usr/bin/env bash
# What a call of the device tool would carry: tracked + untracked-not-ignored files that exist, plus the carried
# paths given as arguments, in MiB (the limit is 64 MiB). Run it in the checkout the session was started in.
#   scripts/gpu_tree_size.sh [CARRIED_PATH...]
set -euo pipefail
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
carried=0
for path in "$@"; do carried=$((carried + $(du -sb "$path" | cut -f1))); done
awk -v t="$tree" -v c="$carried" 'BEGIN {printf "tree %.1f MiB + carried %.1f MiB = %.1f MiB of 64\n", t/1048576, c/1048576, (t+c)/1048576}'
