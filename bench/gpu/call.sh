#!/usr/bin/env bash
# Run ON the GPU machine, from the repo root, as the whole command of one device call:
#   bash bench/gpu/call.sh speed              # checks + speed measurements (~4 min, GPU alone)
#   bash bench/gpu/call.sh quality MIN [N]    # N parallel quality-benchmark shards for MIN minutes (12 per GPU
#                                             # suits 16 cores per GPU; on nvidia-h200-x2 pass N=24)
#   bash bench/gpu/call.sh both MIN [N]       # speed first, then quality for what is left of MIN
#   bash bench/gpu/call.sh graphs+quality MIN [N]  # --render-graphs vs the default render on the first 24 test
#                                             # edits (pnr, seed 0), each against the committed results, then quality
#   LAMBDAS="300,30000 30,3000" bash bench/gpu/call.sh lambda MIN  # dev-split pilot of the identity weights
#   bash bench/gpu/call.sh peer MIN            # bench/peer_fit.py: pnr fit vs nerfacc's recipe (carry .whl, see below)
#   bash bench/gpu/call.sh report MIN          # speed.json's GPU figures alone (bench/speed_report.py), then here
#                                             # `python bench/speed_report.py --merge-from /tmp/r/speed_gpu.json --readme`
#   bash bench/gpu/call.sh syncs+lazypaper MIN # host syncs of a quick edit (bench/gpu/count_syncs.py), then the paper
#                                             # edit with and without --lazy-budget, both evaluated (~3 min)
#   RT_BACKEND=ray|processes runs the retest on one pool of N workers instead of N shards;
#   RT_EXTRA="--preset paper --types pose,object,shape --limit 21" adds arguments to every retest shard
#   ABL_FILE=bench/ablations/issue19_round1.json bash bench/gpu/call.sh ablation MIN [N]  # dev-split ablation:
#     ABL_LIMIT (12) edits of ABL_TYPES (shape,pose,object), one process per edit (N), every tag of ABL_FILE,
#     ABL_SEEDS seeds (1), ABL_SPLIT (dev; dev2 = the tuning pool with every prompt kind), graphed render; results in
#     ablation/quality.jsonl; ABL_SHARD_MIN caps the shards' minutes; ABL_RAY_SEEDS=S then runs seeds up to S on one
#     Ray pool of N workers (needs .ray/ carried; jobs/min of both in the log); ABL_EXTRA="--preset paper" adds
#     arguments to every ablation shard
# (a mode naming several parts, e.g. speed+graphs+quality, runs them in that order)
# carry=[".gpusite"] (bench/gpu/prepare.sh builds it). Everything lands in $OUT/results.tgz (plus the log),
# written even when the call is killed at its limit; unpack it here and see bench/gpu/README.md.
set -uo pipefail
mode=${1:?mode: speed | quality | both}; minutes=${2:-8.5}; shards=${3:-12}
T0=$(date +%s)
W=/tmp/w; mkdir -p $W/q  # on a still-warm machine /tmp/w keeps the last call's records (seen 2026-12-02): the same
                         # run in a second call resumes from them, and results.tgz then carries both calls' records
export PYTHONPATH=$PWD/.gpusite:$PWD PYTHONUNBUFFERED=1
# Ray (issue 18): its wheel (79 MB) and the prior's weights are over the transfer limit together. bench/gpu/ray_site.sh
# builds a 19 MB .tar.xz (the cp312 wheel unpacked, binaries stripped, without its Java jars, source maps and the
# data/train/tune/serve/rllib/llm libraries; plus jsonschema and its three needs, which the image lacks) split in three
# parts .ray/p0 p1 p2: carry one per call, back to back. A carried path does not outlast its call (2026-12-02: the
# second call found only its own part), but /tmp does on a warm machine, so each call stashes its part there.
mkdir -p /tmp/ray_parts; cp .ray/p? /tmp/ray_parts/ 2>/dev/null
if [ -f /tmp/ray_parts/p0 ] && [ -f /tmp/ray_parts/p1 ] && [ -f /tmp/ray_parts/p2 ] && [ ! -d /tmp/site/ray ]; then
  mkdir -p /tmp/site && cat /tmp/ray_parts/p0 /tmp/ray_parts/p1 /tmp/ray_parts/p2 | tar -C /tmp/site -xJ
fi
[ -d /tmp/site/ray ] && export PYTHONPATH=/tmp/site:$PYTHONPATH RAY_USAGE_STATS_ENABLED=0
echo "ray parts stashed: $(ls /tmp/ray_parts | tr '\n' ' ')"
# the source caches (fitted fields, tens of MB) never travel back, and each packer writes its own temporary file: on
# 2026-12-04 an ablation call's results.tgz came back over the 16 MiB file limit, most likely a periodic pack made
# while the cache existed landing after the final one (both wrote one partial.tgz)
pack() { local tmp=$OUT/partial.$BASHPID.tgz
  tar -C $W --exclude='./*/cache' --exclude='./*/cache_ray' -czf $tmp . 2>/dev/null && mv $tmp $OUT/results.tgz; }
trap pack EXIT
( while sleep 60; do pack; done ) &  # a call killed at its time limit still brings back the last minute's state
packer=$!
left() { python3 -c "print(max(0.0, $minutes - ($(date +%s) - $T0) / 60))"; }
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv | tee $W/gpu.txt
python3 -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name(0))' | tee -a $W/gpu.txt

case "$mode" in both) mode=speed+quality ;; esac

# SIDE="--split dev2 --field small_blob ..." runs a second benchmark run alongside the mode, SIDE_SHARDS (4) shards
# of `bench/quality.py run` to $W/side/quality.jsonl (graphed render, SIDE_METHODS (pnr)), for what is left of MIN;
# the call waits for it at the end. Its records pair with the mode's when the edits and seeds are the same.
side_pids=()
# EXTRA_CMD="..." runs one more command alongside (e.g. a memory measurement that does not need the GPU alone), its
# output in $W/extra.txt; the call waits for it at the end.
if [ -n "${EXTRA_CMD:-}" ]; then ( bash -c "$EXTRA_CMD" > $W/extra.txt 2>&1 ) & side_pids+=($!); echo "extra: $EXTRA_CMD"; fi
if [ -n "${SIDE:-}" ]; then
  mkdir -p $W/side; ms=$(python3 -c "print(round($minutes - 1.0, 2))")
  for i in $(seq 0 $((${SIDE_SHARDS:-4} - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % $(nvidia-smi -L | wc -l))) python3 bench/quality.py run --out $W/side/quality.jsonl \
      --device cuda --shard $i/${SIDE_SHARDS:-4} --max-minutes $ms --methods ${SIDE_METHODS:-pnr} \
      --set render_graphs=true --threads 1 --thumb-edits 0 --no-warm-up $SIDE > $W/side/shard$i.log 2>&1 &
    side_pids+=($!)
  done
  echo "side: ${SIDE_SHARDS:-4} shards of ${SIDE_METHODS:-pnr} $SIDE"
fi

if [[ $mode == *evalcheck* ]]; then  # `pnr eval` of a GPU edit (GT turntable rendered on the GPU)
  ( timeout 120 python3 -m pnr.cli edit pnr/assets/sample/red_mug "in blue" --preset quick --device cuda --out $W/quick \
    && timeout 120 python3 -m pnr.cli eval $W/quick --device cuda --json $W/quick_eval.json ) > $W/quick_eval.txt 2>&1
  tail -12 $W/quick_eval.txt; rm -rf $W/quick/checkpoint $W/quick/*.pt $W/quick/*.npz
fi

if [[ $mode == *speed* ]]; then
  timeout 120 python3 -m pytest -q tests/render/test_graphed.py tests/test_cuda_graph.py tests/field/test_encoding_triton.py \
    > $W/gpu_tests.txt 2>&1; tail -3 $W/gpu_tests.txt
  timeout 150 python3 bench/edit_speed.py --device cuda --fit-steps 300 --fraction 0.1 --json $W/edit_speed.json \
    --profile $W/profile.txt > $W/edit_speed.txt 2>&1; tail -8 $W/edit_speed.txt
  timeout 150 python3 bench/edit_speed.py --device cuda --fit-steps 300 --fraction 0.1 --no-render-graphs \
    --json $W/edit_speed_eager.json > $W/edit_speed_eager.txt 2>&1; tail -8 $W/edit_speed_eager.txt
  ( time timeout 200 python3 -m pnr.cli edit pnr/assets/sample/red_mug "in blue" --preset paper --device cuda --out $W/paper ) \
    > $W/paper_edit.txt 2>&1; tail -4 $W/paper_edit.txt
  ( time timeout 200 python3 -m pnr.cli edit pnr/assets/sample/red_mug "in blue" --preset paper --device cuda \
    --no-render-graphs --out $W/paper_eager ) > $W/paper_edit_eager.txt 2>&1; tail -4 $W/paper_edit_eager.txt
  timeout 120 python3 -m pnr.cli eval $W/paper $W/paper_eager --device cuda --json $W/paper_eval.json \
    > $W/paper_eval.txt 2>&1; tail -6 $W/paper_eval.txt
  rm -rf $W/paper*/checkpoint $W/paper*/*.pt $W/paper*/*.npz 2>/dev/null
fi

if [[ $mode == *report* ]]; then  # speed.json's GPU figures, measured alone: paper edit + its memory, MVDream (~4 min)
  # the MVDream figures need diffusers, which the image lacks: carry .whl with diffusers + importlib_metadata
  # (`python3 -m pip download --no-deps --only-binary=:all: -d .whl diffusers==0.42.1 importlib_metadata`)
  ( if ls .whl/diffusers-*.whl > /dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/hsite \
        .whl/diffusers-*.whl .whl/importlib_metadata-*.whl 2>&1 | tail -2; export PYTHONPATH=$PYTHONPATH:/tmp/hsite
    fi
    timeout ${REPORT_TIMEOUT:-420} python3 bench/speed_report.py \
      --only ${REPORT_ONLY:-paper_edit_s,peak_mem_gb_builtin,mvdream_edit_min,peak_mem_gb_mvdream,peak_mem_gb_mvdream_low_memory} --out $W/speed_gpu.json ) \
    > $W/speed_report.txt 2>&1; tail -8 $W/speed_report.txt
  # here: python bench/speed_report.py --merge-from /tmp/r/speed_gpu.json --readme
fi

if [[ $mode == *syncs* ]]; then  # host syncs of a quick GPU edit, per source line, per-step budget vs --lazy-budget
  for v in step lazy; do
    flag=""; [ $v = lazy ] && flag=--lazy-budget
    timeout 150 python3 bench/gpu/count_syncs.py pnr/assets/sample/red_mug "in blue" --preset quick --device cuda \
      --out $W/sync_$v --quiet $flag > $W/syncs_$v.txt 2>&1; tail -12 $W/syncs_$v.txt
    rm -rf $W/sync_$v/checkpoint
  done
fi

if [[ $mode == *lazypaper* ]]; then  # the paper edit with --lazy-budget beside the default, both evaluated
  for v in default lazy; do
    flag=""; [ $v = lazy ] && flag=--lazy-budget
    ( time timeout 200 python3 -m pnr.cli edit pnr/assets/sample/red_mug "in blue" --preset paper --device cuda \
      --out $W/paper_$v $flag ) > $W/paper_edit_$v.txt 2>&1; tail -4 $W/paper_edit_$v.txt
  done
  timeout 120 python3 -m pnr.cli eval $W/paper_default $W/paper_lazy --device cuda --json $W/paper_lazy_eval.json \
    > $W/paper_lazy_eval.txt 2>&1; tail -6 $W/paper_lazy_eval.txt
  rm -rf $W/paper_*/checkpoint
fi

if [[ $mode == *peer* ]]; then  # bench/peer_fit.py: `pnr fit` beside nerfacc's instant-ngp recipe (issue 21 item 3)
  # carry .whl/ with nerfacc-0.5.3 (+ rich, markdown-it-py, mdurl, pygments, which it imports); its CUDA code builds
  # at first use with nvcc. nerfacc 0.5.3's unused `lerp` helpers clash with C++20's std::lerp under torch's
  # -std=c++20 (the build failed on that with nvcc 13.0 + torch 2.14.1+cu130 on the CPU machine, 2026-12-03, and
  # succeeded with the rename, 6 min at MAX_JOBS=2): renamed before the build.
  mkdir -p /tmp/dsite && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/dsite \
    .whl/nerfacc-*.whl .whl/rich-*.whl .whl/markdown_it_py-*.whl .whl/mdurl-*.whl .whl/pygments-*.whl 2>&1 | tail -2
  sed -i 's/\blerp(/nerfacc_unused_lerp(/' /tmp/dsite/nerfacc/cuda/csrc/include/utils_math.cuh
  # torch's CUDA headers include cublas_v2.h, which a toolkit without cuBLAS lacks; pip's nvidia/*/include have it
  inc=$(python3 -c 'import glob, os, torch; print(":".join(glob.glob(os.path.dirname(os.path.dirname(torch.__file__)) + "/nvidia/*/include")))')
  ( export PYTHONPATH=$PYTHONPATH:/tmp/dsite MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 CPATH=${CPATH:+$CPATH:}$inc
    time timeout ${PEER_TIMEOUT:-420} python3 bench/peer_fit.py --device cuda --json $W/peer.json ${PEER_EXTRA:-} ) \
    > $W/peer.txt 2>&1; tail -14 $W/peer.txt
fi

ngpu=$(nvidia-smi -L 2>/dev/null | wc -l); [ "$ngpu" -ge 1 ] || ngpu=1  # shards round-robin over the GPUs

if [[ $mode == *graphs* ]]; then  # is the CUDA-graph render equal to the default within run-to-run noise?
  pids=()
  for tag in default graphs; do
    mkdir -p $W/$tag; flag=false; [ $tag = graphs ] && flag=true
    for i in $(seq 0 $((shards / 2 - 1))); do
      CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $W/$tag/quality.jsonl --device cuda \
        --methods pnr --seeds 1 --limit ${GRAPHS_LIMIT:-24} --max-minutes ${GRAPHS_MINUTES:-30} --shard $i/$((shards / 2)) --set render_graphs=$flag --threads 1 \
        --thumb-edits 0 --no-warm-up > $W/$tag/shard$i.log 2>&1 &
      pids+=($!)
    done
  done
  wait "${pids[@]}"
  for tag in default graphs; do
    python3 bench/quality.py compare --a bench/results/quality.jsonl --b $W/$tag/quality.jsonl --variant pnr \
      | tee $W/compare_$tag.md
  done
  python3 bench/quality.py compare --a $W/default/quality.jsonl --b $W/graphs/quality.jsonl | tee $W/compare_default_graphs.md
  grep -h "finished" $W/default/shard*.log $W/graphs/shard*.log | head -4
fi

if [[ $mode == *lambda* ]]; then  # dev-split pilot of the identity weights: (λ_L1, λ_p) scaled together
  pids=()                          # LAMBDA_LIMIT dev edits per setting, one shard per edit, all at once
  for lp in ${LAMBDAS:-300,30000 100,10000 30,3000 0,0}; do
    l1=${lp%,*}; lpp=${lp#*,}; d=$W/lambda/l1_${l1}_p_${lpp}; mkdir -p $d
    for i in $(seq 0 $((${LAMBDA_LIMIT:-6} - 1))); do
      CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $d/quality.jsonl --device cuda --split dev \
        --methods pnr --seeds 1 --limit ${LAMBDA_LIMIT:-6} --shard $i/${LAMBDA_LIMIT:-6} --set lambda_l1=$l1 \
        --set lambda_p=$lpp --threads 1 --thumb-edits 0 --no-warm-up --max-minutes ${LAMBDA_MINUTES:-6} \
        > $d/shard$i.log 2>&1 &
      pids+=($!)
    done
  done
  wait "${pids[@]}"
  grep -h "finished" $W/lambda/*/shard*.log
fi

if [[ $mode == *ablation* ]]; then
  d=$W/ablation; mkdir -p $d/cache
  [ -n "${ABL_DONE:-}" ] && cp $ABL_DONE $d/quality.jsonl  # finished jobs of an earlier call: skipped
  n=${ABL_LIMIT:-12}; m=$(python3 -c "print(round($(left) - 0.6, 2))")
  ta=$(date +%s); echo "ablation: $n edits of ${ABL_TYPES:-shape,pose,object}, $(basename ${ABL_FILE:?}) for $m minutes"
  pids=()
  for i in $(seq 0 $((n - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $d/quality.jsonl --device cuda --split ${ABL_SPLIT:-dev} \
      --types ${ABL_TYPES:-shape,pose,object} --limit $n --shard $i/$n --methods ${ABL_METHODS:-pnr} \
      --ablation $ABL_FILE --seeds ${ABL_SEEDS:-1} --set render_graphs=true --identity-grad --threads 1 \
      --thumb-edits 0 --no-warm-up --max-minutes ${ABL_SHARD_MIN:-$m} --source-cache $d/cache ${ABL_EXTRA:-} \
      > $d/shard$i.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s); echo "ablation shards: $((t1 - ta)) s wall, $(cat $d/quality*.jsonl | wc -l) records"
  rm -rf $d/cache
  grep -h "finished" $d/shard*.log
  if [ -n "${ABL_RAY_SEEDS:-}" ]; then  # the jobs of the further seeds on one Ray pool of N workers (jobs/min vs shards)
    m=$(python3 -c "print(round($(left) - 0.5, 2))"); mkdir -p $d/cache_ray
    python3 -c 'import ray; print("ray", ray.__version__)' 2>&1 | tail -1
    tr=$(date +%s)
    python3 bench/quality.py run --out $d/quality.jsonl --device cuda --split ${ABL_SPLIT:-dev} \
      --types ${ABL_TYPES:-shape,pose,object} --limit $n --methods ${ABL_METHODS:-pnr} --ablation $ABL_FILE \
      --seeds $ABL_RAY_SEEDS --set render_graphs=true --identity-grad --threads 1 --thumb-edits 0 --no-warm-up \
      --max-minutes $m --source-cache $d/cache_ray --workers $shards --backend ray > $d/ray.log 2>&1
    echo "ablation ray: rc $?, $(( $(date +%s) - tr )) s wall"; grep -v "^quality: \[" $d/ray.log | tail -8
    rm -rf $d/cache_ray
  fi
fi

if [[ $mode == *retest* ]]; then  # a fresh test-split run: RT_METHODS (pnr), RT_SEEDS (1), graphed; RT_DONE=FILE skips its jobs
  d=$W/retest; mkdir -p $d; [ -n "${RT_DONE:-}" ] && cp $RT_DONE $d/quality.jsonl; m=$(python3 -c "print(round($(left) - 0.6, 2))")
  echo "retest: ${RT_METHODS:-pnr}, $shards shards for $m minutes"
  pids=(); tr=$(date +%s)
  if [ -n "${RT_BACKEND:-}" ]; then  # one pool of N workers (ray | processes) instead of N shards
    python3 bench/quality.py run --out $d/quality.jsonl --device cuda --max-minutes $m --methods ${RT_METHODS:-pnr} \
      --seeds ${RT_SEEDS:-1} --set render_graphs=true --threads 1 --thumb-edits ${RT_THUMBS:-2} --no-warm-up \
      ${RT_EXTRA:-} --workers $shards --backend $RT_BACKEND > $d/pool.log 2>&1 &
    pids+=($!); shards=0
  fi
  for i in $(seq 0 $((shards - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $d/quality.jsonl --device cuda --shard $i/$shards \
      --max-minutes $m --methods ${RT_METHODS:-pnr} --seeds ${RT_SEEDS:-1} --set render_graphs=true --threads 1 \
      --thumb-edits ${RT_THUMBS:-2} --no-warm-up ${RT_EXTRA:-} > $d/shard$i.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  echo "retest: $(( $(date +%s) - tr )) s wall; records: $(cat $d/quality*.jsonl | wc -l) (with RT_DONE's)"
  grep -h "finished" $d/shard*.log $d/pool.log 2>/dev/null
fi

if [[ $mode == *quality* ]]; then
  cp bench/results/quality.jsonl $W/q/quality.jsonl
  m=$(python3 -c "print(round($(left) - 0.7, 2))")
  echo "quality: $shards shards on $ngpu GPU(s) for $m minutes"
  pids=()
  for i in $(seq 0 $((shards - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/quality.py run --out $W/q/quality.jsonl --device ${DEVICE:-cuda} --shard $i/$shards --max-minutes $m \
      --methods pnr,sds,pds,idu,regen,pnr_fixed --threads 1 > $W/q/shard$i.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  # alternative to the loop above, one command on a pnr.batch pool of $shards workers (issue 18, docs/batch.md; not
  # run on a GPU yet); --shard 0/1 keeps its records in quality.shard0.jsonl, which the steps below pack as before:
  # python3 bench/quality.py run --out $W/q/quality.jsonl --device ${DEVICE:-cuda} --shard 0/1 --workers $shards --max-minutes $m --methods pnr,sds,pds,idu,regen,pnr_fixed > $W/q/shard0.log 2>&1
  rm $W/q/quality.jsonl
  grep -h "finished" $W/q/shard*.log
fi
if [ ${#side_pids[@]} -gt 0 ]; then
  wait "${side_pids[@]}"; echo "side: $(cat $W/side/quality*.jsonl 2>/dev/null | wc -l) records"
  grep -h "finished" $W/side/shard*.log
fi
kill $packer 2>/dev/null; wait $packer 2>/dev/null; rm -f $OUT/partial.*.tgz
