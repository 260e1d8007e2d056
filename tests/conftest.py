"""Shared helpers: tiny configs, the real snakemake CLI in a temp directory, seeded tiny models,
synthetic benchmark results, and the headless-Chromium command."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tinymodels importable in-process and, via PYTHONPATH, in jobs

TOL = {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"atol": 2e-2, "rtol": 2e-2}}
# Timing settings that measure exactly five runs per point, for tests of what a benchmark records.
FIVE_RUNS = {
    "warmup": 1,
    "min_iterations": 5,
    "max_seconds": 0.0,
    "max_iterations": 5,
    "points": ["min", "opt", "max"],
}
SPEECH = [str(REPO / "config/audio/arctic_aew_a0001.wav"), str(REPO / "config/audio/arctic_axb_a0004.wav")]
# One short file per role: what the tiny chain is calibrated, searched and judged on.
ROLES = {
    "calibration": [SPEECH[0]],
    "search": [SPEECH[1]],
    "evaluation": [str(REPO / "config/audio/libri_5703_a.wav")],
}


def seeded(seed: int = 0) -> np.random.Generator:
    """The one way tests seed: torch's global RNG and a numpy generator, from a fixed integer."""
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def tiny_svc_config() -> dict:
    """The demo model's own config with tiny kwargs and dims and seeded weights throughout (the real
    vocoder is the `real` tier's): same code paths, seconds per job, two one-core jobs at a time."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    model = cfg["models"]["svc_demo"]
    comps = model["components"]
    comps["content_encoder"]["kwargs"] = {
        "n_mels": 80,
        "channels": 32,
        "out_channels": 256,
        "layers": 1,
        "heads": 2,
        "ffn": 64,
    }
    comps["flow_decoder"]["kwargs"] = {
        "channels": 192,
        "hidden": 16,
        "kernel": 3,
        "layers": 2,
        "flows": 2,
        "cond_channels": 704,
    }
    comps["vocoder"]["kwargs"] = {
        "n_mels": 80,
        "channels": 16,
        "upsample_rates": [8, 8, 2, 2],
        "upsample_kernels": [16, 16, 4, 4],
    }
    comps["vocoder"]["checkpoint"] = "results/checkpoints/svc_demo/vocoder.safetensors"
    del comps["vocoder"]["state_dict_key"]
    # A random-weight vocoder makes noise: a perceptual gate says nothing about it, so the tiny chain gates its
    # INT8 by SNR (the real-checkpoint tier runs the default perceptual gates on the pretrained vocoder).
    comps["vocoder"]["gates"]["int8"] = comps["vocoder"]["gates"]["bf16"] = {"min_snr_db": 10.0}
    for c in comps.values():
        c["dims"] = {"batch": {"min": 1, "opt": 1, "max": 2}, "time": {"min": 8, "opt": 24, "max": 48}}
    comps["vocoder"]["dims"]["batch"]["max"] = 1
    model["chain"].update(
        inputs=copy.deepcopy(ROLES),
        seconds=[0.5],
        search={"seconds": 0.5, "max_tries": 12},
        # the seeded components' audio is noise: only a loose LSD gate (the real tier keeps the defaults)
        gates={"chain": {"max_lsd_db": 40.0}, "copy_synthesis": {}},
    )
    cfg["tensorrt"]["compute_capabilities"] = ["SM86"]
    cfg["tensorrt"]["optimization_level"] = 0
    cfg["quantize"].update(max_candidates=4, max_probes=8)  # work budgets: the same search on any machine
    cfg["bench"].update(threads=1, max_seconds=0.2, warmup_seconds=0.2, bootstrap=300)
    # torch.compile costs 10-30 s of compilation per component; tests/test_backends.py covers it
    cfg["backends"] = ["pytorch", "onnxruntime", "onnxruntime_cuda", "openvino", "tensorrt"]
    return cfg


def tiny_byo_component(checkpoint: str, **extra) -> dict:
    return {
        "class": "tinymodels.TinyConv",
        "kwargs": {"channels": 8, "hidden": 16},
        "checkpoint": checkpoint,
        "inputs": [{"name": "x", "shape": ["batch", 8, "time"]}],
        "outputs": ["y"],
        "dims": {"batch": {"min": 1, "opt": 1, "max": 2}, "time": {"min": 4, "opt": 16, "max": 32}},
        "gates": copy.deepcopy(TOL),
        **extra,
    }


@pytest.fixture
def workdir(tmp_path):
    """A temp working directory for the real snakemake CLI; the repo's Snakefile, a tiny config."""
    (tmp_path / "config").mkdir()
    return tmp_path


def write_config(workdir: Path, cfg: dict) -> Path:
    path = workdir / "config" / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def repo_copy(tmp_path: Path) -> Path:
    """The workflow (Snakefile, rules, workflow_lib, schema, report captions) copied, to edit in a test: run it
    with snakemake(..., snakefile=copy / "Snakefile"); Snakemake and its jobs then import the copy's package."""
    copy = tmp_path / "workflow"
    for item in ("Snakefile", "rules", "workflow_lib", "config/schema.yaml", "report", "profiles"):
        src, dst = REPO / item, copy / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, dst)
    return copy


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900, snakefile: Path = REPO / "Snakefile"
) -> subprocess.CompletedProcess:
    pythonpath = [str(snakefile.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath), "WORKFLOW_SLOT_DIR": str(workdir / ".slots")}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config" / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def probed(workdir: Path, **kwargs) -> None:
    """Run the host probe, so that dry runs show the whole DAG (it is a checkpoint the DAG waits for)."""
    snakemake(workdir, "results/host.json", **kwargs)


def planned_jobs(workdir: Path, *args: str, **kwargs) -> dict[str, int]:
    """Rule -> job count that a dry run would execute."""
    out = snakemake(workdir, *args, "-n", "--quiet", "rules", **kwargs).stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


def export_tiny_conv(d: Path, **extra):
    """TinyConv with seeded weights, exported to d/net.onnx: the small real model most tests start from."""
    from safetensors.torch import save_file
    from tinymodels import TinyConv

    from workflow_lib.core.spec import component_spec
    from workflow_lib.stages import export

    seeded(0)
    save_file(TinyConv().state_dict(), str(d / "w.safetensors"))
    spec = component_spec("mine", "net", tiny_byo_component(str(d / "w.safetensors"), **extra))
    export.export(spec, d / "net.onnx")
    return spec


def synthetic_csv(
    path,
    backend: str,
    variant: str,
    p50s: dict[str, float],
    component: str = "c",
    series=None,
    extra=None,
    point: str = "opt",
    model: str = "m",
) -> str:
    """A bench CSV as the stage writes it, from known timings: {device: p50 ms}, 50 samples each, seeded by the path."""
    from workflow_lib.analysis import results
    from workflow_lib.jobs import timing

    rng = np.random.default_rng(sum(map(ord, str(path))))
    rows, samples = [], {}
    for device, p50 in p50s.items():
        ms = list(p50 * rng.uniform(0.95, 1.05, 50))
        samples[(device, point)] = ms
        rows.append(
            {
                "model": model,
                "component": component,
                "backend": backend,
                "variant": variant,
                "device": device,
                "series": series or f"{backend}.{variant}@{device.split(':')[0]}",
                "point": point,
                **timing.stats(ms),
                **(extra or {}),
            }
        )
    columns = [*results.COLUMNS, *(k for k in (extra or {}) if k not in results.COLUMNS)]
    results.write_results(
        rows,
        samples,
        path,
        {
            "stage": "bench",
            "status": "measured",
            "model": model,
            "component": component,
            "backend": backend,
            "variant": variant,
            "artifact": f"{path}.artifact",
        },
        columns,
    )
    return str(path)


def _chromium(profile: Path, *args: str, timeout: int, check: bool = False) -> subprocess.CompletedProcess:
    """Headless Chromium with a throwaway profile and no background traffic; skips the test where it is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return subprocess.run(
        [chromium, *flags, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def chromium_dom(url: str, profile: Path, timeout: int = 120) -> str:
    """The DOM of a page after headless Chromium ran its scripts (audio may autoplay, 10 s of virtual time)."""
    args = ["--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--dump-dom", url]
    return _chromium(profile, *args, timeout=timeout).stdout


def chromium_screenshot(url: str, png: Path, profile: Path, size: str = "1280,4000", timeout: int = 120) -> None:
    _chromium(profile, f"--window-size={size}", f"--screenshot={png}", url, timeout=timeout, check=True)


def has_runnable_gpu() -> tuple[bool, str]:
    from workflow_lib.runtimes import tensorrt_engines as trt

    try:
        fl = trt.load("auto")
    except trt.TrtError as e:
        return False, str(e)
    return trt.runnable(fl, [])


def sensor_model(workdir: Path) -> dict:
    """A chain that is not audio (tests/tiny_sensor_chain.py: .npy recordings -> encoder -> head), two seeded
    conv components, eight recordings dealt to the three roles."""
    from tiny_sensor_chain import write_recordings

    from workflow_lib.stages.checkpoints import write_seeded

    files = write_recordings(workdir / "recordings", 8)
    components = {}
    for c in ("encoder", "head"):
        components[c] = {
            "class": "tinymodels.TinyConv",
            "kwargs": {"channels": 8, "hidden": 16},
            "checkpoint": str(workdir / f"{c}.safetensors"),
            "inputs": [{"name": "x", "shape": ["batch", 8, "time"]}],
            "outputs": ["y"],
            "dims": {"batch": {"min": 1, "opt": 1, "max": 1}, "time": {"min": 16, "opt": 200, "max": 600}},
            "variants": ["fp32", "int8"],
            "gates": {"int8": {"min_snr_db": 15.0}},
        }
        write_seeded(components[c]["class"], components[c]["kwargs"], 3, components[c]["checkpoint"])
    chain = {
        "plugin": "tiny_sensor_chain",
        "inputs": files,
        "seconds": [2],
        "settings": {"rate": 100, "channels": 8},
        "gates": {"prediction": {"min_snr_db": 15.0}},
        "search": {"seconds": 2, "max_tries": 6},
        "roles": {"encoder": "encoder", "head": "head"},
        "assignments": {"pytorch": {"default": "pytorch.fp32"}},
    }
    return {"components": components, "chain": chain}
