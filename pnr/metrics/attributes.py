"""Zero-shot attribute reading with the domain encoder.

To read attribute A of an object seen in some views, given a reference spec (what we believe the other
attributes are, e.g. the edit's ground-truth target): score the captions of the specs that differ from the
reference only in A, and pick the best-matching one. Views are pooled by averaging their per-caption
log-probabilities, so one ambiguous view (a figure seen from the side) does not decide alone.
"""

from __future__ import annotations

import torch

from pnr.data.domain import grammar as G
from pnr.metrics.clip_metrics import embed_images
from pnr.metrics.domain_text import READ_ATTRS, alternatives, applies


@torch.no_grad()
def attribute_scores(encoder, img_emb: torch.Tensor, reference: G.ObjectSpec, attr: str) -> tuple[list[str], torch.Tensor]:
    """img_emb: [V,D] unit norm -> (values, log-probabilities [V, n_values]) over the alternatives."""
    values, specs = alternatives(reference, attr)
    txt = encoder.encode_text([G.caption(s) for s in specs]).to(img_emb.dtype)
    scale = encoder.logit_scale.exp().float() if hasattr(encoder, "logit_scale") else torch.tensor(100.0)
    return values, torch.log_softmax(scale * img_emb @ txt.t(), dim=-1)


@torch.no_grad()
def read_attributes(encoder, images: torch.Tensor | None, reference: G.ObjectSpec, attrs=READ_ATTRS,
                    img_emb: torch.Tensor | None = None, per_view: bool = False) -> dict[str, object]:
    """Read each attribute in `attrs` that applies to the reference's category.

    images: [V,3,H,W] in [0,1] or uint8 [V,H,W,3] (or pass img_emb [V,D]). Returns {attr: value} pooled over
    views, or with per_view=True {attr: [value per view]}.
    """
    if img_emb is None:
        img_emb = embed_images(encoder, images)
    out = {}
    for a in attrs:
        if not applies(reference, a):
            continue
        values, logp = attribute_scores(encoder, img_emb, reference, a)
        if per_view:
            out[a] = [values[i] for i in logp.argmax(-1).tolist()]
        else:
            out[a] = values[int(logp.mean(0).argmax())]
    return out
