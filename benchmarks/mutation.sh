#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut, on demand (slow; not in CI). Results go in benchmarks/MUTATION.md.
#
#   benchmarks/mutation.sh                          # every mutant of the modules in [tool.mutmut] only_mutate
#   benchmarks/mutation.sh 'steersweep.actors.positions*'   # one module (mutmut's mutant-name globs)
#   MUTATION_TESTS_REF=main benchmarks/mutation.sh  # the same mutants against the tests of another git ref
#   MUTATION_REUSE=1 benchmarks/mutation.sh GLOB    # keep the staged copy and mutmut's recorded stats and results
#
# The package is the repository root under the name `steersweep`, which mutmut cannot map from file paths, so the
# code is staged as build/mutation/steersweep/{actors,analysis,...} next to tests/ and pyproject.toml, and mutmut
# runs there. Listed test files that do not exist at MUTATION_TESTS_REF are dropped from the selection; that ref's
# tests/conftest.py is replaced by this tree's (test infrastructure only: doctest collection, thread count).
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
stage=${MUTATION_STAGE:-$root/build/mutation}
if [[ -n "${MUTATION_REUSE:-}" && -d "$stage/mutants" ]]; then
    cd "$stage"
    export OMP_NUM_THREADS=1 RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
    mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" || true
    mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json && echo && mutmut results
    exit 0
fi
rm -rf "$stage"
mkdir -p "$stage/steersweep"
for package in actors analysis engine search cluster; do
    cp -r "$root/$package" "$stage/steersweep/"
done
cp "$root/pyproject.toml" "$stage/"
if [[ -n "${MUTATION_TESTS_REF:-}" ]]; then
    git -C "$root" archive "$MUTATION_TESTS_REF" tests | tar -x -C "$stage"
    # this tree's root conftest: it keeps --doctest-modules (pyproject addopts) off tests/ and sets one torch thread
    cp "$root/tests/conftest.py" "$stage/tests/conftest.py"
else
    cp -r "$root/tests" "$stage/"
fi
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
cd "$stage"
python - <<'PY'
import pathlib, re, tomllib
path = pathlib.Path("pyproject.toml")
text = path.read_text()
listed = tomllib.loads(text)["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
for missing in [f for f in listed if not pathlib.Path(f).exists()]:
    print(f"mutation.sh: {missing} does not exist here; left out of the selection")
    text = re.sub(rf'\n\s*"{re.escape(missing)}",', "", text)
path.write_text(text)
PY
export OMP_NUM_THREADS=1 RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" || true
mutmut export-cicd-stats
cat mutants/mutmut-cicd-stats.json; echo
mutmut results
