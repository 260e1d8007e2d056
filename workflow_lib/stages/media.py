"""Stage: what a person judges in the report (audio chains: a WAV), encoded by the chain plug-in from the
outputs a chain stage stored: the first evaluation file itself (`input`), PyTorch fp32's run of it
(`reference`), an assignment's run of it (`outputs`), the shipped chain streamed live (`stream`: its
output as the chain writes it). Its own small job, so every chain stage stays free of media formats and
the file's suffix is the plug-in's (`media_suffix`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..chains.spec import ChainSpec
from ..core.files import read_npz, write_bytes
from ..jobs import cli

log = logging.getLogger(__name__)
WHICH = ("input", "reference", "outputs", "stream")


def encode(spec: ChainSpec, listen: str, which: str, out: str) -> int:
    """Write the media; its size in bytes (0: the plug-in has nothing to show)."""
    arrays = {k.partition("/")[2]: v for k, v in read_npz(listen).items() if k.startswith(f"{which}/")}
    chain = spec.chain
    if which == "stream" and arrays:
        chain.write(out, arrays)
        return Path(out).stat().st_size
    if not arrays:  # e.g. nothing streamed: no chunk size kept up
        data = None
    elif which == "input":
        data = chain.listen_input(arrays)
    else:
        data = chain.listen(arrays)
    write_bytes(out, data or b"")  # an empty file: nothing to judge
    return len(data or b"")


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON)")
    p.add_argument("--listen", required=True, help="the stored outputs (.npz, keys <which>/<name>)")
    p.add_argument("--which", required=True, choices=WHICH)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        size = encode(a.chain, a.listen, a.which, a.out)
        log.info("%s: %s (%d bytes)", a.which, a.out, size)

    cli.run("media", run, p, argv)


if __name__ == "__main__":
    main()
