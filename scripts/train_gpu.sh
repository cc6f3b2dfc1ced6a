#!/usr/bin/env bash
# Continue the built-in model's training on a GPU machine from the packed training sets
# (scripts/pack_training_data.py pack ... --dest PACK/dsb2018 and PACK/usiigaci), from the
# source tree, without installing the package (the machine needs torch, numpy, scipy,
# scikit-image, tifffile, safetensors, tqdm and pillow).
#
#   bash scripts/train_gpu.sh PACK DEST MINUTES [more napari-fcfi train options]
#
# The weights (float32 .safetensors + .json) and the training log land in DEST; package
# and validate them on any machine (docs/model-card.md, "Training"). Options given after
# MINUTES override the defaults below (the last occurrence wins), e.g. --init, --lr, --seed.
set -euo pipefail
pack=$1 dest=$2 minutes=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data=$(mktemp -d)
run=$(mktemp -d)
trap 'rm -rf "$data" "$run"' EXIT
for set in dsb2018 usiigaci; do
  python3 "$here/scripts/pack_training_data.py" unpack "$pack/$set" --dest "$data/$set"
done
cores=$(nproc)
workers=$(( cores > 3 ? cores - 2 : 1 ))
mkdir -p "$dest"
python3 -m napari_fcfi.cli train \
  --images "$data/dsb2018/images" --labels "$data/dsb2018/labels" \
  --images "$data/usiigaci/images" --labels "$data/usiigaci/labels" \
  --init fcfi-lite --scale-mode object --freeze-blocks 1 --crop 160 --batch 64 \
  --lr 6e-4 --steps 1000000 --device cuda --workers "$workers" --threads 2 \
  --time-limit "$minutes" --ckpt-every 500 --val-every 1000000 --no-progress \
  --workdir "$run" --out "$dest/fcfi-lite.safetensors" --overwrite "$@"
cp "$run/log.jsonl" "$dest/log.jsonl"
python3 - "$dest/log.jsonl" <<'PY'
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1])]
late = recs[len(recs) // 5 :] or recs
s = sorted(r["s_per_step"] for r in late)[len(late) // 2]
batch = recs[-1]["samples"] // recs[-1]["step"]
print(f"{recs[-1]['step']} steps, {recs[-1]['samples']} samples, median {s:.3f} s/step "
      f"({batch / s:.0f} samples/s), last loss {recs[-1]['loss']:.3f}")
PY
