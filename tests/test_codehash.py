"""A stage's code identity covers exactly the workflow_lib modules it imports."""

import shutil

from workflow_lib.core import codehash

STAGES = [
    "stages.export",
    "stages.simplify",
    "stages.fp16",
    "stages.quantize",
    "stages.engine",
    "stages.openvino_ir",
    "stages.validate",
    "stages.bench",
    "stages.chain_bench",
    "stages.summary",
    "stages.deploy",
    "stages.report",
    "stages.checkpoints",
]


def _hashes(root):
    return {s: codehash.code_hash(f"workflow_lib.{s}", root=root) for s in STAGES}


def test_editing_a_helper_changes_exactly_the_stages_that_import_it(tmp_path):
    root = tmp_path / "workflow_lib"
    shutil.copytree(codehash.ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = _hashes(root)
    assert before == _hashes(codehash.ROOT)  # contents and relative paths only: location does not matter
    with open(root / "runtimes" / "onnxio.py", "a") as f:
        f.write("\n# a fix\n")
    after = _hashes(root)
    changed = {s for s in STAGES if before[s] != after[s]}
    assert changed == {"stages.export", "stages.simplify", "stages.fp16"}
    with open(root / "runtimes" / "ov.py", "a") as f:
        f.write("\n# a fix\n")
    changed = {s for s in STAGES if after[s] != _hashes(root)[s]}
    # the stages that open backends through the registry (the report reads its table, the chain
    # stages run it) and the IR conversion, which writes IR through the same module
    assert changed == {
        "stages.validate",
        "stages.bench",
        "stages.chain_bench",
        "stages.deploy",
        "stages.report",
        "stages.openvino_ir",
    }


def test_imports_inside_functions_and_registry_strings_count(tmp_path):
    files = {p.name for p in codehash.closure("workflow_lib.stages.bench")}
    assert {"timing.py", "results.py", "torch_compile.py", "tensorrt.py", "tensorrt_engines.py"} <= files
    assert "report.py" not in files and "export.py" not in files


def test_a_chain_plugin_is_part_of_the_chain_stages_code(tmp_path):
    """A chain of your own lives outside workflow_lib: its file, and what it imports of workflow_lib, count."""
    plugin = tmp_path / "my_chain.py"
    plugin.write_text(
        "from workflow_lib.audio.chain import AudioChain\n\nclass C(AudioChain):\n    pass\n\nCHAIN = C\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        files = {p.name for p in codehash.plugin_files("my_chain")}
        assert {"my_chain.py", "chain.py", "protocol.py", "dsp.py"} <= files
        before = codehash.code_hash("workflow_lib.stages.chain_bench", plugins=("my_chain",))
        assert before != codehash.code_hash("workflow_lib.stages.chain_bench")
        plugin.write_text(plugin.read_text() + "# a fix\n")
        assert codehash.code_hash("workflow_lib.stages.chain_bench", plugins=("my_chain",)) != before
    finally:
        sys.path.remove(str(tmp_path))
