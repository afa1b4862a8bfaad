"""The prompts of each wording family that evaluation draws per row."""

import json

from unclip_diffusers.data.wording import HELDOUT_TEMPLATES
from unclip_diffusers.evaluation.wording import wording_prompts


def test_each_row_gets_every_family_and_its_languages():
    names, styles = ["cat", "rocket"], ["Twemoji", "Noto"]
    localized = [json.dumps({"en": "cat", "de": "Katze", "ja": "猫"}), ""]
    families = wording_prompts(names, styles, localized, rows=[0, 1])
    assert {"training", "heldout", "bare_name", "lang:de", "lang:ja"} <= set(families)
    assert "lang:en" not in families  # English is the training wording
    assert (0, "cat, Twemoji style") in families["training"] and (1, "rocket, Noto style") in families["training"]
    assert {row for row, _ in families["lang:de"]} == {0} and any("Katze" in p for _, p in families["lang:de"])
    assert len(families["heldout"]) == 2 * len(HELDOUT_TEMPLATES)
    assert families["bare_name"] == [(0, "cat"), (1, "rocket")]
