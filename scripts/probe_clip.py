"""Linear probe of a CLIP's image embeddings beside its caption-based style accuracy: a thin wrapper around
`unclip_diffusers.evaluation.probe_clip` (the same as `python -m unclip_diffusers.evaluation.probe_clip`).

    python scripts/probe_clip.py --clip checkpoints/unclip-emoji --data data/emoji --output outputs/probe-release
"""

from unclip_diffusers.evaluation.probe_clip import main

if __name__ == "__main__":
    main()
