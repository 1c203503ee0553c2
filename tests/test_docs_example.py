"""docs/adding-a-model.md: its example plugin, taken from the doc as written, installed as a
throwaway package with the doc's entry point, is found by the plugin manager and runs end to end."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from plugin_packages import make_plugin_package

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-model.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def doc_plugin(tmp_path_factory):
    from bevdeploy.manager import get_plugin_manager

    (source,) = _blocks("python")
    entry = re.search(r'^(\w+) = "(\w+)"$', _blocks("toml")[0], flags=re.M)
    name, module = entry.group(1), entry.group(2)
    root = make_plugin_package(tmp_path_factory.mktemp("doc-site"), name, module, source, name)
    sys.path.insert(0, str(root))
    get_plugin_manager.cache_clear()
    yield name, module
    sys.path.remove(str(root))
    sys.modules.pop(module, None)
    get_plugin_manager.cache_clear()


def test_doc_plugin_is_found(doc_plugin, capsys):
    from bevdeploy.cli import main

    name, _ = doc_plugin
    assert main(["models"]) == 0
    assert f"{name} [{name}]: smallest example plugin" in capsys.readouterr().out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_doc_plugin_runs_end_to_end(doc_plugin, small_dataroot, tmp_path, capsys, precision):
    from bevdeploy.cli import main

    name, _ = doc_plugin
    dataroot, version = small_dataroot
    argv = ["run", "--model", name, "--precision", precision, "--data", str(dataroot), "--version", version,
            "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2", "--max-samples", "2",
            "--out", str(tmp_path / "run"), "--json"]
    code = main(argv)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rep = json.loads(cap.out)
    assert rep["model"] == name and rep["precision"] == precision and rep["dataset"]["samples"] == 2
    assert set(rep["latency_ms"]) == {"detector", "decode", "end_to_end"}
    assert rep["fidelity"]["detector"]["cosine"] > 0.98
    assert rep["piece_precisions"]["detector"] == precision
