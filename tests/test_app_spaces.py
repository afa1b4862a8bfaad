"""The Hugging Face Space folder: metadata, pinned requirements and the deploy script's local and dry-run targets."""

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import gradio
import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "spaces"
sys.path.insert(0, str(SPACES))
import deploy  # noqa: E402


def _front_matter() -> dict:
    text = (SPACES / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_space_metadata():
    meta = _front_matter()
    assert meta["sdk"] == "gradio"
    assert Version(meta["sdk_version"]).major == Version(gradio.__version__).major  # a deploy pins the installed one
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["license"] == "apache-2.0"
    from unclip_diffusers.defaults import HUB_REPO_ID

    assert meta["models"] == [HUB_REPO_ID]  # the weights the app loads when the bundled folder is absent


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            name, _, pinned = line.partition("==")
            assert pinned, f"{line!r} is not pinned"
            pins[name] = pinned
    return pins


def test_requirements_are_pinned_and_a_deploy_pins_the_installed_versions(tmp_path):
    committed = _pins((SPACES / "requirements.txt").read_text())
    assert {"torch", "diffusers", "transformers", "huggingface_hub", "safetensors"} <= set(committed)
    assert "gradio" not in committed  # Spaces installs gradio from sdk_version
    for name, pinned in committed.items():  # the API the app is written for
        assert Version(version(name)).major == Version(pinned).major, name
    deploy.stage(tmp_path / "space", include_weights=False)
    staged = _pins((tmp_path / "space" / "requirements.txt").read_text())
    assert set(staged) == set(committed)
    for name, pinned in staged.items():  # what the tests ran with, exactly
        assert Version(version(name)).public == Version(pinned).public, name
    readme = (tmp_path / "space" / "README.md").read_text(encoding="utf-8")
    assert yaml.safe_load(readme.split("---\n")[1])["sdk_version"] == gradio.__version__
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in (tmp_path / "space" / "requirements.txt").read_text()


@pytest.mark.slow  # two subprocesses
def test_local_dir_target_holds_a_self_contained_space(tmp_path):
    target = tmp_path / "space"
    result = subprocess.run([sys.executable, str(SPACES / "deploy.py"), "user/space", "--local-dir", str(target)],
                            capture_output=True, text=True, check=True)
    assert "staged" in result.stdout
    files = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert {"README.md", "requirements.txt", "app.py", "unclip_diffusers/app/ui.py",
            "unclip_diffusers/assets/clip_bpe/merges.txt"} <= files
    assert not any("__pycache__" in f for f in files)
    # Run from the staged folder, `app` and `unclip_diffusers` resolve to the staged copies, as on the Space (which
    # has no install step), not to this checkout's (found without importing torch, to keep the test fast).
    probe = "import importlib.util as u; print(u.find_spec('app').origin); print(u.find_spec('unclip_diffusers').origin)"
    where = subprocess.run([sys.executable, "-c", probe], cwd=target, capture_output=True, text=True, check=True,
                           env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    app_origin, package_origin = (Path(line) for line in where.stdout.split())
    assert app_origin == target.resolve() / "app.py"
    assert package_origin == target.resolve() / "unclip_diffusers" / "__init__.py"
    with pytest.raises(ValueError, match="not empty"):
        deploy.stage(target)


def test_dry_run_and_upload_call(monkeypatch, capsys):
    deploy.main(["user/space", "--dry-run"])
    out = capsys.readouterr().out
    assert "would upload" in out and "app.py" in out
    calls = {}
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    def fake_upload(**kw):
        calls["upload"] = kw
        calls["files"] = sorted(p.name for p in Path(kw["folder_path"]).iterdir())
    monkeypatch.setattr(huggingface_hub, "upload_folder", fake_upload)
    deploy.deploy("user/space")
    assert calls["create"][1]["repo_type"] == "space" and calls["create"][1]["space_sdk"] == "gradio"
    assert calls["upload"]["repo_id"] == "user/space" and calls["upload"]["repo_type"] == "space"
    assert {"README.md", "app.py", "requirements.txt", "unclip_diffusers"} <= set(calls["files"])
    with pytest.raises(ValueError, match="user/space"):
        deploy.deploy("no-slash")
