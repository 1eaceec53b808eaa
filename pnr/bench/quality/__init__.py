"""Quality benchmark (paper Tables 1-2, Fig. 8) on the built-in domain's held-out TEST split, with ground truth.

    python bench/quality.py run    --out bench/results/quality.jsonl [--device cuda] [--methods pnr,sds,...]
                                   [--types color,...] [--limit N] [--shard I/N | --workers K] [--max-minutes M]
                                   [--fit-steps K] [--preset bench] [--edit-steps S ...] [--set NAME=VALUE ...]
    python bench/quality.py merge  --jsonl bench/results/quality.jsonl
    python bench/quality.py table  --jsonl bench/results/quality.jsonl --md docs/quality.md
    python bench/quality.py figure --jsonl bench/results/quality.jsonl --out docs/quality_grid.png
    python bench/quality.py compare --a bench/results/quality.jsonl --b OTHER.jsonl [--variant pnr]
    python bench/quality.py left   --jsonl bench/results/quality.jsonl   # jobs still to run, per variant
    (also `pnr bench quality run|merge|table|figure ...`)

run: one job per (edit_id, variant, seed). Variants: "pnr" (η by Alg. 2), "pnr_fixed_<η>" for η in
{0, 0.2, 0.4, 0.6, 0.8}, "sds", "pds", "idu", "regen"; seeds 0 and 1 for pnr and sds, seed 0 for the rest.
"pnr_norevise" is not a run of its own: each "pnr" job also evaluates its field as it was at the end of the
edit phase (the loop's on_phase_end hook) and records it with the seconds of search + edit only.
Jobs are grouped by source object; each source is rendered exactly and fitted once per process. Keys
already in the results (the --out file and its shard files) are skipped, so a run can be repeated until
everything is done. Every finished job appends one JSON line (pnr: two) in a single write + fsync; a
truncated last line (a process killed mid-write) is ignored on read and cut off before the next append.
--shard I/N: process I of N takes the edits whose index in the selected list is I mod N and writes
`<out stem>.shardI.jsonl`; `table` and `figure` read the shard files too, `merge` folds them into --out.
--workers K: one command instead of N shards: the edits go to a pnr.batch pool of K worker processes
(pnr/bench/quality/worker.py; --backend processes | ray | inline, --workers-per-gpu as `pnr batch`'s),
one edit with all its jobs at a time per worker, which loads the prior and encoder once and runs one torch
thread (--threads); the driver appends each edit's records to --out (the same records a sharded run writes,
plus "worker") and a line per edit to `<out stem>.batch.jsonl`; an edit that raises is recorded there as
failed (its finished jobs are kept) and the others go on.
--max-minutes: before each source fit and each job, the harness stops if the estimate (the longest
finished job of that variant so far, else of any variant, with a margin) would overrun (with --workers:
each worker, from the command's start; the pool then hands out no further edit).

On the GPU machine: `bash bench/gpu/call.sh quality MINUTES SHARDS` runs the shards in parallel (finished keys
skipped) and packs the shard files for the trip back; bench/gpu/README.md says how to fold them in here
(copy into bench/results/, `merge`, `table`, commit).

Settings are fixed beforehand (preset "bench" of pnr/edit/config.py, Δ_min and guidance as `pnr edit`);
nothing is tuned on the test split. Per-job thumbnails (4 views, 64 px, seed 0) for the first
--thumb-edits (2) test edits of each type go to <out dir>/thumbs/ for the figure.
"""

from .cli import build_parser, main
from .config import RunConfig, parse_overrides
from .jobs import (FIXED_ETAS, MULTI_SEED, RUN_VARIANTS, THUMB_RES, THUMB_VIEWS, TYPES, VARIANTS, Job, jobs_left,
                   jobs_of, key_of, parse_methods, read_ablation, seeds_of, select_edits, split_tag, thumb_edit_ids,
                   variant_run)
from .report import (claims_section, compare_runs, expected_counts, markdown_table, method_rows, paired_table,
                     summarize, update_readme_tables)
from .results import Appender, clean, read_jsonl, read_results, result_files, shard_path
from .run import RunContext, cmd_run, fit_source, make_config, run_job

_parse_overrides = parse_overrides  # the name bench/quality.py had

__all__ = [
    "Appender", "FIXED_ETAS", "Job", "MULTI_SEED", "RUN_VARIANTS", "RunConfig", "RunContext", "THUMB_RES", "THUMB_VIEWS",
    "TYPES", "VARIANTS", "build_parser", "claims_section", "clean", "cmd_run", "compare_runs", "expected_counts",
    "fit_source", "jobs_left", "jobs_of", "key_of", "main", "make_config", "markdown_table", "method_rows",
    "paired_table", "parse_methods", "parse_overrides", "read_ablation", "read_jsonl", "read_results",
    "result_files", "run_job", "seeds_of", "select_edits", "shard_path", "split_tag", "summarize", "thumb_edit_ids",
    "update_readme_tables", "variant_run",
]
