"""Whole training runs on tiny data: resume, two-process DDP, export into a weights folder, the simulated source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.errors import WeightsError
from model.volumes.intensity import OUTPUT_CEILING, normalisation_record
from model.weights.manifest import load_network, read_manifest, sha256_of
from test_training_helpers import single_thread, tiny_config, write_tiny_dataset  # noqa: F401 (fixture)
from training import checkpoint
from training.cli import main
from training.config import DataConfig
from training.data import open_subjects, prepare_subjects, provenance
from training.loop import build_network, initialise_from_weights, train

REPO = Path(__file__).resolve().parent.parent
# Per network: the --set overrides of its tiny run (two steps, a checkpoint after each).
RUNS = {
    "diffusion": ["data.patch=[32,32,16]", "diffusion.network.channel_mult=[1,2,2]", "diffusion.validation_timesteps=[400]",
                  "train.steps=2", "train.checkpoint_every=1", "train.validate_every=0"],
    "bridge": ["train.steps=2", "train.checkpoint_every=1", "train.validate_every=0"],
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("ulf-enc"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runs(data_root, cache, tmp_path_factory) -> dict[str, Path]:
    """One finished two-step run of each network (in one process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folders = {}
    for kind, overrides in RUNS.items():
        folders[kind] = tmp_path_factory.mktemp(kind)
        train(kind, tiny_config(data_root, cache, *overrides), folders[kind])
    torch.set_num_threads(threads)
    return folders


def _state(run_dir: Path, step: int) -> dict:
    return checkpoint.load(run_dir / checkpoint.CHECKPOINTS / f"step-{step:08d}.pt")


def _tensors(tree, prefix=""):
    """Every tensor in a nested checkpoint structure, by path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else []
    out = {}
    for key, value in items:
        out.update(_tensors(value, f"{prefix}/{key}"))
    return out


def test_a_run_writes_its_config_data_split_metrics_and_checkpoints(runs):
    run = runs["bridge"]
    saved = json.loads((run / "config.json").read_text())
    assert saved["network"] == "bridge" and saved["config"]["train"]["steps"] == 2
    split = json.loads((run / "data.json").read_text())["split"]
    assert split == {"train": ["TINY000", "TINY001"], "validation": ["TINY002"]}
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "train/loss" in line] == [1, 2]
    final = _state(run, 2)["metrics"]
    assert {"val/latent_mse", "val/latent_mse_no_bridge", "val/x0_ssim", "train/identity"} <= set(final)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000002.pt"


@pytest.mark.parametrize("kind", ["diffusion", "bridge"])
def test_resume_continues_bit_identically(kind, runs, data_root, cache, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(runs[kind], resumed)
    (resumed / "checkpoints" / "step-00000002.pt").unlink()
    (resumed / "checkpoints" / "latest").write_text("step-00000001.pt\n")
    config = tiny_config(data_root, cache, *RUNS[kind])
    with pytest.raises(ValueError, match="--resume"):
        train(kind, config, resumed)
    train(kind, config, resumed, resume=True)
    straight, again = _state(runs[kind], 2), _state(resumed, 2)
    for part in ("network", "ema", "optimizer"):
        a, b = _tensors(straight[part]), _tensors(again[part])
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{part} differs after resuming"
    assert {k: v for k, v in straight["metrics"].items() if "sec_per_step" not in k} == \
           {k: v for k, v in again["metrics"].items() if "sec_per_step" not in k}

    def logged(run):
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k not in ("time", "train/sec_per_step")} for line in lines]

    assert logged(resumed) == logged(runs[kind])  # the lines of the interrupted step were replaced, not repeated
    code = checkpoint.read_code(resumed)  # the start's commit kept, the resume's added
    assert code["code_version"] == checkpoint.read_code(runs[kind])["code_version"]
    assert [(r["step"], r["code_version"]) for r in code["resumes"]] == [(1, checkpoint.code_version())]


def test_resume_refuses_a_changed_optimisation(runs, data_root, cache, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(runs["diffusion"], resumed)
    with pytest.raises(ValueError, match="train.lr"):
        train("diffusion", tiny_config(data_root, cache, *RUNS["diffusion"], "train.lr=0.1"), resumed, resume=True)
    code = checkpoint.read_code(resumed)
    checkpoint.write_json(resumed / checkpoint.CODE, {**code, "intensity": {**code["intensity"], "target_ceiling": 1.0}})
    with pytest.raises(ValueError, match=r"cannot resume .* started with the intensity normalisation .*\"target_ceiling\": 1\.0"):
        train("diffusion", tiny_config(data_root, cache, *RUNS["diffusion"]), resumed, resume=True)


def _global_relative_difference(a: dict, b: dict) -> float:
    """``|a - b| / |a|`` over every tensor of two same-keyed collections at once (the Euclidean norm)."""
    difference = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a)
    return (difference / sum(float((a[k].double() ** 2).sum()) for k in a)) ** 0.5


def _moments(state: dict, key: str) -> dict:
    return {i: s[key] for i, s in state["optimizer"]["state"].items()}


@pytest.mark.parametrize("kind", ["diffusion", "bridge"])
def test_two_gloo_processes_train_like_one_process_with_the_whole_batch(kind, runs, data_root, cache, tmp_path):
    """DDP with two processes of half the batch computes the gradients of one process with the whole batch.

    Tolerances come from the quantities involved, so the test holds on any x86-64 CPU:

    * losses, gradient norms and the optimiser's moments (running averages of the gradients and their
      squares) differ only by float32 summation order (gloo's all-reduce of two half-batch gradients vs
      one batched backward): relative ``sqrt(N) * eps32`` for sums of N terms, N = batch x patch x channels.
      They are compared over the whole network: single tensors whose gradients are near zero (the
      bridge starts with phi = 0, so its inner layers' gradients are about 1e-7) carry no relative precision.
    * the weights are not compared to float precision: Adam divides each gradient by its running RMS
      plus eps = 1e-8, so for those near-zero gradients it turns summation noise into steps of up to lr
      (measured: 2e-5 on one CPU, 3e-4 on another after four updates). Per element they must stay within
      what Adam can move two runs apart: 2 * updates * lr * max(1, (1 - beta1) / sqrt(1 - beta2))
      (Kingma & Ba, section 2.1).
    """
    config = tmp_path / "run.json"
    run_config = tiny_config(data_root, cache, *RUNS[kind])
    config.write_text(json.dumps(run_config.to_dict()))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=2",
         "-m", "training", kind, "--config", str(config), "--run-dir", str(tmp_path / "ddp")],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout + result.stderr
    train_cfg = run_config.train
    lr, (beta1, beta2) = run_config.learning_rate(kind), train_cfg.betas
    terms = train_cfg.batch_size * int(np.prod(run_config.data.patch)) * 3
    float_noise = np.sqrt(terms) * torch.finfo(torch.float32).eps
    initial = build_network(kind, run_config).state_dict()
    for step in range(1, train_cfg.steps + 1):
        one, two = _state(runs[kind], step), _state(tmp_path / "ddp", step)
        for name in ("train/loss", "train/grad_norm"):
            assert two["metrics"][name] == pytest.approx(one["metrics"][name], rel=float_noise), f"step {step} {name}"
        for key in ("exp_avg", "exp_avg_sq"):
            relative = _global_relative_difference(_moments(one, key), _moments(two, key))
            assert relative < float_noise, f"step {step}: the optimiser's {key} differs by {relative:.2g} (relative)"
    updates = int(one["optimizer"]["state"][0]["step"])  # the bridge's identity step is an update of its own
    assert max((one["network"][k] - initial[k]).abs().max().item() for k in initial) > lr / 2  # it did train
    adam_bound = 2 * updates * lr * max(1.0, (1 - beta1) / np.sqrt(1 - beta2))
    for part in ("network", "ema"):
        for name, tensor in one[part].items():
            difference = (two[part][name] - tensor).abs().max().item()
            assert difference <= adam_bound, f"{part} {name} differs by {difference:g} (Adam's bound {adam_bound:g})"


def test_export_round_trips_through_model(runs, tmp_path, capsys):
    out = tmp_path / "weights"
    assert main(["export", "--diffusion-run", str(runs["diffusion"]), "--bridge-run", str(runs["bridge"]),
                 "--out", str(out)]) == 0
    manifest = read_manifest(out)
    for name in ("diffusion", "bridge"):
        entry = manifest["networks"][name]
        assert entry["trained"] is True and entry["sha256"] == sha256_of(out / entry["file"])
        provenance = entry["provenance"][name]
        assert provenance["step"] == 2 and provenance["finished"] and provenance["weights"] == "ema"
        assert provenance["data"]["split"]["validation"] == ["TINY002"]
        assert provenance["training_config"]["train"]["lr"] == 3e-4
        assert any(k.startswith("val/") for k in provenance["validation_metrics"])
        loaded = load_network(out, name)
        ema = _state(runs[name], 2)["ema"]
        assert all(torch.equal(loaded.state_dict()[k], ema[k]) for k in ema)
        assert not loaded.training


def test_a_diffusion_network_retrained_alone_is_exported_beside_the_bridge_it_kept(runs, tmp_path, capsys):
    """--bridge-from copies the bridge of an exported folder unchanged (same bytes of weights, its provenance, and
    where it came from), so a diffusion run can be shipped without the bridge's run folder."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["export", "--diffusion-run", str(runs["diffusion"]), "--bridge-run", str(runs["bridge"]),
                 "--out", str(first)]) == 0
    assert main(["export", "--diffusion-run", str(runs["diffusion"]), "--bridge-from", str(first),
                 "--out", str(second)]) == 0
    old, new = read_manifest(first)["networks"]["bridge"], read_manifest(second)["networks"]["bridge"]
    kept, copied = load_network(first, "bridge").state_dict(), load_network(second, "bridge").state_dict()
    assert all(torch.equal(kept[k], copied[k]) for k in kept)
    provenance = new["provenance"]["bridge"]
    assert provenance["copied_from"]["sha256"] == old["sha256"]
    assert provenance["training_config"] == old["provenance"]["bridge"]["training_config"]
    with pytest.raises(SystemExit) as refused:  # one of the two is required: argparse's usage line, exit 2
        main(["export", "--diffusion-run", str(runs["diffusion"]), "--out", str(tmp_path / "x")])
    assert refused.value.code == 2 and not (tmp_path / "x").exists()
    third = tmp_path / "third"  # and the other way round: a bridge retrained alone beside the diffusion network kept
    assert main(["export", "--diffusion-from", str(first), "--bridge-run", str(runs["bridge"]), "--out", str(third)]) == 0
    assert read_manifest(third)["networks"]["diffusion"]["provenance"]["diffusion"]["copied_from"]["sha256"] == \
        read_manifest(first)["networks"]["diffusion"]["sha256"]
    # nothing trained to export: both kept is refused (exit 2, one line)
    assert main(["export", "--diffusion-from", str(first), "--bridge-from", str(first), "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()


def test_a_runs_code_version_is_the_commit_that_started_it(runs, tmp_path, capsys):
    """code.json, written when a run starts, names the commit that trains; the export records it as the run's
    code_version, its own commit beside it as export_code_version, resumes at other commits, and refuses a run
    trained with another intensity normalisation."""
    for kind in ("diffusion", "bridge"):
        recorded = checkpoint.read_code(runs[kind])
        assert recorded["code_version"] == checkpoint.code_version() and recorded["resumes"] == []
        assert recorded["intensity"] == normalisation_record()
    run, out = tmp_path / "run", tmp_path / "weights"
    shutil.copytree(runs["diffusion"], run)
    started, resumed_at = "0123456789abcdef0123456789abcdef01234567", "89abcdef0123456789abcdef0123456789abcdef-dirty"
    fake = {**checkpoint.read_code(run), "code_version": started}  # as if the run had started at another commit
    checkpoint.write_json(run / checkpoint.CODE, fake)

    def exported():
        assert main(["export", "--diffusion-run", str(run), "--bridge-run", str(runs["bridge"]), "--out", str(out)]) == 0
        return read_manifest(out)["networks"]["diffusion"]["provenance"]

    provenance = exported()
    assert provenance["diffusion"]["code_version"] == started and "resumes" not in provenance["diffusion"]
    assert provenance["bridge"]["code_version"] == checkpoint.code_version()
    assert provenance["export_code_version"] == checkpoint.code_version() and "code_version" not in provenance
    assert read_manifest(out)["intensity"] == normalisation_record()
    resume = {"code_version": resumed_at, "intensity": normalisation_record(), "at": "2026-12-01T00:00:00+00:00", "step": 1}
    checkpoint.write_json(run / checkpoint.CODE, {**fake, "resumes": [resume]})
    assert exported()["diffusion"]["resumes"] == [{"step": 1, "code_version": resumed_at}]
    (run / checkpoint.CODE).unlink()  # a run from before code.json: unknown, not the export's commit
    assert exported()["diffusion"]["code_version"] is None
    checkpoint.write_json(run / checkpoint.CODE, {**fake, "intensity": {**normalisation_record(), "target_ceiling": 1.0}})
    capsys.readouterr()
    assert main(["export", "--diffusion-run", str(run), "--bridge-run", str(runs["bridge"]), "--out", str(out)]) == 2
    assert "trained with the intensity normalisation" in capsys.readouterr().err


def test_a_starting_point_is_named_by_the_checksum_of_its_file(tiny_weights, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights, folder)
    record = checkpoint.initialisation_record(folder, "bridge")
    assert record["sha256"] == sha256_of(folder / "bridge.pt") and record["file"] == "bridge.pt"
    (folder / "bridge.pt").write_bytes(b"overwritten")
    with pytest.raises(WeightsError, match="bridge weights .* sha256"):
        checkpoint.initialisation_record(folder, "bridge")


def test_cli_reports_configuration_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstpes = 3\n")
    assert main(["diffusion", "--config", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    assert "train.stpes" in capsys.readouterr().err
    assert main(["bridge", "--run-dir", str(tmp_path / "run")]) == 2


def test_the_simulated_source_is_prepared_once_with_the_inference_normalisation(tmp_path):
    config = DataConfig(kind="simulated", subjects=1, seed=1, shape_scale=0.15, lesions="never")
    prepare_subjects(config, ["SIM0001"], tmp_path)
    stamp = (tmp_path / "SIM0001" / "high.npy").stat().st_mtime_ns
    prepare_subjects(config, ["SIM0001"], tmp_path)  # cached: not simulated again
    assert (tmp_path / "SIM0001" / "high.npy").stat().st_mtime_ns == stamp
    subject = open_subjects(tmp_path, ["SIM0001"], need_low=True)[0]
    assert subject.high.shape == subject.low.shape and subject.high.shape[0] == 3
    assert subject.low.min() == -1.0 and subject.low.max() == 1.0  # the inference input map
    # the 3 T target keeps its bright tail above the 99.5th percentile, up to OUTPUT_CEILING
    assert subject.high.min() == -1.0 and 1.0 < subject.high.max() <= OUTPUT_CEILING
    assert 0 < subject.head.size < np.prod(subject.high.shape[1:])
    info = json.loads((tmp_path / "SIM0001" / "info.json").read_text())
    assert info["key"]["simulated"]["shape_scale"] == 0.15


def test_a_run_can_start_from_exported_weights_and_refuses_another_architecture(runs, data_root, cache, tmp_path):
    """train.init_weights: step 0 of a new run is the exported network (fine-tuning), checked like inference."""
    weights = tmp_path / "weights"
    assert main(["export", "--diffusion-run", str(runs["diffusion"]), "--bridge-run", str(runs["bridge"]),
                 "--out", str(weights)]) == 0
    exported = load_network(weights, "bridge")
    config = tiny_config(data_root, cache, *RUNS["bridge"], f"train.init_weights='{weights}'")
    network = build_network("bridge", config)
    assert not all(torch.equal(network.state_dict()[k], v) for k, v in exported.state_dict().items())
    initialise_from_weights(network, "bridge", weights)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in exported.state_dict().items())
    other = build_network("diffusion", tiny_config(data_root, cache, "diffusion.network.channel_mult=[1,2,2,2]"))
    with pytest.raises(ValueError, match="configuration differs"):
        initialise_from_weights(other, "diffusion", weights)


def test_a_fine_tuned_export_names_the_weights_it_started_from(runs, data_root, cache, tmp_path):
    """The lineage survives the starting folder: run -> export -> fine-tune -> export carries the first
    export's checksum and provenance under initialised_from."""
    first = tmp_path / "first"
    assert main(["export", "--diffusion-run", str(runs["diffusion"]), "--bridge-run", str(runs["bridge"]),
                 "--out", str(first)]) == 0
    first_manifest = json.loads((first / "manifest.json").read_text())
    config = tiny_config(data_root, cache, *RUNS["diffusion"], "train.steps=1", f"train.init_weights='{first}'")
    train("diffusion", config, tmp_path / "fine-tune")
    second = tmp_path / "second"
    assert main(["export", "--diffusion-run", str(tmp_path / "fine-tune"), "--bridge-run", str(runs["bridge"]),
                 "--out", str(second)]) == 0
    shutil.rmtree(first)
    networks = json.loads((second / "manifest.json").read_text())["networks"]
    lineage = networks["diffusion"]["provenance"]["diffusion"]["initialised_from"]
    assert lineage["sha256"] == first_manifest["networks"]["diffusion"]["sha256"]
    assert lineage["provenance"]["diffusion"]["run_dir"] == str(runs["diffusion"].resolve())
    assert "bridge" not in lineage["provenance"]
    assert "initialised_from" not in networks["bridge"]["provenance"]["bridge"]  # a run from scratch


def test_a_simulated_source_with_a_variation_has_its_own_cache_key(tmp_path):
    """data.variation changes the subjects, so it is part of the cache key; nominal keeps the old key."""
    from training.data import _source_key

    nominal = DataConfig(kind="simulated", subjects=1, seed=1)
    varied = DataConfig(kind="simulated", subjects=1, seed=1, variation="training")
    assert "variation" not in _source_key(nominal, "SIM0001")["simulated"]
    assert _source_key(varied, "SIM0001")["simulated"]["variation"] == "training"
    assert provenance(varied, {"train": ["SIM0001"], "validation": []})["simulated"]["variation"] == "training"
    with pytest.raises(ValueError, match="data.variation"):
        DataConfig(kind="simulated", variation="other")


def test_a_time_limit_stops_a_run_with_a_checkpoint_that_resumes(data_root, cache, tmp_path):
    config = tiny_config(data_root, cache, *RUNS["diffusion"], "train.steps=5", "train.time_limit_minutes=1e-9")
    train("diffusion", config, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step-00000001.pt"
    train("diffusion", tiny_config(data_root, cache, *RUNS["diffusion"], "train.steps=2"), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step-00000002.pt"


def test_prepare_fills_the_cache_in_parallel_processes(tmp_path, capsys):
    config = tmp_path / "prepare.toml"
    config.write_text(f'[data]\nkind = "simulated"\nsubjects = 2\nseed = 1\nshape_scale = 0.15\nlesions = "never"\n'
                      f'variation = "training"\ncache = "{tmp_path / "cache"}"\n')
    assert main(["prepare", "--config", str(config), "--processes", "2"]) == 0
    for subject in ("SIM0001", "SIM0002"):
        info = json.loads((tmp_path / "cache" / subject / "info.json").read_text())
        assert info["key"]["simulated"]["variation"] == "training"
    config.write_text('[data]\nkind = "simulated"\nsubjects = 1\n')
    assert main(["prepare", "--config", str(config)]) == 2
    assert "data.cache" in capsys.readouterr().err
