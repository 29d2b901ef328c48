#!/usr/bin/env bash
# Mutation testing (cosmic-ray) of the paper's mechanisms and the data-safety code.
#
#   tools/mutation.sh                     every module below, smallest/most critical first
#   tools/mutation.sh engine/atomic.py    only the modules named
#   RETEST=1 tools/mutation.sh ...        run the survivors again (after tests were added)
#   FRESH=1 tools/mutation.sh ...         forget earlier results (after the module changed)
#   MUTATION_BUDGET=600 tools/mutation.sh ... at most 600 s per module, the rest left pending
#   MUTATION_SAMPLE=100 tools/mutation.sh ... a seeded random 100 of the module's mutants
#                                          (MUTATION_SEED, default 0): for modules whose tests
#                                          are too slow to run every mutant; reported apart
#   MUTATION_TIMEOUT=600 ...               seconds per mutant before it counts as killed
#                                          (default 120; raise it on a loaded machine)
#
# Each module is mutated in a copy of the checkout (under $MUTATION_WORK, default
# /tmp/lungsam-mutation), never in the working tree, and each mutant runs only the
# module's fast tests (the map below), stopping at the first failure. Results stay in
# $MUTATION_WORK/<module>.sqlite, so a stopped run continues where it was; a report per
# module (score, surviving mutants as diffs) is written to $MUTATION_WORK/<module>.txt.
# Not part of `pytest`: hundreds of pytest runs, minutes to hours on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${MUTATION_WORK:-/tmp/lungsam-mutation}
TIMEOUT=${MUTATION_TIMEOUT:-120}

# module -> its fast tests (what a mutant of the module must fail)
declare -A TESTS=(
  [trainer/evaluation/metrics.py]="tests/trainer/evaluation/test_metrics.py"
  [trainer/evaluation/stats.py]="tests/trainer/evaluation/test_stats.py"
  [engine/adalora/rank_allocator.py]="tests/engine/adalora/test_rank_allocator.py"
  [engine/atomic.py]="tests/engine/test_atomic.py"
  [engine/quant/qat.py]="tests/engine/quant/test_qat.py"
  [engine/quant/int8_runtime.py]="tests/engine/quant/test_int8_runtime.py"
  [engine/adalora/layer.py]="tests/engine/adalora/test_adalora.py"
  [engine/adalora/model.py]="tests/engine/adalora/test_adalora.py tests/trainer/training/test_stages.py"
  [engine/project/store.py]="tests/engine/project/test_store.py tests/engine/test_atomic.py tests/engine/project/test_db.py tests/engine/project/test_damaged.py tests/engine/project/test_migration.py tests/engine/project/test_review.py tests/engine/project/test_disk_full.py"
  [engine/project/db.py]="tests/engine/project/test_store.py tests/engine/project/test_db.py tests/engine/project/test_damaged.py tests/engine/project/test_migration.py tests/engine/project/test_review.py tests/engine/project/test_disk_full.py"
  [engine/project/annotations.py]="tests/engine/project/test_store.py tests/engine/test_atomic.py tests/engine/project/test_db.py tests/engine/project/test_damaged.py tests/engine/project/test_migration.py tests/engine/project/test_review.py tests/engine/project/test_disk_full.py"
  [trainer/training/stages.py]="tests/trainer/training/test_stages.py"
  [trainer/training/loop.py]="tests/trainer/training/test_loop_units.py tests/trainer/training/test_stages.py tests/trainer/training/test_loop.py"
)
ORDER=(
  trainer/evaluation/metrics.py trainer/evaluation/stats.py engine/adalora/rank_allocator.py
  engine/atomic.py engine/quant/qat.py engine/quant/int8_runtime.py engine/adalora/layer.py
  engine/adalora/model.py trainer/training/stages.py trainer/training/loop.py
  engine/project/store.py engine/project/db.py engine/project/annotations.py
)
if [ $# -gt 0 ]; then ORDER=("$@"); fi

mkdir -p "$WORK"
SRC=
trap 'rm -rf "$SRC"' EXIT

for module in "${ORDER[@]}"; do
  # a fresh copy per module (a stopped run may leave its mutant in place), never shared
  rm -rf "$SRC"
  SRC=$(mktemp -d "$WORK/src.XXXXXX")
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SRC")
  cd "$SRC"
  tests=${TESTS[$module]:?"no tests mapped for $module"}
  name=${module//\//.}
  cfg=$WORK/$name.toml
  db=$WORK/$name.sqlite
  cat >"$cfg" <<TOML
[cosmic-ray]
module-path = "$module"
timeout = $TIMEOUT
excluded-modules = []
test-command = "env PYTHONPATH=$SRC QT_QPA_PLATFORM=offscreen python -m pytest -x -q -p no:cacheprovider $tests"

[cosmic-ray.distributor]
name = "local"

# One plausible alternative per operator (as mutmut does), not all 12: x + y -> x - y, not
# x << y. BitOr is left alone: here it only spells type hints, never evaluated
# (from __future__ import annotations). Unary ~ and VariableReplacer/Inserter add
# noise, not bugs a person writes.
[cosmic-ray.filters.operators-filter]
exclude-operators = [
  "core/ReplaceBinaryOperator_(?!(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Div_FloorDiv|Pow_Mul|Mod_FloorDiv|BitAnd_BitOr)$)",
  "core/ReplaceComparisonOperator_(?!(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Eq_NotEq|NotEq_Eq|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)$)",
  "core/ReplaceUnaryOperator_(?!(Delete_USub|Delete_Not)$)",
  "core/VariableReplacer",
  "core/VariableInserter",
]
TOML
  if [ -n "${FRESH:-}" ] || [ ! -f "$db" ]; then
    # built aside and renamed: a run stopped during init must not leave a half-made session
    rm -f "$db" "$db.new"
    cosmic-ray init "$cfg" "$db.new"
    mv "$db.new" "$db"
  fi
  # every run, not only after init (both only touch pending mutants): a session whose filter
  # was stopped half-way (engine.quant.qat: 120 of 295 filtered mutants skipped) would
  # otherwise run and count the mutants the filter exists to leave out
  cr-filter-operators "$db" "$cfg"
  cr-filter-pragma "$db"  # lines marked '# pragma: no mutate' (equivalent mutants, see README)
  if [ -n "${MUTATION_SAMPLE:-}" ]; then
    python "$ROOT/tools/mutation_sample.py" "$db" "$MUTATION_SAMPLE" "${MUTATION_SEED:-0}"
  fi
  if [ -n "${RETEST:-}" ]; then
    python - "$db" <<'PY'
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as db:
    db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
PY
  fi
  echo "== $module: $tests"
  # MUTATION_BUDGET: seconds per module (0: no limit); what is left stays pending
  timeout "${MUTATION_BUDGET:-0}" cosmic-ray exec "$cfg" "$db" || echo "stopped after ${MUTATION_BUDGET}s"
  cr-report "$db" --show-pending >"$WORK/$name.txt" || true
  tail -n 3 "$WORK/$name.txt"
done
python "$ROOT/tools/mutation_report.py" "$WORK"
