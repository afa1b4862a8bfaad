"""`unclip-train export`: the EMA weights of a checkpoint, written like `final/`, from an unfinished run."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from test_training_stages import STAGES, tiny_runs
from unclip_diffusers.training.cli import main
from unclip_diffusers.training.export import export_checkpoint


def _weights(folder):
    return {str(path.relative_to(folder)): load_file(path) for path in sorted(folder.rglob("*.safetensors"))}


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(
        a[f].keys() == b[f].keys() and all(torch.equal(a[f][k], b[f][k]) for k in a[f]) for f in a
    )


@pytest.mark.parametrize("name", list(STAGES))
def test_export_of_the_last_checkpoint_equals_final(name, tmp_path):
    run_dir = tmp_path / name
    shutil.copytree(tiny_runs()[name][0], run_dir)
    final = _weights(run_dir / "final")

    snapshot = export_checkpoint(run_dir)
    assert snapshot == run_dir / "snapshot-30"
    assert (snapshot / "config.json").exists() and not list(snapshot.rglob("*.bin"))
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in (run_dir / "final").iterdir())
    assert _equal(_weights(snapshot), final)

    earlier = export_checkpoint(run_dir, run_dir / "checkpoint-15")
    assert earlier.name == "snapshot-15" and not _equal(_weights(earlier), final)
    raw = export_checkpoint(run_dir, raw=True)  # the optimiser's weights: same files, other values than the EMA's
    assert raw == run_dir / "raw-30" and sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in snapshot.iterdir())
    assert not _equal(_weights(raw), final)


def test_export_command_line_and_errors(tmp_path, capsys):
    run_dir = tmp_path / "prior"
    shutil.copytree(tiny_runs()["prior"][0], run_dir)
    main(["export", str(run_dir)])
    assert capsys.readouterr().out.strip().endswith("snapshot-30")

    with pytest.raises(ValueError, match="not a training run folder"):
        export_checkpoint(tmp_path)
    for checkpoint in run_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    with pytest.raises(ValueError, match="no checkpoint yet"):
        export_checkpoint(run_dir)


def test_assembling_a_snapshot_records_it_as_unfinished(tmp_path):
    from unclip_diffusers.training.assemble import main as assemble
    from unclip_diffusers.training.provenance import read_provenance

    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    decoder = tmp_path / "decoder"
    shutil.copytree(runs["decoder"], decoder)
    snapshot = export_checkpoint(decoder, decoder / "checkpoint-15")
    output = tmp_path / "pipeline"
    assemble(["--clip", str(runs["clip"]), "--prior", str(runs["prior"]), "--decoder", str(snapshot),
              "--output", str(output)])
    provenance = read_provenance(output)
    assert set(provenance) == {"clip", "prior", "decoder"}
    assert provenance["decoder"] | {"source": None} == provenance["decoder"] | {
        "source": None, "finished": False, "step": 15, "max_steps": 30, "samples": 15 * 4, "batch_size": 4}
    assert provenance["prior"]["finished"] and provenance["prior"]["step"] == provenance["prior"]["max_steps"] == 30
    assert provenance["decoder"]["source"] == "decoder/snapshot-15"
