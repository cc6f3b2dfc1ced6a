#!/usr/bin/env bash
# The model card's robot-user protocol for one weights file, on both validation splits:
# 20 clicks, seed 0, `fcfi`, 300 instances per set (or N with --instances N), the two sets
# in parallel with one torch thread each (3-4 minutes on a quiet 2-core Xeon), and, when the
# weights carry a nuclei preset, DSB2018 with it (`--preset nuclei`) alongside. With --ablation the
# feedback ablation of the model card follows (100 instances per set, fcfi and
# fcfi-nofeedback). Prints a one-line summary per run; the JSON files land in OUT.
#
#   bash scripts/validate_weights.sh runs/next/candidate.safetensors runs/validate [--ablation]
#
# SHARED (default ../shared) is the folder that holds data/dsb2018 and data/usiigaci.
set -euo pipefail
MODEL=${1:?usage: validate_weights.sh WEIGHTS OUT [--ablation] [--instances N]}
OUT=${2:?usage: validate_weights.sh WEIGHTS OUT [--ablation] [--instances N]}
shift 2
ABLATION=0
N=300
while [ $# -gt 0 ]; do
  case "$1" in
    --ablation) ABLATION=1 ;;
    --instances) N=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
SHARED=${SHARED:-../shared}
D=$SHARED/data/dsb2018/train
U=$SHARED/data/usiigaci
for dir in "$D/images" "$D/labels" "$U/images" "$U/labels"; do
  [ -d "$dir" ] || { echo "missing data folder $dir (set SHARED)" >&2; exit 1; }
done
[ -f "$MODEL" ] || { echo "missing weights file $MODEL" >&2; exit 1; }
mkdir -p "$OUT"

run() {  # name images labels instances method [more evaluate options]
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 napari-fcfi evaluate --images "$2" --labels "$3" \
    --model "$MODEL" --split val --max-instances "$4" --max-clicks 20 --seed 0 \
    --method "$5" "${@:6}" --json "$OUT/$1.json" > "$OUT/$1.log" 2>&1
}

pair() {  # the two sets in parallel: name-suffix instances method; fails with the log of a failed run
  run "dsb$1" "$D/images" "$D/labels" "$2" "$3" & local a=$!
  run "usi$1" "$U/images" "$U/labels" "$2" "$3" & local b=$!
  local rc=0
  wait "$a" || { rc=1; tail -n 5 "$OUT/dsb$1.log" >&2; }
  wait "$b" || { rc=1; tail -n 5 "$OUT/usi$1.log" >&2; }
  return "$rc"
}

summary() {
  python - "$@" <<'EOF'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    m = r["mIoU"]
    print(f"{path}: n={r['instances']} NoC@80/85/90 {r['NoC@80']:.2f} / {r['NoC@85']:.2f} / "
          f"{r['NoC@90']:.2f}  NoC@90>=20 {r['NoC@90>=max']}  mIoU@1/3/5/20 "
          f"{m[0]:.3f} / {m[2]:.3f} / {m[4]:.3f} / {m[-1]:.3f}")
EOF
}

NUCLEI=0  # the weights' JSON names their presets (a file without one is left to evaluate's message)
if [ -f "${MODEL%.*}.json" ]; then
  NUCLEI=$(python -c 'import json, sys; print(int("nuclei" in (json.load(open(sys.argv[1])).get("presets") or {})))' "${MODEL%.*}.json")
fi
if [ "$NUCLEI" = 1 ]; then
  run dsb-nuclei "$D/images" "$D/labels" "$N" fcfi --preset nuclei & NUCLEI_PID=$!
fi
pair -fcfi "$N" fcfi
summary "$OUT/dsb-fcfi.json" "$OUT/usi-fcfi.json"
if [ "$NUCLEI" = 1 ]; then
  wait "$NUCLEI_PID" || { tail -n 5 "$OUT/dsb-nuclei.log" >&2; exit 1; }
  summary "$OUT/dsb-nuclei.json"
fi

if [ "$ABLATION" = 1 ]; then
  for m in fcfi fcfi-nofeedback; do
    pair "100-$m" 100 "$m"
  done
  summary "$OUT"/dsb100-fcfi.json "$OUT"/dsb100-fcfi-nofeedback.json \
    "$OUT"/usi100-fcfi.json "$OUT"/usi100-fcfi-nofeedback.json
fi
