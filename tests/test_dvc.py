"""DVC versions what Dagster makes: dvc.yaml mirrors the asset graph, every stage depends on every
project module its code imports, and after a Dagster run in a fresh copy of the repository
`dvc status` is clean and `dvc repro` has nothing to do."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from helpers import copy_of_repository

from pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGE_OF_ASSET = {
    "raw_micro_behaviors": "ingest",
    "features": "features",
    "word2vec_embeddings": "word2vec",
    "baseline_comparison": "baselines",
    "model_comparison": "comparison",
    "section3_analysis": "section3",
    "micro_value": "micro_value",
    "case_study": "case_study",
    "report": "report",
    "registered_model": None,  # writes to the MLflow registry, not to files
}


def dvc(*args: str, cwd: Path) -> str:
    # Stage commands are `rib stage ...`: the venv's console script, importing the code under cwd.
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_dvc_yaml_has_one_stage_per_asset_that_writes_files():
    stages = set(dvc("stage", "list", "--name-only", cwd=REPO).split())
    expected = set()
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        name = key.to_user_string()
        if name.startswith("rib_"):
            model = "RIB-Attention" if name.startswith("rib_attention_") else "RIB"
            variant = name.removeprefix("rib_attention_").removeprefix("rib_")
            expected.add(f"train@{model}-{variant}")
        else:
            assert name in STAGE_OF_ASSET, f"asset {name} has no stage in dvc.yaml"
            expected.add(STAGE_OF_ASSET[name])
    assert stages == expected - {None}


def _module_file(module: str) -> Path | None:
    """The file of a project module (rib.x.y -> rib/x/y.py or rib/x/y/__init__.py), None outside rib."""
    if module != "rib" and not module.startswith("rib."):
        return None
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(nodes) -> set[str]:
    """Modules named by the import statements anywhere under `nodes` (`from a import b`: a.b when it is a module)."""
    found = set()
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {
                f"{node.module}.{alias.name}" for alias in node.names if _module_file(f"{node.module}.{alias.name}")
            }
    return found


def _has_code(path: Path) -> bool:
    """False for a package __init__ that only holds a docstring (importing it runs nothing)."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def stage_modules(stage: str) -> set[Path]:
    """Every project file a `rib stage STAGE` run imports: rib/steps.py, the imports inside the steps
    function STAGES[STAGE] and the steps functions it calls, then every import of those modules,
    transitively (function-level imports included). The CLI that dispatches to it is left out."""
    from rib.steps import STAGES

    steps_file = REPO / "rib" / "steps.py"
    tree = ast.parse(steps_file.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    modules = _imports([n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)])
    to_visit, seen = [STAGES[stage].__name__], set()
    while to_visit:
        function = functions[to_visit.pop()]
        seen.add(function.name)
        modules |= _imports([function])
        called = {n.func.id for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        to_visit += sorted(called & set(functions) - seen)
    files, queue = {steps_file}, sorted(modules)
    while queue:
        module = queue.pop()
        path = _module_file(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        queue += [parent for parent in parents if _module_file(parent) not in files]
        if path is None or path in files:
            continue
        files.add(path)
        queue += sorted(_imports([ast.parse(path.read_text())]))
    return {f for f in files if f.name != "__init__.py" or _has_code(f)}


def missing_deps(stage: str, deps: list[str]) -> set[str]:
    """Files `stage` imports that no entry of `deps` (a file, or a folder above it) covers."""
    declared = [REPO / dep for dep in deps]
    return {
        str(path.relative_to(REPO))
        for path in stage_modules(stage)
        if not any(path == dep or dep in path.parents for dep in declared)
    }


def test_every_stage_depends_on_every_module_its_code_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"rib stage {name}"), stage["cmd"]
        assert missing_deps(name, stage["deps"]) == set(), f"dvc.yaml stage {name} misses these deps"
        # and no code dependency it does not have (an edit there would rerun the stage for nothing)
        imported = stage_modules(name)
        unused = [
            dep
            for dep in stage["deps"]
            if dep.startswith("rib/") and not any(path == REPO / dep or REPO / dep in path.parents for path in imported)
        ]
        assert unused == [], f"dvc.yaml stage {name} depends on code it does not import"


def test_the_dependency_check_fails_on_a_removed_dependency():
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["deps"]
    assert "rib/evaluation" in deps
    without = [dep for dep in deps if dep != "rib/evaluation"]
    assert missing_deps("train", without) == {"rib/evaluation/metrics.py"}  # early stopping's metrics
    assert missing_deps("train", [d for d in deps if d != "rib/models"]) >= {"rib/models/train.py", "rib/models/rib.py"}


def test_a_dagster_run_leaves_dvc_with_nothing_to_do(tmp_path):
    clone = copy_of_repository(tmp_path)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["experiment"].update(models=["RIB"], variants=["sku_micro"])
    params["train"].update(epochs=1, progress=False)
    params["bpr"] = {"iterations": 5}
    params["experiment"]["baselines"] = ["POP", "S-POP", "V-SKNN", "GRU4Rec"]
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(clone / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(clone), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions", "--select", "*"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (clone / "data" / "micro_behaviors.parquet").exists()

    assert "up to date" in dvc("status", cwd=clone)  # data.dvc matches the generated default data too
    repro = dvc("repro", cwd=clone)
    assert "Running stage" not in repro, repro
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=clone))
    shown = json.dumps(metrics)
    assert "RIB/sku_micro" in shown and "recall@20" in shown and "mrr@20" in shown

    # One training parameter changes: the stages that train (the RIB models, and the baselines, whose
    # GRU4Rec, NARM and SASRec train with the same settings) and what is built from them would rerun.
    # Asked of DVC (--dry), not run: running them took a third of this test (`rib stage` runs in
    # test_cli and test_resume, and the Dagster run above wrote what each stage's outs declare).
    params["train"]["learning_rate"] = 0.003
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(dvc("status", "--json", cwd=clone))
    assert set(changed) == {"baselines", "train@RIB-sku_micro"}, changed  # their own params changed
    repro = dvc("repro", "--dry", "--force-downstream", cwd=clone)  # and everything built from them
    ran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running stage")}
    assert ran == {"baselines", "train@RIB-sku_micro", "comparison", "case_study", "report"}, repro
