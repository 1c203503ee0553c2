#!/usr/bin/env bash
# Nsight Compute reports of op variants at their anchor shapes, one text file each (GPU machine with ncu).
#   bash benchmarks/ops_ncu.sh OUTDIR "ms_deform_attn anchor int8" "grid_sampler 3d fp32" ...
#   (a fourth word, a TUNING override as JSON without spaces, profiles a launch configuration: see ops_ncu.py)
# Clocks are left as found (--clock-control none). Each report: the "detailed" section set plus the raw
# counters quoted in benchmarks/NOTES-ops.md (load instructions, L1 wavefronts, L2 and DRAM bytes).
set -u
out=${1:?usage: ops_ncu.sh OUTDIR "OP CASE PRECISION" ...}
shift
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
metrics=smsp__inst_executed.sum,smsp__inst_executed_op_global_ld.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum
metrics=$metrics,l1tex__data_pipe_lsu_wavefronts_mem_lg_cmd_read.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum
metrics=$metrics,l1tex__t_sector_hit_rate.pct,lts__t_bytes.sum,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum
status=0
for item in "$@"; do
    name=$(echo "$item" | tr ' ' '_' | tr -d '{}":,')
    # shellcheck disable=SC2086  # item is "OP CASE PRECISION", split on purpose
    if ! ncu --clock-control none --profile-from-start off --set detailed --metrics "$metrics" \
        python3 "$here/ops_ncu.py" $item > "$out/ncu_$name.txt" 2>&1; then
        echo "ncu failed for $item (see $out/ncu_$name.txt)"
        status=1
    fi
    grep -E "^  [A-Za-z_].*\(|Duration|Memory Throughput|DRAM Throughput|L1/TEX Hit|L2 Hit|Compute \(SM\)|Registers Per|Achieved Occupancy|Issue Slots Busy|No Eligible|inst_executed.sum|wavefronts|t_requests|lts__t_bytes|dram__bytes" \
        "$out/ncu_$name.txt" | sed "s/^/[$name] /" | head -40
done
exit $status
