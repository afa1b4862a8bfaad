"""Does a CLIP understand a plain name in each language? Text-to-image concept retrieval on held-out images.

For every distinct concept of a held-out split, the query is its bare name in one language (the dataset's `names`
column: CLDR short names), and the candidates are all the split's real images: a hit when the best-matching image
shows the query's concept (in any style). English also gets the training wording (the primary caption). This
measures the text side on its own, so a retrained text tower (locked-image tuning) can be compared with the one
before it on the same images, before the prior and decoder are trained on it.

    python -m unclip_diffusers.evaluation.languages --clip runs/clip-small/final --clip runs/clip-lit/final \\
        --data data/emoji --split heldout_concepts
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import load_image_text_dataset
from ..data.language import LOCALES


@torch.inference_mode()
def _embed_texts(clip: Any, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = clip.tokenizer(list(texts[start : start + batch_size]), padding="max_length", truncation=True,
                                max_length=clip.tokenizer.model_max_length, return_tensors="pt")  # fmt: skip
        out.append(clip.text_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).text_embeds)
    return F.normalize(torch.cat(out).float(), dim=-1)


@torch.inference_mode()
def _embed_images(clip: Any, images: Sequence[Any], batch_size: int = 256) -> torch.Tensor:
    out = []
    for start in range(0, len(images), batch_size):
        pixels = clip.feature_extractor(images=[im.convert("RGB") for im in images[start : start + batch_size]],
                                        return_tensors="pt")["pixel_values"]  # fmt: skip
        out.append(clip.image_encoder(pixel_values=pixels).image_embeds)
    return F.normalize(torch.cat(out).float(), dim=-1)


def concept_retrieval(query: torch.Tensor, query_concepts: Sequence[str], image_embeds: torch.Tensor,
                      image_concepts: Sequence[str], k: int = 5) -> dict[str, float]:
    """Share of queries whose top-1 (and any of the top-k) retrieved images show the query's concept."""
    order = (query @ image_embeds.T).topk(min(k, image_embeds.shape[0]), dim=1).indices  # (Q, k)
    hits = [[image_concepts[j] == concept for j in row] for row, concept in zip(order.tolist(), query_concepts)]
    return {"top1": sum(h[0] for h in hits) / len(hits), f"top{k}": sum(any(h) for h in hits) / len(hits),
            "queries": len(hits)}  # fmt: skip


def language_retrieval(clip: Any, data_path: str, split: str, locales: Sequence[str] = LOCALES) -> dict[str, Any]:
    """Per locale, text-to-image concept retrieval of the split's concepts by their bare names (see the module)."""
    data = load_image_text_dataset(data_path, split)
    if "names" not in data.column_names:
        raise ValueError(f"{data_path!r} has no `names` column; rebuild it with `unclip-data build`.")
    image_embeds = _embed_images(clip, data["image"])
    concepts = list(data["concept"])
    first: dict[str, int] = {}
    for row, concept in enumerate(concepts):
        first.setdefault(concept, row)
    names = {c: json.loads(data[r]["names"]) for c, r in first.items()}
    result: dict[str, Any] = {}
    primary = {c: data[r]["caption"] for c, r in first.items()}
    queries = {"en (training wording)": primary}
    for locale in locales:
        queries[locale] = {c: n[locale] for c, n in names.items() if n.get(locale)}
    for label, by_concept in queries.items():
        if by_concept:
            wanted = list(by_concept)
            result[label] = concept_retrieval(_embed_texts(clip, [by_concept[c] for c in wanted]), wanted,
                                              image_embeds, concepts)  # fmt: skip
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Print a table of top-1 / top-5 per locale for each `--clip` folder."""
    from ..training.embeddings import load_frozen_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", action="append", required=True, help="CLIP run folder or its final/ (repeatable)")
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--split", default="heldout_concepts")
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    results = {folder: language_retrieval(load_frozen_clip(folder), args.data, args.split) for folder in args.clip}
    labels = list(next(iter(results.values())))
    print("| query | " + " | ".join(f"{Path(f).parent.name}/{Path(f).name} top-1 / top-5" for f in results) + " |")
    print("|---|" + "---|" * len(results))
    for label in labels:
        cells = [f"{r[label]['top1']:.3f} / {r[label]['top5']:.3f}" if label in r else "n/a" for r in results.values()]
        print(f"| {label} ({next(iter(results.values()))[label]['queries']}) | " + " | ".join(cells) + " |")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
