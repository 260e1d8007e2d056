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
    "models.svc.e2e",
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
    # the stages that open backends through the registry (deploy and report read its table)
    assert changed == {"stages.validate", "stages.bench", "models.svc.e2e", "stages.deploy", "stages.report"}


def test_imports_inside_functions_and_registry_strings_count(tmp_path):
    files = {p.name for p in codehash.closure("workflow_lib.stages.bench")}
    assert {"timing.py", "results.py", "torch_compile.py", "tensorrt.py", "trt.py"} <= files
    assert "report.py" not in files and "export.py" not in files
