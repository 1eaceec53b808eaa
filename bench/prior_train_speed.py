"""Built-in prior training step: where the time goes (data, forward, backward, optimizer), eager vs compiled.

    python bench/prior_train_speed.py [--device cuda] [--batches 48,96] [--compile] [--steps 20]

Prints one table row per setting: ms per step split into parts and images/s. Each part is timed with a
device synchronisation around it, so the parts add up to slightly more than an unsynchronised step.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pnr.priors.builtin.data import DomainData, domain_vocab
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.train import Trainer, TrainConfig, diffusion_loss


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_setting(dev, batch: int, compile_: bool, steps: int, warmup: int) -> dict:
    tc = TrainConfig(batch_groups=batch, bf16=dev.type == "cuda", single_view_every=0, compile=compile_)
    tr = Trainer(PriorConfig(vocab=domain_vocab()), tc, dev)
    data = DomainData(64, dev, seed=0)
    data.next_batch(batch)  # fill the pool
    parts = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    t_first = None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        x0, c2w, prompts = data.next_batch(batch, 4)
        _sync(dev)
        t1 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tc.bf16):
            loss = diffusion_loss(tr.model, x0, c2w, prompts, tr.gen)
        _sync(dev)
        t2 = time.perf_counter()
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        _sync(dev)
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), tc.grad_clip)
        tr.opt.step()
        tr._update_ema()
        _sync(dev)
        t4 = time.perf_counter()
        if i == 0:
            t_first = t4 - t0
        if i >= warmup:
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[k] += dt
    ms = {k: 1000 * v / steps for k, v in parts.items()}
    total = sum(ms.values())
    return {"batch_groups": batch, "images": batch * 4, "compile": compile_, **{f"{k}_ms": round(v, 2) for k, v in ms.items()},
            "step_ms": round(total, 2), "images_per_s": round(batch * 4 / total * 1000, 1),
            "first_step_s": round(t_first, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", default="48,96")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the UNet")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="write rows here")
    a = p.parse_args()
    dev = torch.device(a.device)
    rows = []
    for b in [int(x) for x in a.batches.split(",")]:
        for c in ([False, True] if a.compile else [False]):
            rows.append(time_setting(dev, b, c, a.steps, a.warmup + (3 if c else 0)))
            r = rows[-1]
            print(f"batch {r['images']:4d} img  compile={str(c):5s}  data {r['data_ms']:7.1f}  fwd {r['forward_ms']:7.1f}  "
                  f"bwd {r['backward_ms']:7.1f}  opt {r['optimizer_ms']:6.1f}  = {r['step_ms']:7.1f} ms/step  "
                  f"{r['images_per_s']:8.1f} img/s  (first step {r['first_step_s']} s)", flush=True)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
