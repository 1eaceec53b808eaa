"""Contrastive training of the domain encoder (CLIP loss with several positives per image).

A batch has B images and C >= B captions; `positive[i, j]` says caption j is true of image i. Captions
0..B-1 are each image's own (full or partial) caption; the rest are hard negatives (one attribute
swapped), which teach the fine distinctions that attribute reading needs. Partial captions make many
captions true of several images, so the targets are uniform over the true captions instead of one-hot.

Training stops by wall-clock (`max_seconds`) or `max_steps`, whichever comes first; the learning rate
follows a cosine over the wall-clock budget. Runs on CPU (tests, with the toy sampler) and GPU (bf16).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pnr.metrics.encoder import DomainEncoder, EncoderConfig


@dataclass
class Batch:
    images: torch.Tensor  # [B,3,H,W] in [0,1]
    captions: list[str]  # [C], C >= B; caption i < B belongs to image i
    positive: torch.Tensor  # [B,C] bool


@dataclass
class TrainConfig:
    batch: int = 256
    lr: float = 1e-3  # AdamW; CLIP-style small models tolerate 1e-3 with warm-up
    weight_decay: float = 0.05
    warmup_steps: int = 200
    max_steps: int = 1_000_000
    max_seconds: float = 420.0  # wall-clock budget (the shipped encoder's run: docs/metrics.md)
    log_every: int = 100
    seed: int = 0


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, positive: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """img [B,D], txt [C,D] unit norm; positive [B,C] bool -> scalar (mean of both directions)."""
    logits = scale * img @ txt.t()  # [B,C]
    pos = positive.float()
    t_i2t = pos / pos.sum(1, keepdim=True).clamp_min(1.0)
    loss_i2t = -(t_i2t * F.log_softmax(logits, 1)).sum(1).mean()
    b = img.shape[0]
    own = pos[:, :b]  # the B own captions, each true of at least its image
    t_t2i = own / own.sum(0, keepdim=True).clamp_min(1.0)
    loss_t2i = -(t_t2i * F.log_softmax(logits[:, :b], 0)).sum(0).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def train_encoder(
    cfg: EncoderConfig,
    tcfg: TrainConfig,
    sampler: Callable[[int, torch.Generator], Batch],
    device: str | torch.device = "cpu",
    model: DomainEncoder | None = None,
    progress: bool = True,
    callback: Callable[[DomainEncoder, dict], None] | None = None,
) -> tuple[DomainEncoder, list[dict]]:
    """Train (or continue training) an encoder; returns (model in eval mode, log records).

    `callback(model, record)` runs at every log step (periodic checkpoints)."""
    device = torch.device(device)
    torch.manual_seed(tcfg.seed)
    gen = torch.Generator().manual_seed(tcfg.seed + 1)
    model = (model or DomainEncoder(cfg)).to(device).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=tcfg.lr, betas=(0.9, 0.98))
    use_amp = device.type == "cuda"
    log, t0, step = [], time.perf_counter(), 0
    bar = tqdm(total=tcfg.max_steps if tcfg.max_steps < 1_000_000 else None, disable=not progress, desc="encoder")
    while step < tcfg.max_steps:
        elapsed = time.perf_counter() - t0
        if elapsed > tcfg.max_seconds:
            break
        frac = min(1.0, max(elapsed / tcfg.max_seconds, step / tcfg.max_steps))
        lr = tcfg.lr * min(1.0, (step + 1) / tcfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = sampler(tcfg.batch, gen)
        ids = model.tokenizer(batch.captions).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            e_img, e_txt = model(batch.images.to(device, non_blocking=True), ids)
            loss = multi_positive_clip_loss(e_img.float(), e_txt.float(), batch.positive.to(device), model.logit_scale.exp().clamp(max=100.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % tcfg.log_every == 0 or step == 1:
            rec = {"step": step, "loss": loss.item(), "lr": lr, "seconds": time.perf_counter() - t0,
                   "scale": model.logit_scale.exp().item()}
            log.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            if callback is not None:
                callback(model, rec)
    bar.close()
    log.append({"step": step, "seconds": time.perf_counter() - t0, "final": True})
    return model.eval(), log


# ---------------------------------------------------------------------------------------------------
# A toy domain (coloured discs/squares on white) for CPU tests of the training loop and the metrics.

TOY_COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.1, 0.2, 0.9), "yellow": (0.95, 0.85, 0.1)}
TOY_SHAPES = ("disc", "square")
TOY_VOCAB = ["a", *TOY_COLOURS, *TOY_SHAPES]


def toy_render(colour: str, shape: str, res: int = 32, cx: float = 0.0, cy: float = 0.0, size: float = 0.5) -> torch.Tensor:
    """One toy image [3,res,res] in [0,1]: a coloured shape on white."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    x, y = x - cx, y - cy
    inside = (x * x + y * y < size * size) if shape == "disc" else ((x.abs() < size * 0.85) & (y.abs() < size * 0.85))
    img = torch.ones(3, res, res)
    img[:, inside] = torch.tensor(TOY_COLOURS[colour]).view(3, 1)
    return img


def toy_sampler(res: int = 32) -> Callable[[int, torch.Generator], Batch]:
    cols, shapes = list(TOY_COLOURS), list(TOY_SHAPES)

    def sample(n: int, gen: torch.Generator) -> Batch:
        ci = torch.randint(len(cols), (n,), generator=gen)
        si = torch.randint(len(shapes), (n,), generator=gen)
        jit = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([0.4, 0.4, 0.3])
        imgs = torch.stack([toy_render(cols[c], shapes[s], res, j[0].item(), j[1].item(), 0.5 + j[2].item())
                            for c, s, j in zip(ci.tolist(), si.tolist(), jit)])
        kind = torch.randint(3, (n,), generator=gen)  # 0 full, 1 colour only, 2 shape only
        asserts = []  # the attributes each caption asserts
        for c, s, k in zip(ci.tolist(), si.tolist(), kind.tolist()):
            full = {"colour": cols[c], "shape": shapes[s]}
            asserts.append(full if k == 0 else {key: full[key] for key in (["colour"] if k == 1 else ["shape"])})
        negs = []  # hard negatives: each own caption with its colour (or else its shape) swapped
        for a in asserts:
            b = dict(a)
            if "colour" in b:
                b["colour"] = cols[(cols.index(b["colour"]) + 1 + int(torch.randint(len(cols) - 1, (1,), generator=gen))) % len(cols)]
            else:
                b["shape"] = shapes[1 - shapes.index(b["shape"])]
            negs.append(b)
        asserts = asserts + negs
        caps = [toy_caption(a) for a in asserts]
        truth = [{"colour": cols[c], "shape": shapes[s]} for c, s in zip(ci.tolist(), si.tolist())]
        pos = torch.tensor([[all(t.get(k) == v for k, v in a.items()) for a in asserts] for t in truth])
        return Batch(imgs, caps, pos)

    return sample


def toy_caption(a: dict) -> str:
    """{"colour": "red", "shape": "disc"} -> "a red disc"; partial dicts give "a red" / "a disc"."""
    return " ".join(["a"] + [a[k] for k in ("colour", "shape") if k in a])


# ---------------------------------------------------------------------------------------------------
# Command line: python -m pnr.metrics.train_encoder --seconds 420 --out DIR  (docs/metrics.md)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    from pnr.data.domain.grammar import vocabulary
    from pnr.io import atomic_write_text
    from pnr.metrics import encoder_data as D
    from pnr.metrics.encoder import n_params, save_encoder

    p = argparse.ArgumentParser(description="Train the domain image-text encoder on rendered objects.")
    p.add_argument("--out", required=True, help="output directory (weights, config, logs)")
    p.add_argument("--seconds", type=float, default=420.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--small", action="store_true", help="tiny model (CPU smoke test)")
    p.add_argument("--eval-specs", type=int, default=400)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views-per-spec", type=int, default=4, help="views rendered per sampled object")
    p.add_argument("--init", default=None, help="continue from an encoder directory (weights + config.json)")
    p.add_argument("--warmup", type=int, default=200)
    args = p.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = EncoderConfig(res=args.res, vocab=vocabulary())
    if args.small:
        cfg = EncoderConfig(res=args.res, widths=(16, 32, 64), blocks_per_stage=1, embed_dim=64, text_width=64,
                            text_layers=1, text_heads=2, vocab=vocabulary())
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tcfg = TrainConfig(batch=args.batch, lr=args.lr, max_steps=args.steps, max_seconds=args.seconds, seed=args.seed,
                       warmup_steps=min(args.warmup, max(1, args.steps // 10)), log_every=100 if dev.type == "cuda" else 5)
    init = None
    if args.init:
        from pnr.metrics.encoder import load_encoder

        init = load_encoder(args.init).float().requires_grad_(True)
        cfg = init.cfg
        prev = getattr(init, "meta", {}).get("training", {})
    sampler = D.prefetch(D.domain_sampler(args.res, dev, seed=args.seed, views_per_spec=args.views_per_spec))
    print(f"encoder params: image {n_params(DomainEncoder(cfg).image) / 1e6:.2f}M, text {n_params(DomainEncoder(cfg).text) / 1e6:.2f}M", flush=True)
    last_save = [time.perf_counter()]

    def checkpoint(m: DomainEncoder, rec: dict) -> None:
        print(rec, flush=True)
        if time.perf_counter() - last_save[0] > 120:  # a run cut short still leaves weights behind
            save_encoder(m, out, {"partial": rec})
            last_save[0] = time.perf_counter()

    try:
        model, log = train_encoder(cfg, tcfg, sampler, dev, model=init, progress=dev.type != "cuda", callback=checkpoint)
    finally:
        sampler.close()
    for r in log[-5:]:
        print(r, flush=True)
    meta = {"training": {"steps": log[-1]["step"], "seconds": round(log[-1]["seconds"], 1), "batch": args.batch,
                         "lr": args.lr, "seed": args.seed, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                         "torch": torch.__version__, "views_per_spec": args.views_per_spec}}
    if args.init:
        meta["training"]["continued_from"] = prev
    save_encoder(model, out, meta)
    atomic_write_text(out / "train_log.json", json.dumps(log))
    # held-out attribute reading on exact renders (unseen seed stream), fp16 weights as shipped
    from pnr.metrics.encoder import load_encoder

    shipped = load_encoder(out, dev)
    imgs, specs = D.heldout_set(args.eval_specs, 4, args.res, dev)
    acc = D.attribute_accuracy(shipped, imgs, specs, 4)
    meta["heldout"] = {"n_specs": args.eval_specs, "views": 4, "elevation": 20.0, "radius": 3.0, "background": "white",
                       "seed": D.HELDOUT_SEED, "accuracy": acc}
    save_encoder(model, out, meta)
    table = D.format_accuracy_table(acc)
    atomic_write_text(out / "heldout.md", table + "\n")
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
