#!/usr/bin/env bash
# Run ON the GPU machine, from the repo root, as the whole command of one device call:
#   bash bench/gpu/call.sh speed              # checks + speed measurements (~4 min, GPU alone)
#   bash bench/gpu/call.sh quality MIN [N]    # N parallel quality-benchmark shards for MIN minutes (12 per GPU
#                                             # suits 16 cores per GPU; on nvidia-h200-x2 pass N=24)
#   bash bench/gpu/call.sh both MIN [N]       # speed first, then quality for what is left of MIN
# carry=[".gpusite"] (bench/gpu/prepare.sh builds it). Everything lands in $OUT/results.tgz (plus the log),
# written even when the call is killed at its limit; unpack it here and see bench/gpu/README.md.
set -uo pipefail
mode=${1:?mode: speed | quality | both}; minutes=${2:-8.5}; shards=${3:-12}
T0=$(date +%s)
W=/tmp/w; mkdir -p $W/q
export PYTHONPATH=$PWD/.gpusite:$PWD PYTHONUNBUFFERED=1
pack() { tar -C $W -czf $OUT/partial.tgz . 2>/dev/null && mv $OUT/partial.tgz $OUT/results.tgz; }
trap pack EXIT
( while sleep 60; do pack; done ) &  # a call killed at its time limit still brings back the last minute's state
packer=$!
left() { python3 -c "print(max(0.0, $minutes - ($(date +%s) - $T0) / 60))"; }
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv | tee $W/gpu.txt
python3 -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name(0))' | tee -a $W/gpu.txt

if [ "$mode" = speed ] || [ "$mode" = both ]; then
  timeout 120 python3 -m pytest -q tests/render/test_graphed.py tests/test_cuda_graph.py tests/field/test_encoding_triton.py \
    > $W/gpu_tests.txt 2>&1; tail -3 $W/gpu_tests.txt
  timeout 150 python3 bench/edit_speed.py --device cuda --fit-steps 300 --fraction 0.1 --json $W/edit_speed.json \
    --profile $W/profile.txt > $W/edit_speed.txt 2>&1; tail -8 $W/edit_speed.txt
  timeout 150 python3 bench/edit_speed.py --device cuda --fit-steps 300 --fraction 0.1 --render-graphs \
    --json $W/edit_speed_graphs.json > $W/edit_speed_graphs.txt 2>&1; tail -8 $W/edit_speed_graphs.txt
  ( time timeout 200 python3 -m pnr.cli edit pnr/assets/sample/red_mug "in blue" --preset paper --device cuda --out $W/paper ) \
    > $W/paper_edit.txt 2>&1; tail -4 $W/paper_edit.txt
  rm -rf $W/paper/ckpt* $W/paper/*.pt 2>/dev/null
fi

if [ "$mode" = quality ] || [ "$mode" = both ]; then
  cp bench/results/quality.jsonl $W/q/quality.jsonl
  m=$(python3 -c "print(round($(left) - 0.7, 2))")
  ngpu=$(nvidia-smi -L 2>/dev/null | wc -l); [ "$ngpu" -ge 1 ] || ngpu=1  # shards round-robin over the GPUs (nvidia-h200-x2: twice the jobs per device-minute)
  echo "quality: $shards shards on $ngpu GPU(s) for $m minutes"
  pids=()
  for i in $(seq 0 $((shards - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $W/q/quality.jsonl --device ${DEVICE:-cuda} --shard $i/$shards --max-minutes $m \
      --methods pnr,sds,pds,idu,regen,pnr_fixed --threads 1 > $W/q/shard$i.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  rm $W/q/quality.jsonl
  grep -h "finished" $W/q/shard*.log
fi
kill $packer 2>/dev/null
