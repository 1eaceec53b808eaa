"""Training loop of the built-in prior: epsilon-prediction MSE, bf16 autocast, AdamW, EMA, resumable.

One step trains on B object groups of V=4 views; every `single_view_every`-th step the same kind of
batch is split into 4*B single views (V=1), so one set of weights serves as both the multi-view and
the single-view prior. Captions come from the data source with dropout already applied (the empty
caption is the unconditional branch for classifier-free guidance).
"""

from __future__ import annotations

import copy
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from pnr.errors import CheckpointError
from pnr.io import atomic_write_bytes
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior, save_prior


@dataclass
class TrainConfig:
    """Defaults of the shipped prior's training runs (docs/prior-training.md has their machine and times)."""

    batch_groups: int = 48  # objects per step, 4 views each (192 images)
    single_view_every: int = 4  # every k-th step is a V=1 batch (0 = never)
    lr: float = 3e-4  # AdamW; linear warm-up then cosine decay to 10% over `planned_steps`
    weight_decay: float = 0.01
    warmup_steps: int = 300
    planned_steps: int = 20000
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # short runs: ~1000-step horizon
    log_every: int = 50
    ckpt_every_s: float = 120.0
    seed: int = 0
    bf16: bool = True
    compile: bool = False  # torch.compile the UNet's forward (bench/prior_train_speed.py measures the gain)


class DataSource(Protocol):
    def next_batch(self, groups: int, views: int) -> tuple[Tensor, Tensor, list[str]]:
        """-> x0 [B, V, 3, S, S] in [-1, 1] on the device, c2w [B, V, 4, 4], prompts (len B, dropout applied)."""


def diffusion_loss(prior: BuiltinPrior, x0: Tensor, c2w: Tensor, prompts: list[str],
                   generator: torch.Generator | None = None, t: Tensor | None = None, eps: Tensor | None = None) -> Tensor:
    """E ||eps - eps_theta(alpha x0 + sigma eps, t)||^2 with t uniform over the discrete steps."""
    b = x0.shape[0]
    dev = x0.device
    if t is None:
        t = torch.randint(0, prior.schedule.num_steps, (b,), generator=generator).to(dev).float() / (prior.schedule.num_steps - 1)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator).to(dev)
    alpha, sigma = prior.schedule.alpha_sigma(t)
    x_t = alpha.view(-1, 1, 1, 1, 1) * x0 + sigma.view(-1, 1, 1, 1, 1) * eps
    cond = prior.encode_text(prompts)
    pred = prior.predict_eps(x_t, t, cond, c2w)
    return F.mse_loss(pred.float(), eps)


def lr_at(step: int, tc: TrainConfig, warm_from: int = 0) -> float:
    """Warm-up over `warmup_steps` after `warm_from` (a fresh optimizer), cosine decay over absolute steps."""
    if step - warm_from < tc.warmup_steps:
        return tc.lr * (step - warm_from + 1) / tc.warmup_steps
    p = min(1.0, (step - tc.warmup_steps) / max(1, tc.planned_steps - tc.warmup_steps))
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


class Trainer:
    """Holds model, EMA, optimizer and step; `train(data, seconds)` runs until the wall-clock budget."""

    def __init__(self, cfg: PriorConfig, tc: TrainConfig, device: str | torch.device = "cpu"):
        torch.manual_seed(tc.seed)
        self.cfg, self.tc, self.device = cfg, tc, torch.device(device)
        if self.device.type == "cuda":  # fixed shapes: let cuDNN pick the fastest conv algorithms
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.model = BuiltinPrior(cfg).to(self.device).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        if tc.compile:  # the bound forward, so state_dict keys stay those of the eager module
            self.model.unet.forward = torch.compile(self.model.unet.forward)
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            (no_decay if p.dim() < 2 or "norm" in n or n.endswith(".pos") else decay).append(p)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=(0.9, 0.99),
                                     fused=self.device.type == "cuda")
        self.step = self.warm_from = 0
        self.gen = torch.Generator().manual_seed(tc.seed + 1)

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"cfg": self.cfg.to_dict(), "train_cfg": asdict(self.tc), "step": self.step,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                "gen": self.gen.get_state()}

    def save(self, path: str | Path) -> None:
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        atomic_write_bytes(Path(path), buf.getvalue())

    @staticmethod
    def resume(path: str | Path, device="cpu", **overrides) -> "Trainer":
        """Resumes from a full checkpoint; `overrides` replace TrainConfig fields (e.g. a new batch size)."""
        try:
            st = torch.load(str(path), map_location="cpu", weights_only=False)
            cfg = PriorConfig.from_dict(st["cfg"])
            tc = TrainConfig(**{**st["train_cfg"], **{k: v for k, v in overrides.items() if v is not None}})
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: not a prior training checkpoint ({e})") from e
        tr = Trainer(cfg, tc, device)
        tr.model.load_state_dict(st["model"])
        tr.ema.load_state_dict(st["ema"])
        tr.opt.load_state_dict(st["opt"])
        tr.step = st["step"]
        tr.gen.set_state(st["gen"])
        return tr

    @staticmethod
    def from_prior(path: str | Path, tc: TrainConfig, device="cpu") -> "Trainer":
        """Continues from an exported (fp16) prior: model and EMA start from its weights, the optimizer
        is fresh (full-precision checkpoints are too large to carry between GPU machines here)."""
        from pnr.priors.builtin.prior import load_builtin_prior, read_prior_metadata

        src = load_builtin_prior(path, dtype=torch.float32)
        tr = Trainer(src.cfg, tc, device)
        tr.model.load_state_dict(src.state_dict())
        tr.ema.load_state_dict(src.state_dict())
        info = json.loads(read_prior_metadata(path).get("info", "{}"))
        tr.step = tr.warm_from = int(info.get("train_step", 0))
        return tr

    # -- training ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.tc.ema_decay, (1 + self.step) / (10 + self.step))  # faster warm-up of the average
        for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(pm, 1 - d)

    def train_step(self, data: DataSource) -> float:
        tc = self.tc
        single = tc.single_view_every > 0 and self.step % tc.single_view_every == tc.single_view_every - 1
        x0, c2w, prompts = data.next_batch(tc.batch_groups, 4)
        if single:  # every view becomes its own object: [B, 4] -> [4B, 1]
            b, v = x0.shape[:2]
            x0, c2w = x0.reshape(b * v, 1, *x0.shape[2:]), c2w.reshape(b * v, 1, 4, 4)
            prompts = [p for p in prompts for _ in range(v)]
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, tc, self.warm_from)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=tc.bf16):
            loss = diffusion_loss(self.model, x0, c2w, prompts, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.opt.step()
        self.step += 1
        self._update_ema()
        return loss.item()

    def train(self, data: DataSource, seconds: float, out_dir: str | Path | None = None,
              on_log=None, max_steps: int | None = None) -> list[dict]:
        """Trains until `seconds` of wall clock (or max_steps); logs JSONL to out_dir/log.jsonl and writes
        out_dir/ckpt.pt every ckpt_every_s and at the end. Returns the log records of this call."""
        out = Path(out_dir) if out_dir else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        t0 = last_ckpt = time.time()
        records, acc, n_acc, imgs, t_log = [], 0.0, 0, 0, time.time()
        bar = tqdm(desc="prior train", unit="step", initial=self.step)
        start_step = self.step
        while time.time() - t0 < seconds and (max_steps is None or self.step - start_step < max_steps):
            loss = self.train_step(data)
            if not math.isfinite(loss):
                from pnr.errors import NumericalError

                raise NumericalError(f"training loss became {loss} at step {self.step}; last checkpoint kept in {out}")
            acc, n_acc, imgs = acc + loss, n_acc + 1, imgs + self.tc.batch_groups * 4
            bar.update(1)
            if self.step % self.tc.log_every == 0:
                now = time.time()
                rec = {"step": self.step, "loss": acc / n_acc, "lr": lr_at(self.step, self.tc, self.warm_from),
                       "elapsed_s": round(now - t0, 2), "images_per_s": round(imgs / (now - t_log), 1)}
                records.append(rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                if out:
                    with open(out / "log.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                if on_log:
                    on_log(rec)
                acc, n_acc, imgs, t_log = 0.0, 0, 0, now
            if out and time.time() - last_ckpt > self.tc.ckpt_every_s:
                self.save(out / "ckpt.pt")
                last_ckpt = time.time()
        bar.close()
        if out:
            self.save(out / "ckpt.pt")
        return records

    def export(self, path: str | Path, extra: dict | None = None) -> Path:
        """The EMA weights as the fp16 safetensors prior checkpoint."""
        info = {"train_step": self.step, **(extra or {})}
        return save_prior(self.ema, path, extra=info)


class SyntheticData:
    """CPU-cheap stand-in for the object domain (tests, smoke runs): a coloured disc on white whose
    colour is named by the caption and whose horizontal position depends on the camera azimuth."""

    COLORS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "black": (-1.0, -1.0, -1.0)}

    def __init__(self, image_size: int, device="cpu", seed: int = 0, drop: float = 0.1):
        self.s, self.device, self.drop = image_size, torch.device(device), drop
        self.gen = torch.Generator().manual_seed(seed)

    @staticmethod
    def vocab() -> list[str]:
        return ["a", "ball", *SyntheticData.COLORS]

    def next_batch(self, groups: int, views: int) -> tuple[Tensor, Tensor, list[str]]:
        from pnr.render.cameras import random_orbit_views

        names = list(self.COLORS)
        idx = torch.randint(0, len(names), (groups,), generator=self.gen)
        cams = random_orbit_views(groups, views, generator=self.gen, res=self.s)
        c2w = cams.c2w.view(groups, views, 4, 4)
        az = torch.atan2(c2w[..., 1, 3], c2w[..., 0, 3])  # [B, V]
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, self.s), torch.linspace(-1, 1, self.s), indexing="ij")
        cx = 0.4 * torch.sin(az)[..., None, None]
        disc = (((xx - cx) ** 2 + yy**2) < 0.25).float()[:, :, None]  # [B, V, 1, S, S]
        col = torch.tensor([self.COLORS[names[i]] for i in idx.tolist()])[:, None, :, None, None]
        x0 = disc * col + (1 - disc) * 1.0
        drop = torch.rand(groups, generator=self.gen) < self.drop
        prompts = ["" if d else f"a {names[i]} ball" for i, d in zip(idx.tolist(), drop.tolist())]
        return x0.to(self.device), c2w.to(self.device), prompts
