"""Start a training run from trained weights instead of a random initialisation (`--init_from FOLDER`).

A stage's weights are found under the component names the pipeline uses (`prior/`, `decoder/` + `text_proj/`,
`super_res_first/`, `super_res_second/`, and `clip/` or `text_encoder/` + `image_encoder/`), so FOLDER can be a run's `final/`, a
`snapshot-<step>/` from `unclip-train export`, a run folder restored by `unclip-train restore`, or an assembled
pipeline folder such as the release `checkpoints/unclip-emoji`. Only weights are loaded: optimizer moments start
fresh. When FOLDER is an interim snapshot (or a pipeline folder whose provenance marks the stage unfinished) the
run continues counting from that step, so the LR schedule and the EMA warm-up carry on where training stopped;
otherwise it starts at step 0 (fine-tuning).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from .provenance import SNAPSHOT_RE, read_provenance

logger = logging.getLogger(__name__)


def component_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of the safetensors files of one saved component folder (sharded files merged)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.glob("*.bin")) if folder.is_dir() else []
        detail = f"; pickled weights ({', '.join(pickled)}) are never loaded" if pickled else ""
        raise ValueError(f"No safetensors weights in {str(folder)!r}{detail}.")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


def load_component(module: nn.Module, folder: str | os.PathLike) -> None:
    """Load a saved component's weights into `module` (strict: every key must match; cast to the module's dtype)."""
    _load_state(module, component_state_dict(folder), folder)


def is_whole_clip_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` itself holds a saved whole `CLIPModel` (e.g. a shipped evaluator), not a run's `clip/`."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return False
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type") == "clip"
    except (json.JSONDecodeError, AttributeError):
        return False


def load_clip_halves(model: nn.Module, folder: Path) -> None:
    """Load a `CLIPModel` from the pipeline's `text_encoder/` and `image_encoder/` (the temperature stays as built)."""
    state = {**component_state_dict(folder / "text_encoder"), **component_state_dict(folder / "image_encoder")}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if unexpected or any(name != "logit_scale" for name in missing):
        raise ValueError(
            f"The CLIP halves in {str(folder)!r} do not fit this model (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}); was it trained with the same model preset?"
        )
    state["logit_scale"] = own["logit_scale"]
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    logger.warning("Loaded CLIP from text_encoder/ and image_encoder/ of %s; its temperature is re-initialised.", folder)


PRIOR_POSITIONS = "positional_embedding"


def load_prior(model: nn.Module, folder: Path) -> None:
    """Load a saved `prior/` into `model`, whose caption context may be longer than the saved one's.

    The prior's positions are [caption tokens, then its `additional_embeddings` (z_t, timestep, noised z_i, query)].
    With a longer context (a text encoder retrained with more tokens, issue 20) the old token positions are copied
    to the first slots, every further token slot starts as the old last token's and the additional positions keep
    their trained values; everything else must match exactly. Used to fine-tune the prior on a new text tower instead
    of training it from scratch.
    """
    state = component_state_dict(folder)
    own = model.state_dict()
    old, new = state.get(PRIOR_POSITIONS), own.get(PRIOR_POSITIONS)
    if old is not None and new is not None and old.shape != new.shape:
        extra = model.config.additional_embeddings
        old_tokens, new_tokens = old.shape[1] - extra, new.shape[1] - extra
        if old.shape[::2] != new.shape[::2] or old_tokens < 1 or new_tokens < old_tokens:
            raise ValueError(f"The prior in {str(folder)!r} has positions {tuple(old.shape)}, which cannot be "
                             f"widened to this model's {tuple(new.shape)}; only a longer caption context can.")  # fmt: skip
        filler = old[:, old_tokens - 1 : old_tokens].expand(-1, new_tokens - old_tokens, -1)
        state[PRIOR_POSITIONS] = torch.cat([old[:, :old_tokens], filler, old[:, old_tokens:]], dim=1)
        logger.info("Widened the prior's caption positions from %d to %d (new slots start as the last old one).",
                    old_tokens, new_tokens)  # fmt: skip
    _load_state(model, state, folder)


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], folder: str | os.PathLike) -> None:
    """Load `state` into `module` strictly (same keys and shapes), cast to the module's dtypes."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"The weights in {str(folder)!r} do not fit this model (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}); was it trained with the same model preset?"
        )
    mismatched = [k for k in own if own[k].shape != state[k].shape]
    if mismatched:
        raise ValueError(
            f"The weights in {str(folder)!r} have other shapes than this model ({mismatched[:5]}); "
            "was it trained with the same model preset?"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


IMAGE_TOWER_PREFIXES = ("vision_model.", "visual_projection.")


def load_image_tower(model: nn.Module, folder: Path) -> None:
    """Load only the image tower of a `CLIPModel` (`vision_model.*`, `visual_projection.*`) from `folder`.

    `folder` holds `clip/` (a CLIP run's whole model) or the pipeline's `image_encoder/`; the text tower and the
    temperature are left as they are.
    """
    folder = Path(folder)
    source = folder / "clip" if (folder / "clip").is_dir() else folder / "image_encoder"
    if not source.is_dir():
        raise ValueError(f"{str(folder)!r} has neither clip/ nor image_encoder/ to take an image tower from.")
    state = {k: v for k, v in component_state_dict(source).items() if k.startswith(IMAGE_TOWER_PREFIXES)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(IMAGE_TOWER_PREFIXES)}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The image tower in {str(source)!r} does not fit this model (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, other shapes {mismatched[:5]}); train with the model preset it was trained with."
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
    logger.info("Loaded the image tower from %s.", source)


def initial_step(folder: str | os.PathLike, stage: str) -> int:
    """The step a run started from `folder` continues from: a snapshot's step, an unfinished pipeline stage's, or 0."""
    folder = Path(folder)
    match = SNAPSHOT_RE.match(folder.name)
    if match:
        return int(match.group(1))
    provenance = read_provenance(folder) or {}
    entry = provenance.get(stage, {})
    if entry.get("recorded") and not entry.get("finished", True):
        return int(entry.get("step", 0))
    return 0


def require_folder(folder: str | os.PathLike) -> Path:
    """`folder` as a Path, or a clear error when it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"init_from: {str(folder)!r} is not a folder.")
    return folder


TEXT_TOWER_PREFIXES = ("text_model.", "text_projection.")
TOKEN_EMBEDDING = "text_model.embeddings.token_embedding.weight"
POSITION_EMBEDDING = "text_model.embeddings.position_embedding.weight"


def _old_vocab(folder: Path, old_rows: int, new_vocab: dict[str, int]) -> dict[str, int]:
    """The old text tower's vocabulary: `folder/tokenizer/`, else CLIP's layout (same ids, BOS and EOS last)."""
    from transformers import CLIPTokenizer

    if (folder / "tokenizer").is_dir():
        vocab = CLIPTokenizer.from_pretrained(folder / "tokenizer").get_vocab()
        if len(vocab) != old_rows:
            raise ValueError(f"{str(folder / 'tokenizer')!r} has {len(vocab)} tokens but the text tower {old_rows} "
                             "embedding rows.")  # fmt: skip
        return vocab
    logger.warning("%s has no tokenizer/; taking CLIP's id layout (same ids, BOS and EOS last).", folder)
    if old_rows > len(new_vocab):
        raise ValueError(f"The old text tower has {old_rows} token ids, more than the new vocabulary's {len(new_vocab)}.")
    by_id = sorted(new_vocab, key=new_vocab.get)
    return {**{t: i for i, t in enumerate(by_id[: old_rows - 2])}, by_id[-2]: old_rows - 2, by_id[-1]: old_rows - 1}


def _old_pieces(merges: list[tuple[str, str]], old_vocab: dict[str, int]) -> dict[str, list[int]]:
    """For every token a merge makes that the old vocabulary lacks: the old ids it is made of, as the old BPE splits it."""
    pieces: dict[str, list[int]] = {}
    for left, right in merges:
        token = left + right
        if token in old_vocab or token in pieces:
            continue
        parts = [pieces.get(p) or ([old_vocab[p]] if p in old_vocab else None) for p in (left, right)]
        if parts[0] is not None and parts[1] is not None:
            pieces[token] = parts[0] + parts[1]
    return pieces


def _merges(tokenizer) -> list[tuple[str, str]]:
    """The BPE merges of a fast tokenizer, in rank order."""
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def load_text_tower(model: nn.Module, folder: Path, tokenizer) -> None:
    """Warm-start the text tower of `model` from an older CLIP in `folder` whose vocabulary or context may be smaller.

    `folder` holds `clip/` or the pipeline's `text_encoder/`, and `tokenizer/`. Rows of tokens both vocabularies
    have are copied to their new ids (BOS and EOS included); the first positions are copied and every further position
    starts as the old last one; layers, final norm and projection are copied (their shapes must match). A new token
    made of old ones (`tokenizer`'s merges; e.g. "fluent</w>" from "flu" + "ent</w>") starts as the mean of their rows,
    so English words the extra merges join keep what the old tower knew of them; other new rows keep the model's
    initialisation.
    """
    folder = Path(folder)
    source = folder / "clip" if (folder / "clip").is_dir() else folder / "text_encoder"
    if not source.is_dir():
        raise ValueError(f"{str(folder)!r} has neither clip/ nor text_encoder/ to take a text tower from.")
    state = {k: v for k, v in component_state_dict(source).items() if k.startswith(TEXT_TOWER_PREFIXES)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(TEXT_TOWER_PREFIXES)}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    resized = (TOKEN_EMBEDDING, POSITION_EMBEDDING)
    mismatched = [k for k in own if k in state and k not in resized and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The text tower in {str(source)!r} does not fit this model (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, other shapes {mismatched[:5]}); only the vocabulary and the context may differ."
        )
    loaded = {k: v.to(own[k].dtype) for k, v in state.items() if k not in resized}
    new_vocab = tokenizer.get_vocab()
    old_tokens = state[TOKEN_EMBEDDING].to(own[TOKEN_EMBEDDING].dtype)  # (V_old, D)
    old_vocab = _old_vocab(folder, len(old_tokens), new_vocab)
    shared = sorted((i, new_vocab[t]) for t, i in old_vocab.items() if t in new_vocab)
    if len(shared) < len(old_vocab):
        lost = sorted(set(old_vocab) - set(new_vocab))[:5]
        logger.warning("%d old tokens are not in the new vocabulary (e.g. %s); their rows are dropped.",
                       len(old_vocab) - len(shared), lost)  # fmt: skip
    tokens = own[TOKEN_EMBEDDING].clone()  # (V_new, D)
    tokens[[new for _, new in shared]] = old_tokens[[old for old, _ in shared]]
    pieces = _old_pieces(_merges(tokenizer), old_vocab)
    for token, ids in pieces.items():
        if token in new_vocab:
            tokens[new_vocab[token]] = old_tokens[ids].mean(dim=0)
    positions = own[POSITION_EMBEDDING].clone()  # (P_new, D)
    old_positions = state[POSITION_EMBEDDING].to(positions.dtype)  # (P_old, D)
    kept = min(len(old_positions), len(positions))
    positions[:kept] = old_positions[:kept]
    positions[kept:] = old_positions[-1]
    model.load_state_dict({**loaded, TOKEN_EMBEDDING: tokens, POSITION_EMBEDDING: positions}, strict=False)
    logger.info("Warm-started the text tower from %s: %d of %d token rows copied, %d from their old pieces, %d of %d "
                "positions.", source, len(shared), len(tokens), len(pieces), kept, len(positions))  # fmt: skip
