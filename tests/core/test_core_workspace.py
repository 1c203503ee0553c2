"""The workspace trusts a file only when the manifest lists it with the same key and hash."""

from __future__ import annotations

import json

from bevdeploy.workspace import Workspace, atomic_write_json, atomic_write_text


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 1}


def test_reuse_needs_same_key_and_intact_files(tmp_path):
    ws = Workspace(tmp_path / "ws", "key1").open()
    staged = ws.staging("piece")
    (staged / "piece.onnx").write_bytes(b"graph")
    moved = ws.commit_staged(staged, ws.onnx_dir)
    assert not staged.exists() and list(moved.values()) == [ws.onnx_dir / "piece.onnx"]
    ws.record("export:piece", list(moved.values()), "key1", artifact={"path": "onnx/piece.onnx"})
    assert Workspace(ws.root, "key1").open().cached("export:piece", "key1")["artifact"] == {"path": "onnx/piece.onnx"}
    assert Workspace(ws.root, "key2").open().cached("export:piece", "key2") is None  # another spec
    assert Workspace(ws.root, "key1", force=True).open().cached("export:piece", "key1") is None
    (ws.onnx_dir / "piece.onnx").write_bytes(b"graph, half written")
    assert Workspace(ws.root, "key1").open().cached("export:piece", "key1") is None  # tampered/partial


def test_unrecorded_files_and_staging_are_not_trusted(tmp_path):
    ws = Workspace(tmp_path / "ws", "k").open()
    (ws.onnx_dir / "orphan.onnx").write_bytes(b"x")
    assert ws.cached("export:orphan", "k") is None
    ws.staging("left-over")
    ws.discard_staging()
    assert not list(ws.root.glob(".staging-*"))


def test_the_run_key_follows_the_model_code(tmp_path, monkeypatch):
    """Artifacts are keyed by the code that defines the model too: the same spec with seeded
    random weights must not reuse a graph exported before the model's layout changed."""
    import importlib
    import sys

    from bevdeploy.pipeline import code_fingerprint, run_key
    from bevdeploy.specs.run import RunSpec

    pkg = tmp_path / "keyed_model_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = importlib.import_module("keyed_model_pkg.net").Net(2, 2)
    spec = RunSpec(model="toydet")
    before, key = code_fingerprint(net), run_key(spec, net)
    assert key == run_key(spec, net) != run_key(spec)
    (pkg / "net.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass  # changed\n")
    assert code_fingerprint(net) != before and run_key(spec, net) != key
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("import torch\nclass Deep(torch.nn.Linear):\n    pass\n")
    deep = importlib.import_module("keyed_model_pkg.sub.deep").Deep(2, 2)
    inner = code_fingerprint(deep)
    assert inner == code_fingerprint(net)  # the outer package: one fingerprint for all of it
    (pkg / "helpers.py").write_text("X = 1\n")  # code outside the model's own folder counts too
    assert code_fingerprint(deep) != inner
    for name in ("keyed_model_pkg.sub.deep", "keyed_model_pkg.sub", "keyed_model_pkg.net", "keyed_model_pkg"):
        sys.modules.pop(name, None)
