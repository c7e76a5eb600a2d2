"""isolate=true: the parent records a plugin's code from the files it finds and reads itself (every importable
file of the plugin folders and entry point packages), so a plugin that patches the worker's account of its
code cannot leave its real code file out of `method_source` and `plugins`."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2")


def test_every_importable_file_of_a_plugin_folder_is_found_on_disk(monkeypatch, tmp_path):
    from benchmark.plugins import foreign_files_on_disk

    for name in ("top.py", "pkg/__init__.py", "pkg/sub/deep.py", "pkg/__pycache__/top.cpython-311.pyc",
                 "ext.cpython-311-x86_64-linux-gnu.so", "loose/impl.pyc", "notes.txt", "configs/method/x.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "linked.py").symlink_to(tmp_path / "pkg" / "sub" / "deep.py")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)  # a folder link is not followed
    monkeypatch.setenv("COVSEG_PATH", str(tmp_path))
    found = foreign_files_on_disk("knnclip")
    assert {name: path.relative_to(tmp_path).as_posix() for name, path in found.items()} == {
        "top": "top.py", "pkg": "pkg/__init__.py", "pkg.sub.deep": "pkg/sub/deep.py", "loose.impl": "loose/impl.pyc",
        "ext": "ext.cpython-311-x86_64-linux-gnu.so", "linked": "linked.py"}


def test_a_plugin_patching_the_workers_account_of_its_code_still_has_its_code_file_recorded(run_demo, monkeypatch):
    monkeypatch.setenv("COVSEG_PATH", str(CHEATS / "provenance"))
    run_dir, _ = run_demo("method=cheat_provenance", "isolate=true", *TINY)
    assert "hidden" not in sys.modules and "cover" not in sys.modules  # the parent imported no plugin code
    manifest = json.loads((run_dir / "manifest.json").read_text())
    impl = CHEATS / "provenance" / "hidden" / "impl.py"
    assert "tests/cheats/provenance/hidden/impl.py" in manifest["method_source"]["files"]
    assert manifest["method_source"]["registered"] is False
    assert {record["module"]: record["path"] for record in manifest["plugins"]}["hidden.impl"] == str(impl)
