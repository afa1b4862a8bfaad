#!/usr/bin/env bash
# Build the bundled release folder (default checkpoints/unclip-emoji) from the release training runs: assemble the
# stages in fp16, score them with unclip-eval on the held-out splits, and write the Hub layout with its model card
# (unclip-push --local-hub). A stage whose run has not finished is taken from an EMA snapshot of its newest
# checkpoint (unclip-train export) and the card says so. Environment: DATA (default data/emoji), RUNS (default
# runs), OUT (default checkpoints/unclip-emoji), EVAL (default outputs/eval-release), EVALUATOR (default: the one
# shipped beside OUT, $(dirname $OUT)/evaluator-clip-$PRESET, else $RUNS/evaluator-clip-$PRESET, trained there on
# first use and then shipped beside OUT in fp16 so later releases are scored by the same model), REPO (default unclip-diffusers/unclip-emoji),
# MAX_EXAMPLES (held-out examples per split scored, default 200), THREADS (default 1), PRESET (the runs' training
# preset, default small: runs are $RUNS/<stage>-$PRESET), EVAL_ARGS (extra unclip-eval flags, e.g. --quick),
# SKIP_EVAL (set to 1 to write the folder without scoring it, e.g. before the evaluator CLIP is trained; the card
# then says "not measured"), UPSAMPLER2 (set to 1 to add the second upsampler from $RUNS/upsampler2-$PRESET),
# NOTES (the card's "About this release" text, default model_cards/unclip-emoji.notes.md). With the evaluation it
# also writes the CLIP's style diagnosis (scripts/probe_clip.py, $EVAL/style_probe/), whose figure goes into the card
# as images/eval/style_probe.png.
set -euo pipefail
DATA=${DATA:-data/emoji}
RUNS=${RUNS:-runs}
OUT=${OUT:-checkpoints/unclip-emoji}
EVAL=${EVAL:-outputs/eval-release}
REPO=${REPO:-unclip-diffusers/unclip-emoji}
MAX_EXAMPLES=${MAX_EXAMPLES:-200}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS  # every command here: on a busy CPU, extra threads were up to 40x slower
PRESET=${PRESET:-small}
SHIPPED_EVALUATOR=$(dirname "$OUT")/evaluator-clip-$PRESET
if [ -z "${EVALUATOR:-}" ]; then
    EVALUATOR=$RUNS/evaluator-clip-$PRESET
    [ -f "$SHIPPED_EVALUATOR/evaluator/evaluator.json" ] && EVALUATOR=$SHIPPED_EVALUATOR
fi
EVAL_ARGS=${EVAL_ARGS:-}
ASSEMBLE_ARGS=${ASSEMBLE_ARGS:-}  # extra unclip-assemble flags, e.g. --allow-new-text-tower after LiT of the CLIP
UPSAMPLER2=${UPSAMPLER2:-}  # set to 1 to add the second upsampler ($RUNS/upsampler2-$PRESET) to the release
NOTES=${NOTES:-$(dirname "$0")/../model_cards/unclip-emoji.notes.md}
[ -d "$DATA" ] || { echo "No dataset at $DATA: build it first (README, section Data)." >&2; exit 2; }

stage_folder() {  # stage_folder STAGE: the run's final/, a fresh EMA snapshot of its newest checkpoint, or (a run
    # restored from the release that has not checkpointed since) its newest snapshot
    local dir="$RUNS/$1-$PRESET"
    if [ -d "$dir/final" ]; then echo "$dir/final"; return; fi
    [ -f "$dir/config.json" ] || { echo "No $1 run in $dir: train it first (scripts/train_release.sh)." >&2; exit 2; }
    if ls -d "$dir"/checkpoint-* >/dev/null 2>&1; then unclip-train export "$dir" | tail -n 1; return; fi
    local snapshot
    snapshot=$(ls -d "$dir"/snapshot-* 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$snapshot" ] || { echo "No checkpoint or snapshot in $dir yet." >&2; exit 2; }
    echo "$snapshot"
}

clip=$(stage_folder clip)
prior=$(stage_folder prior)
decoder=$(stage_folder decoder)
upsampler=$(stage_folder upsampler)
second=()
[ -n "$UPSAMPLER2" ] && second=(--upsampler2 "$(stage_folder upsampler2)")
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
unclip-assemble --clip "$clip" --prior "$prior" --decoder "$decoder" --upsampler "$upsampler" "${second[@]}" \
    --output "$staging/pipeline" --fp16 $ASSEMBLE_ARGS
metrics=()
if [ -z "${SKIP_EVAL:-}" ]; then
    rm -rf "$EVAL"
    unclip-eval --pipeline "$staging/pipeline" --data "$DATA" --output "$EVAL" --evaluator "$EVALUATOR" \
        --max-examples "$MAX_EXAMPLES" --num-threads "$THREADS" $EVAL_ARGS
    # A diagnosis, not part of the release: a dataset without concept/style columns skips it with a warning.
    if [ -n "${SKIP_PROBE:-}" ]; then
        echo "SKIP_PROBE set: the card has no style diagnosis." >&2
    elif python "$(dirname "$0")/probe_clip.py" --clip "$staging/pipeline" --data "$DATA" --threads "$THREADS" \
        --max-train 8000 --output "$EVAL/style_probe"; then
        cp "$EVAL/style_probe/confusion.png" "$EVAL/style_probe.png"
    else
        echo "warning: scripts/probe_clip.py failed; the card has no style diagnosis." >&2
    fi
    metrics=(--metrics "$EVAL")
    if [ "$EVALUATOR" != "$SHIPPED_EVALUATOR" ] && [ -f "$EVALUATOR/evaluator/evaluator.json" ]; then
        python -c "import sys; from unclip_diffusers.evaluation.evaluator import export_evaluator as e; e(*sys.argv[1:])" \
            "$EVALUATOR/evaluator" "$SHIPPED_EVALUATOR/evaluator"
    fi
fi
notes=()
[ -f "$NOTES" ] && notes=(--notes "$NOTES")
unclip-push "$staging/pipeline" "$REPO" --local-hub "$staging/hub" "${metrics[@]}" "${notes[@]}" --data "$DATA"
# Replace the release folder in one rename, so an interrupted build never leaves half a checkpoint behind.
mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.new" "$OUT.old"
# The bundled folder is the plain save_pretrained layout (the installed package loads it) plus the pushed card,
# images and licences: the remote code files are generated by unclip-push for the Hub only, never committed.
cp -r "$staging/pipeline" "$OUT.new"
find "$OUT.new" -name '*.py' -delete
for item in README.md TRAINING_DATA_LICENSES.md images samples; do
    [ -e "$staging/hub/$REPO/$item" ] && cp -r "$staging/hub/$REPO/$item" "$OUT.new/"
done
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$OUT.new" "$OUT"
rm -rf "$OUT.old"
du -sh "$OUT"
echo "$OUT"
