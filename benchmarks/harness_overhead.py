"""How much does our harness add? Times one module with workflow_lib.jobs.timing.measure and with
torch.utils.benchmark.Timer (blocked_autorange), same inputs, same thread count.

    .venv/bin/python benchmarks/harness_overhead.py [--threads 2] [--repeats 5]

Prints the medians of both and their ratio per module size. Both sides run in this one
process, PyTorch only (no ONNX Runtime here, so no spinning-thread interference), and are
interleaved `--repeats` times because shared machines drift.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils import benchmark as tb

from workflow_lib.jobs.timing import Policy, measure
from workflow_lib.models.svc.modules import MelProjection, PitchEncoder


def cases():
    torch.manual_seed(0)
    yield "mel_projection T=16 (tiny)", MelProjection().eval(), (torch.randn(1, 192, 16),)
    yield "mel_projection T=1024", MelProjection().eval(), (torch.randn(1, 192, 1024),)
    yield "pitch_encoder T=172", PitchEncoder().eval(), (torch.rand(1, 172) * 900 + 80, torch.ones(1, 172))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{'case':32} {'harness p50 us':>15} {'torch.utils p50 us':>19} {'ratio':>7}")
    for name, module, args in cases():

        def step(module=module, args=args):
            with torch.inference_mode():
                module(*args)

        ours, theirs = [], []
        for _ in range(a.repeats):
            ours.append(
                statistics.median(
                    measure(
                        step,
                        lambda: None,
                        Policy(warmup=5, min_iterations=50, max_iterations=100000, target_rel_ci=0.01, max_seconds=0.3),
                    )[0]
                )
                * 1e3
            )
            timer = tb.Timer(stmt="step()", globals={"step": step}, num_threads=a.threads)
            theirs.append(timer.blocked_autorange(min_run_time=0.3).median * 1e6)
        o, t = statistics.median(ours), statistics.median(theirs)
        print(f"{name:32} {o:15.2f} {t:19.2f} {o / t:7.2f}")


if __name__ == "__main__":
    main()
