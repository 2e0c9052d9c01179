#!/usr/bin/env bash
# The installed package is the complete package: build the wheel, install it (not editable) into a
# fresh virtual environment, and run fit, predict, explain and the README's Python snippet from a
# temporary folder outside the checkout, where only what the wheel ships can be found.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q torch==2.13.0 "$work"/dist/deepchrome-*.whl

cd "$work"
export OMP_NUM_THREADS=1 DEEPCHROME_CACHE_DIR="$work/cache"
quiet=(--trainer.enable_progress_bar false --trainer.enable_model_summary false)
"$work/venv/bin/deepchrome" fit --config linear --trainer.max_epochs 2 --trainer.default_root_dir run "${quiet[@]}"
"$work/venv/bin/deepchrome" predict --config linear --ckpt_path run/checkpoints/last.ckpt \
    --trainer.default_root_dir predicted "${quiet[@]}"
test -s predicted/predictions.csv
"$work/venv/bin/deepchrome" explain --checkpoint run/checkpoints/last.ckpt --root data/example --cells S01 \
    --n-steps 8 --gene-figures 0 --out explained
test -s explained/attributions.npz
# The README's Python block, as a notebook user would paste it.
python - "$repo/README.md" > snippet.py <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.findall(r"```python\n# runs as a test\n(.*?)```", text, flags=re.S)[0])
print('assert 0 < run.metrics["test_auroc"] <= 1 and len(p) == 100, (run.metrics, p.shape)')
print('print(f"installed package: snippet ran, test AUROC {run.metrics[\'test_auroc\']:.3f}, {len(p)} genes")')
PY
"$work/venv/bin/python" snippet.py
"$work/venv/bin/python" -c "import deepchrome, pathlib; assert '$repo' not in deepchrome.__file__, deepchrome.__file__"
echo "wheel check passed: fit, predict, explain and the README snippet ran from $work"
