#!/bin/bash
# One time slice of concurrent bevfusion-tiny (GPU 0) + bevdet-tiny (GPU 1) training on a 2-GPU
# machine: how the shipped tiny weights of 2026-11-22 were trained (benchmarks/results/
# train_gpu_runs.md), within 10-minute device calls. PHASE=A generates the data (HOST=1: also
# measures the loader) and starts from the shipped weights; later phases --resume. The schedule
# is fitted to TL seconds of training across all slices; STOP (seconds for the whole call)
# pauses a slice resumably; without STOP the slice trains to the end and evaluates.
#   COMMIT=$(git rev-parse HEAD) PHASE=A TL=850 STOP=560 SC=160 bash benchmarks/train_gpu_x2_sliced.sh
#   COMMIT=... PHASE=B TL=850 SC=160 bash benchmarks/train_gpu_x2_sliced.sh
# Needs the .whl wheels of the device README (nuscenes-devkit and its dependencies) carried along.
set -o pipefail
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.site PYTHONUNBUFFERED=1 BEVDEPLOY_GIT_COMMIT=${COMMIT:?set COMMIT}
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || exit 1
W=${WORK:-/tmp/gw}; mkdir -p $W  # outside the repo: a device copy drops ignored folders it was not given
SC=${SC:-160}; D=$W/synth-${SC}x20-seed1
INIT_BF=""; INIT_BD=""; RES="--resume"
if [ "$PHASE" = A ]; then
  nvidia-smi -L; nproc
  [ -d $D ] || python3 benchmarks/train_gpu.py --model bevdet --gen-only --scenes $SC --work $W --gen-workers 30 --out $OUT || exit 1
  echo "gen done $(( $(date +%s) - T0 )) s"
  [ -n "$HOST" ] && python3 benchmarks/train_host.py --model bevfusion --data $D --workers 14 --batch-size 8 --batches 12 > $OUT/host_bf.jsonl 2> $OUT/host_bf.err &
  [ -n "$HOST" ] && python3 benchmarks/train_host.py --model bevdet --data $D --workers 14 --batch-size 16 --batches 12 > $OUT/host_bd.jsonl 2> $OUT/host_bd.err &
  wait; cat $OUT/host_b*.jsonl | cut -c1-300; tail -2 $OUT/host_b*.err
  echo "host done $(( $(date +%s) - T0 )) s"
  INIT_BF="--init-from plugins/bevfusion/weights/tiny.safetensors"
  INIT_BD="--init-from plugins/bevdet/weights/tiny.safetensors"; RES=""
fi
STOPA=""; [ -n "$STOP" ] && STOPA="--stop-after $(( STOP - ( $(date +%s) - T0 ) ))"
COMMON="--data $D --version v1.0-synth --device cuda --workers 14 --log-every 50 --time-limit $TL --fit-schedule --eval-max-samples 160 $RES $STOPA"
CUDA_VISIBLE_DEVICES=0 OMP_NUM_THREADS=2 bevdeploy train --model bevfusion --variant tiny $COMMON --batch-size 8 --epochs 300 --lr 1e-3 --out $W/bf $INIT_BF > $OUT/bf.log 2>&1 &
BF=$!
CUDA_VISIBLE_DEVICES=1 OMP_NUM_THREADS=2 bevdeploy train --model bevdet --variant tiny $COMMON --batch-size 16 --epochs 300 --lr 2e-3 --out $W/bd $INIT_BD > $OUT/bd.log 2>&1 &
BD=$!
wait $BF; echo "bf rc $?"; wait $BD; echo "bd rc $?"
for m in bf bd; do mkdir -p $OUT/$m; cp $W/$m/*.json $W/$m/*.safetensors $OUT/$m/ 2>/dev/null; grep -v "^W1" $OUT/$m.log | grep -i "samples/s\|mAP\|NDS\|fitted\|paused\|stopped\|resumed\|rror\|Trace" | cut -c1-200 | tail -7; done
echo "total $(( $(date +%s) - T0 )) s"
