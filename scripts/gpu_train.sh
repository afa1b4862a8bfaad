#!/usr/bin/env bash
# Train the decoder or upsampler on a lent GPU for a fixed number of minutes and bring back its fp16 EMA weights.
#
#   scripts/gpu_train.sh STAGE MINUTES INIT_FROM PACK [more unclip-train flags...]
#
# STAGE: decoder | upsampler; MINUTES: the max_minutes budget of the training loop (leave ~2 of the device
# command's 10 for setup and export); INIT_FROM: the weights to continue (the release folder or a snapshot-<step>/,
# whose step the run continues from); PACK: `unclip-train pack --stage STAGE` output. Runs the project's trainer
# through `accelerate launch` (one process per GPU) in bf16 with the `small` preset, then writes to $OUT:
#   snapshot-<step>.tar (the fp16 EMA weights; split into .tar.part-aa, -ab, ... when over 15 MiB),
#   step.txt, metrics.jsonl and train.log. README "Training on a lent GPU" has the way back.
# Carried wheels in .whl/ (diffusers is not on the device image) are installed first.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 STAGE MINUTES INIT_FROM PACK [more unclip-train flags...]" >&2
  exit 2
fi
stage=$1 minutes=$2 init_from=$3 pack=$4
shift 4
out=${OUT:?OUT must name the folder the weights go to (the device tool sets it)}
case $stage in decoder|upsampler) ;; *) echo "STAGE must be decoder or upsampler, got $stage" >&2; exit 2 ;; esac
[ -f "$pack" ] || { echo "no pack at $pack: write it with unclip-train pack --stage $stage" >&2; exit 2; }
[ -d "$init_from" ] || { echo "INIT_FROM $init_from is not a folder" >&2; exit 2; }
mkdir -p "$out"
exec > >(tee -a "$out/train.log") 2>&1

if compgen -G ".whl/*.whl" >/dev/null && ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000  # what unclip-train would re-exec itself with
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
launch=(--num_processes "$gpus" --num_machines 1 --mixed_precision bf16 --dynamo_backend no)
if [ "$gpus" -eq 0 ] && [ "${GPU_TRAIN_ALLOW_CPU:-0}" = 1 ]; then  # the CPU test of this script
  launch=(--cpu --num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no)
elif [ "$gpus" -eq 0 ]; then
  echo "no CUDA device visible" >&2
  exit 3
else
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi
if [ "$gpus" -gt 1 ]; then launch+=(--multi_gpu); fi

run=/tmp/unclip-gpu-$stage
rm -rf "$run" /tmp/unclip-gpu-export
started=$(date +%s)
status=0
python3 -m accelerate.commands.launch "${launch[@]}" --module unclip_diffusers.training.cli "$stage" \
  --config small --data_path "$pack" --init_from "$init_from" --output_dir "$run" --mixed_precision bf16 \
  --max_minutes "$minutes" --checkpoint_every 1000000 --validate_every 0 --num_threads 0 "$@" || status=$?
echo "training exited with $status after $(( $(date +%s) - started )) s"

snapshot=$(python3 -m unclip_diffusers.training.cli export "$run" --fp16 --output /tmp/unclip-gpu-export | tail -1)
name=$(basename "$snapshot")
echo "${name#snapshot-}" > "$out/step.txt"
cp "$run/metrics.jsonl" "$out/metrics.jsonl"
tar -C "$(dirname "$snapshot")" -cf "/tmp/$name.tar" "$name"
if [ "$(stat -c %s "/tmp/$name.tar")" -gt $((15 * 1024 * 1024)) ]; then
  split -b 15M "/tmp/$name.tar" "$out/$name.tar.part-"
else
  cp "/tmp/$name.tar" "$out/$name.tar"
fi
ls -l "$out"
exit $status
