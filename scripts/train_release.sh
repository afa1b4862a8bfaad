#!/usr/bin/env bash
# Train (or continue training) the release checkpoint `checkpoints/unclip-emoji` from the built emoji dataset.
# Re-runnable: a run with a `final/` folder is skipped, a started run resumes, so after an interruption run it
# again. Two single-threaded jobs share the 2 cores (with the cores busy, two threads per job were slower): the
# CLIP -> prior -> decoder chain, and beside it the evaluator CLIP that unclip-eval scores with (`evaluator-small`,
# its own seed; first, so interim releases can be scored early) followed by the upsampler (needs no CLIP). At the
# end scripts/build_release.sh assembles, evaluates and writes the release folder with its model card.
# Logs: $RUNS/<run>.log.
# Environment: DATA (default data/emoji), RUNS (default runs), OUT (default checkpoints/unclip-emoji), THREADS
# (default 1); build_release.sh reads more (EVAL, EVALUATOR, REPO, MAX_EXAMPLES).
set -euo pipefail
DATA=${DATA:-data/emoji}
RUNS=${RUNS:-runs}
OUT=${OUT:-checkpoints/unclip-emoji}
THREADS=${THREADS:-1}
EVALUATOR_SEED=20220413  # unclip_diffusers.evaluation.evaluator.EVALUATOR_SEED
mkdir -p "$RUNS"
[ -d "$DATA" ] || { echo "No dataset at $DATA: build it first (README, section Data)." >&2; exit 2; }

train() {  # train RUN STAGE [extra flags]: skip when finished, resume when started; output in $RUNS/RUN.log
    local run=$1 stage=$2; shift 2
    local dir="$RUNS/$run"
    if [ -d "$dir/final" ]; then echo "$run: finished ($dir/final)"; return; fi
    local resume=()
    [ -f "$dir/config.json" ] && resume=(--resume)
    echo "$run: training (log: $RUNS/$run.log)"
    unclip-train "$stage" --config small --data_path "$DATA" --output_dir "$dir" --num_threads "$THREADS" \
        "${resume[@]}" "$@" >> "$RUNS/$run.log" 2>&1
}

(
    train evaluator-clip-small clip --model_preset evaluator-small --seed "$EVALUATOR_SEED"
    train upsampler-small upsampler
) &
side=$!
train clip-small clip
train prior-small prior --clip_dir "$RUNS/clip-small"
train decoder-small decoder --clip_dir "$RUNS/clip-small"
wait "$side"
DATA=$DATA RUNS=$RUNS OUT=$OUT THREADS=$THREADS bash "$(dirname "$0")/build_release.sh"
