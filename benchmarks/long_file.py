"""A whole song through a finished run's bundle, from the bundle's own torch-free venv: wall time and peak RSS.

`run.py convert` streams a chain that streams through the live engine in segments, so its memory should not
grow with the file. This builds a WAV of `--minutes` (the corpus's clips, one after another, at 22050 Hz),
installs the bundle's requirements into a fresh venv (no torch), converts the file there, and reads the
conversion's peak resident set size from GNU time (`/usr/bin/time -f %M`).

    .venv/bin/python benchmarks/long_file.py --bundle results/deploy/svc_demo [--minutes 10] [--keep DIR]

Prints one JSON line: seconds of audio, wall seconds, real-time factor, peak RSS in MiB, the CPU and its flags.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

from workflow_lib.jobs.host import cpu_features, cpu_name

REPO = Path(__file__).resolve().parents[1]
RATE = 22050


def song(path: Path, minutes: float) -> float:
    """The corpus's clips one after another (resampled to 22050 Hz), repeated to `minutes`: seconds written."""
    clips = []
    for wav in sorted((REPO / "config/audio").glob("*.wav")):
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        clips.append(soxr.resample(audio.mean(axis=1), rate, RATE).astype(np.float32))
    joined = np.concatenate(clips)
    total = int(minutes * 60 * RATE)
    audio = np.resize(joined, total)
    soundfile.write(path, audio, RATE)
    return total / RATE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="a deployment folder (results/deploy/<model>)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--keep", type=Path, help="build the venv and files here (default: a temp dir)")
    a = p.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="long_file."))
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    if not (venv / "bin/python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [venv / "bin/python", "-m", "pip", "install", "-q", "-r", a.bundle / "requirements.txt"], check=True
        )
    has_torch = subprocess.run([venv / "bin/python", "-c", "import torch"], capture_output=True).returncode == 0
    seconds = song(work / "song.wav", a.minutes)
    t0 = time.perf_counter()
    convert = [venv / "bin/python", a.bundle.resolve() / "run.py", "convert", work / "song.wav", work / "out.wav"]
    proc = subprocess.run(["/usr/bin/time", "-f", "peak_kib %M", *convert], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    peak_kib = int(proc.stderr.strip().splitlines()[-1].split()[-1])
    out = soundfile.info(work / "out.wav")
    print(
        json.dumps(
            {
                "audio_s": round(seconds, 1),
                "out_s": round(out.duration, 1),
                "wall_s": round(wall, 1),
                "rtf": round(wall / seconds, 3),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "torch_in_venv": has_torch,
                "cpu": cpu_name(),
                "cpu_features": cpu_features(),
            }
        )
    )


if __name__ == "__main__":
    main()
