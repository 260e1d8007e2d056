"""The demo's corpus: the config's roles agree with corpus.csv, no speaker plays two roles, the holdout clips
belong to no role, and every clip is there, short, and has its licence and source."""

import csv

import soundfile
import yaml
from conftest import REPO

CORPUS = list(csv.DictReader(open(REPO / "config/audio/corpus.csv")))


def test_the_configs_roles_are_the_corpus_roles_and_no_speaker_plays_two():
    inputs = yaml.safe_load((REPO / "config/config.yaml").read_text())["models"]["svc_demo"]["chain"]["inputs"]
    in_config = {path: role for role, paths in inputs.items() for path in paths}
    assert in_config == {r["path"]: r["role"] for r in CORPUS if r["role"] != "holdout"}
    roles_of: dict[str, set] = {}
    for r in CORPUS:
        roles_of.setdefault(r["speaker"], set()).add(r["role"])
    assert {s: roles for s, roles in roles_of.items() if len(roles) > 1} == {}


def test_the_corpus_is_what_the_issue_asks_for_and_every_clip_is_there():
    main = [r for r in CORPUS if r["role"] != "holdout"]
    real = {r["speaker"] for r in main if r["kind"] != "synthetic" and r["sex"] in ("f", "m")}
    sung = [r for r in main if r["kind"] == "sung"]
    assert len(main) >= 40 and len(real) >= 12 and {r["sex"] for r in main} >= {"f", "m"}
    assert len({r["language"] for r in main if r["kind"] == "speech" and r["language"] != "und"}) >= 3
    assert len(sung) >= 8 and len({r["speaker"] for r in sung}) >= 3
    assert sum(int(r["original_rate"]) in (8000, 16000) for r in main) >= 6
    assert len([r for r in CORPUS if r["role"] == "holdout"]) >= 12
    for r in CORPUS:
        info = soundfile.info(str(REPO / r["path"]))
        assert info.channels == 1 and info.duration <= 6.2 and r["licence"] and r["source"] and r["attribution"]
