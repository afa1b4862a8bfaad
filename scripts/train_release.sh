#!/usr/bin/env bash
# Train (or continue training) the release checkpoint `checkpoints/unclip-emoji` from the built emoji dataset.
# Re-runnable: a stage with a `final/` folder is skipped, a stage with checkpoints resumes, so after an interruption
# run it again. The upsampler needs no CLIP, so it trains beside the CLIP -> prior -> decoder chain (one thread each:
# on 2 cores, two single-threaded jobs beat one two-threaded job). At the end scripts/build_release.sh assembles,
# evaluates (training the evaluator CLIP on first use) and writes the release folder with its model card.
# Environment: DATA (default data/emoji), RUNS (default runs), OUT (default checkpoints/unclip-emoji), THREADS
# (default 1); build_release.sh reads more (EVAL, EVALUATOR, REPO, MAX_EXAMPLES).
set -euo pipefail
DATA=${DATA:-data/emoji}
RUNS=${RUNS:-runs}
OUT=${OUT:-checkpoints/unclip-emoji}
THREADS=${THREADS:-1}
mkdir -p "$RUNS"
[ -d "$DATA" ] || { echo "No dataset at $DATA: build it first (README, section Data)." >&2; exit 2; }

train() {  # train STAGE [extra flags]: skip when finished, resume when started
    local stage=$1; shift
    local dir="$RUNS/$stage-small"
    if [ -d "$dir/final" ]; then echo "$stage: finished ($dir/final)"; return; fi
    local resume=()
    [ -f "$dir/config.json" ] && resume=(--resume)
    unclip-train "$stage" --config small --data_path "$DATA" --output_dir "$dir" --num_threads "$THREADS" "${resume[@]}" "$@"
}

train upsampler > "$RUNS/upsampler-small.log" 2>&1 &
upsampler=$!
train clip
train prior --clip_dir "$RUNS/clip-small"
train decoder --clip_dir "$RUNS/clip-small"
wait "$upsampler"
DATA=$DATA RUNS=$RUNS OUT=$OUT THREADS=$THREADS bash "$(dirname "$0")/build_release.sh"
