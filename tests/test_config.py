"""params.yaml over the defaults of rib/config.py: strict, and read the same way by every entry point."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from rib.config import MODEL_SECTIONS, Params, ParamsError, RIBConfig, TrainConfig, load_params

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "experiment:\n  models: [RIB]\n  variants: [sku]\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_the_projects_params_file_loads_and_overrides_defaults(tmp_path):
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params) and params.experiment.models == ["RIB"]
    overridden = load_params(write(tmp_path, MINIMAL + "train:\n  epochs: 3\n  learning_rate: 1\n"))
    assert overridden.train.epochs == 3 and overridden.train.learning_rate == 1.0  # an int is a fine float
    assert overridden.train.batch_size == TrainConfig().batch_size  # everything else keeps its default


def test_a_models_own_training_settings_replace_the_train_sections_for_that_model_alone(tmp_path):
    text = "train:\n  patience: 4\n  weight_decay: 0.5\nembsr:\n  learning_rate: 0.001\n"
    params = load_params(write(tmp_path, MINIMAL + text))
    _, embsr = params.for_model("EMBSR", "sku_micro", "embsr")
    assert (embsr.patience, embsr.learning_rate, embsr.batch_size) == (6, 0.001, 32)  # its section's, and its default
    assert embsr.weight_decay == 0.0473  # its own (the study over three logs), not the train section's
    _, srgnn = params.for_model("SR-GNN", "sku", "srgnn")
    assert (srgnn.patience, srgnn.learning_rate) == (4, 9.87e-3)  # no patience of its own: the train section's
    _, rib = params.for_model("RIB", "sku", "model")
    assert (rib.patience, rib.learning_rate, rib.batch_size) == (4, 5e-3, 64)  # RIB's section's own
    assert rib.weight_decay == 0.5  # no weight decay of its own: the train section's
    without = dataclasses.replace(params, model=dataclasses.replace(params.model, learning_rate=None, batch_size=None))
    defaults = TrainConfig()
    _, rib = without.for_model("RIB", "sku", "model")
    assert (rib.learning_rate, rib.batch_size) == (defaults.learning_rate, defaults.batch_size)  # the train section's
    # RIB-Attention, the network without the mixture, has its own section and settings.
    ablation, ablation_training = params.for_model("RIB-Attention", "sku_micro", MODEL_SECTIONS["RIB-Attention"])
    assert (ablation_training.learning_rate, ablation_training.batch_size, ablation.dropout) == (1e-2, 64, 0.3)
    assert params.for_model("RIB", "sku", MODEL_SECTIONS["RIB"])[0].dropout == RIBConfig().dropout
    tuned = dataclasses.replace(params, tuned={"EMBSR/sku_micro": {"train": {"patience": 2}}})
    assert tuned.for_model("EMBSR", "sku_micro", "embsr")[1].patience == 2  # tuned settings win over both


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "train:\n  epoch: 3\n", "unknown key 'train.epoch'; did you mean 'train.epochs'?"),
        (MINIMAL + "trian:\n  epochs: 3\n", "unknown key 'trian'; did you mean 'train'?"),
        (MINIMAL + "train:\n  epochs: three\n", "'train.epochs' must be int, got 'three'"),
        (MINIMAL + "train:\n  device: [cpu]\n", "'train.device' must be str"),
        (MINIMAL + "features:\n  dwell_edges: [1, x]\n", "'features.dwell_edges' must be a list of float or null"),
        (MINIMAL + "model:\n  n_items: 5\n", "'model.n_items' is set per trained model"),
        (MINIMAL + "train: 3\n", "'train' must be a mapping"),
        ("experiment:\n  models: [RIB]\n", "missing key 'experiment.variants'"),
        ("data: {}\n", "missing key 'experiment.models'"),
        ("- a\n- b\n", "expected a mapping of sections"),
        ("train: {epochs: 3\n", "not valid YAML"),
    ],
)
def test_a_wrong_params_file_is_an_error_that_names_it(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_a_missing_params_file_is_an_error(tmp_path):
    with pytest.raises(ParamsError, match=r"nope\.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_rib_params_prints_every_resolved_setting_and_rejects_a_typo(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "rib.cli", "--params", str(write(tmp_path, MINIMAL)), "params"],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "learning_rate: 0.002" in good.stdout and "d_sku: 64" in good.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "rib.cli", "--params", str(write(tmp_path, MINIMAL + "modle: {}\n")), "params"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown key 'modle'; did you mean 'model'?" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_environment_names_the_params_file_for_every_entry_point(tmp_path, monkeypatch):
    from rib.config import default_params_path

    path = write(tmp_path, MINIMAL + "schedule:\n  retrain_cron: '5 4 * * *'\n")
    monkeypatch.setenv("RIB_PARAMS", str(path))
    assert default_params_path() == path
    from pipeline.definitions import build_definitions

    defs = build_definitions()  # the asset list, the schedule and the resource all follow the same file
    assert defs.resources["rib_params"].params_path == str(path)
    assert defs.get_schedule_def("nightly_retraining").cron_schedule == "5 4 * * *"
    trained = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} & {
        "rib_sku",
        "rib_sku_micro",
    }
    assert trained == {"rib_sku"}


def test_each_setting_has_one_default():
    # The defaults live in the dataclasses only: params.yaml never restates one.
    import yaml

    written = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = dataclasses.asdict(Params(experiment=load_params(REPO / "params.yaml").experiment))
    restated = [
        f"{section}.{key}"
        for section, values in written.items()
        if isinstance(values, dict) and section not in ("experiment", "data")
        for key, value in values.items()
        if defaults[section][key] == value
    ]
    assert restated == []


def test_a_section_keeps_its_own_defaults_where_they_differ_from_its_class(tmp_path):
    # gru4rec is a RIBConfig whose defaults are GRU4Rec's (no repeat part, no word2vec start).
    params = load_params(write(tmp_path, MINIMAL + "gru4rec:\n  hidden: 50\n"))
    assert params.gru4rec.hidden == 50 and params.gru4rec.repeat is False and params.gru4rec.word2vec_init is False
    assert params.model.repeat is True
    params = load_params(write(tmp_path, MINIMAL + "rib_attention:\n  hidden: 50\n"))
    assert (params.rib_attention.hidden, params.rib_attention.dropout, params.rib_attention.learning_rate) == (
        50,
        0.3,
        1e-2,
    )


def test_each_model_is_trained_on_the_variants_it_reads(tmp_path, capsys):
    """SR-GNN reads products, MKM-SR and EMBSR the operations beside them: the Dagster assets are the
    pairs each reads, and a stage asked for another pair says which it reads."""
    from pipeline.definitions import build_definitions
    from rib.cli import main

    path = write(tmp_path, "experiment:\n  models: [RIB, SR-GNN, EMBSR]\n  variants: [sku, sku_micro]\n")
    keys = {k.to_user_string() for k in build_definitions(str(path)).resolve_asset_graph().get_all_asset_keys()}
    assert {"rib_sku", "rib_sku_micro", "sr_gnn_sku", "embsr_sku_micro"} <= keys
    assert not {"sr_gnn_sku_micro", "embsr_sku"} & keys
    assert main(["--params", str(path), "stage", "train", "--model", "SR-GNN", "--variant", "sku_micro"]) == 2
    assert "SR-GNN does not read the sku_micro input; it reads visits, sku" in capsys.readouterr().err
