"""Contact sheet of random domain objects: 4 turntable views each, captioned (docs/domain_contact_sheet.png)."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from pnr.data.domain.grammar import caption, sample_spec
from pnr.data.domain.render import render_specs
from pnr.io import to_uint8
from pnr.render.cameras import Cameras
from pnr.render.orbit import DOMAIN_SHEET_ORBIT


def contact_sheet_image(n: int = 32, seed: int = 0, res: int = DOMAIN_SHEET_ORBIT.res, per_row: int = 2,
                        elevation: float = DOMAIN_SHEET_ORBIT.elevation,
                        background: float = 1.0, device="cpu") -> np.ndarray:
    """uint8 [H, W, 3]: `n` random objects (seeded), each as 4 views 90 degrees apart from the front-left,
    with its caption below."""
    rng = random.Random(seed)
    specs = [sample_spec(rng) for _ in range(n)]
    orbit = DOMAIN_SHEET_ORBIT.with_(res=res, elevation=elevation)
    cams = Cameras.cat([orbit.cameras(device) for _ in specs])
    rgba, _ = render_specs(specs, cams, views_per_spec=4, supersample=2)
    img = rgba[..., :3] * rgba[..., 3:] + background * (1 - rgba[..., 3:])
    img = to_uint8(img.cpu())
    text_h, pad = 14, 4
    cell_w, cell_h = 4 * res + pad, res + text_h + pad
    rows = (n + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * cell_w + pad, rows * cell_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, spec in enumerate(specs):
        r, c = divmod(i, per_row)
        x0, y0 = pad + c * cell_w, pad + r * cell_h
        strip = np.concatenate(list(img[4 * i:4 * i + 4]), axis=1)
        sheet.paste(Image.fromarray(strip), (x0, y0))
        draw.text((x0 + 2, y0 + res + 1), caption(spec), fill=(20, 20, 20))
    return np.asarray(sheet)
