#!/usr/bin/env bash
# Train (or continue training) the release checkpoint `checkpoints/unclip-emoji` from the built emoji dataset.
# Re-runnable: a run with a `final/` folder is skipped, a started run resumes, so after an interruption run it
# again. On a fresh machine (no run folders) the runs are first restored from the committed release
# (`unclip-train restore`: finished stages come back as `final/`, interim ones as `snapshot-<step>/`, which training
# continues from with `--init_from`), so every session adds to the last release instead of starting over. Two
# single-threaded jobs share the 2 cores (with the cores busy, two threads per job were slower): the CLIP -> prior
# -> decoder chain, and beside it the evaluator CLIP that unclip-eval scores with (`evaluator-small`, its own seed;
# skipped when the release's evaluator is committed beside it) followed by the upsampler (needs no CLIP). At the end
# scripts/build_release.sh assembles, evaluates and writes the release folder with its model card.
# SERIAL=1 trains one stage at a time, the chain first, instead of the side job beside it: with THREADS=2 this
# puts both cores on the decoder, the long pole (on an AMD EPYC: 44 images/s alone on 2 threads vs 27 on 1 thread
# beside the upsampler; two 1-thread jobs get more done in all, so the default stays parallel).
# Logs: $RUNS/<run>.log.
# Environment: DATA (default data/emoji), RUNS (default runs), OUT (default checkpoints/unclip-emoji), THREADS
# (default 1), PRESET (training preset, default small; runs are $RUNS/<stage>-$PRESET), SERIAL (default 0);
# build_release.sh reads more (EVAL, EVALUATOR, REPO, MAX_EXAMPLES, EVAL_ARGS).
set -euo pipefail
DATA=${DATA:-data/emoji}
RUNS=${RUNS:-runs}
OUT=${OUT:-checkpoints/unclip-emoji}
THREADS=${THREADS:-1}
PRESET=${PRESET:-small}
SERIAL=${SERIAL:-0}
EVALUATOR_SEED=20220413  # unclip_diffusers.evaluation.evaluator.EVALUATOR_SEED
SHIPPED_EVALUATOR=$(dirname "$OUT")/evaluator-clip-$PRESET
mkdir -p "$RUNS"
[ -d "$DATA" ] || { echo "No dataset at $DATA: build it first (README, section Data)." >&2; exit 2; }
if [ -f "$OUT/training_provenance.json" ]; then
    unclip-train restore "$OUT" --runs "$RUNS"  # only runs missing here; existing run folders are left alone
fi

train() {  # train RUN STAGE [extra flags]: skip when finished, resume when started; output in $RUNS/RUN.log
    local run=$1 stage=$2; shift 2
    local dir="$RUNS/$run"
    if [ -d "$dir/final" ]; then echo "$run: finished ($dir/final)"; return; fi
    local resume=() snapshot
    # a started or restored run continues with its recorded model preset, family balance, caption cache and precision
    # shellcheck disable=SC2207
    [ -f "$dir/config.json" ] && resume=(--resume $(python -m unclip_diffusers.training.restore "$dir"))
    snapshot=$(ls -d "$dir"/snapshot-* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$snapshot" ] && ! ls -d "$dir"/checkpoint-* >/dev/null 2>&1; then
        resume+=(--init_from "$snapshot")  # restored from the release: continue from its weights and step
    fi
    echo "$run: training (log: $RUNS/$run.log)"
    unclip-train "$stage" --config "$PRESET" --data_path "$DATA" --output_dir "$dir" --num_threads "$THREADS" \
        "${resume[@]}" "$@" >> "$RUNS/$run.log" 2>&1
}

side_job() {  # the stages that need no generation CLIP
    if [ ! -f "$SHIPPED_EVALUATOR/evaluator/evaluator.json" ]; then
        train "evaluator-clip-$PRESET" clip --model_preset "evaluator-$PRESET" --seed "$EVALUATOR_SEED"
    fi
    train "upsampler-$PRESET" upsampler
}
chain() {
    train "clip-$PRESET" clip
    train "prior-$PRESET" prior --clip_dir "$RUNS/clip-$PRESET"
    train "decoder-$PRESET" decoder --clip_dir "$RUNS/clip-$PRESET"
}
if [ "$SERIAL" = 1 ]; then
    chain
    side_job
else
    side_job &
    side=$!
    chain
    wait "$side"
fi
DATA=$DATA RUNS=$RUNS OUT=$OUT THREADS=$THREADS PRESET=$PRESET bash "$(dirname "$0")/build_release.sh"
