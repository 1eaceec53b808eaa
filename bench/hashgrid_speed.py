"""Fused hash-grid encoding on the GPU: correctness against the torch reference, then a timing table.

    PYTHONUNBUFFERED=1 python bench/hashgrid_speed.py [--points 1048576] [--no-compile] [--json out.json]

Prints: the device's measured ceilings (device copy bandwidth, bf16 matmul rate), the relative error
of the fused forward/backward against the fp32 and fp64 reference on fresh random inputs (poisoned
outputs, repeated runs), and points/s for the eager reference, the torch.compile'd reference and the
fused kernels (launch variants, encode alone and encode + 2-layer MLP). docs/speed.md records it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pnr.field import encoding_triton as et  # noqa: E402
from pnr.field.encoding import corner_index, hash_encode_torch  # noqa: E402


def resolutions(L: int, base: int = 16, max_res: int = 2048) -> list[int]:
    b = math.exp((math.log(max_res) - math.log(base)) / (L - 1))
    return [int(math.floor(base * b**l)) for l in range(L)]


def bench(fn, warmup=25, rep=100) -> float:
    """Median milliseconds (device events through triton.testing.do_bench)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median")


def ceilings() -> dict:
    a = torch.empty(2**28, device="cuda", dtype=torch.float32).uniform_()  # 1 GiB
    b = torch.empty_like(a)
    t = bench(lambda src=a, dst=b: dst.copy_(src))
    copy_bw = 2 * a.numel() * 4 / (t * 1e-3)
    del a, b
    n = 8192
    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    y = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    t = bench(lambda: x @ y)
    mm = 2 * n**3 / (t * 1e-3)
    return {"copy_bytes_per_s": copy_bw, "bf16_flops": mm}


def reference_fp64(x01, tables64, res):
    """The reference with fp64 weights/tables/sums but the fp32 positions p = x*R of the spec.

    (Casting x to fp64 first would move w by up to R*6e-8 at fine levels, i.e. compare against a
    different function; p - floor(p) is exact in fp32, so only the blending is done in fp64 here.)
    """
    x01 = x01.clamp(0.0, 1.0).float()
    L, T, F = tables64.shape
    offs = torch.tensor([[(k >> 0) & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], device=x01.device)
    outs = []
    for l, r in enumerate(res):
        p = x01 * r
        c0 = torch.floor(p)
        w = (p - c0).double()
        g = (c0.long()[:, None, :] + offs[None]).clamp_(max=r)
        wc = torch.where(offs[None].bool(), w[:, None, :], 1.0 - w[:, None, :]).prod(-1)
        outs.append((wc[..., None] * tables64[l][corner_index(g, r, T)]).sum(1))
    return torch.cat(outs, dim=-1)


def rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def check(N: int, L: int, T: int, F: int, seed: int, column_major: bool) -> dict:
    g = torch.Generator(device="cuda").manual_seed(seed)
    res = resolutions(L)
    x = torch.rand(N, 3, device="cuda", generator=g) * 1.1 - 0.05
    x[:4] = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.5], [0.5, 1.0, 1.0]], device="cuda")
    tab = (torch.rand(L, T, F, device="cuda", generator=g) * 2 - 1).requires_grad_(True)
    params = et.level_params(res, T).cuda()
    out = torch.full((N, L * F), float("nan"), device="cuda")
    if column_major:
        out = torch.full((L * F, N), float("nan"), device="cuda").t()
    et.encode_forward(x, tab.detach(), params, out=out)
    out2 = et.encode_forward(x, tab.detach(), params, column_major=column_major)
    ref = hash_encode_torch(x, tab, res)
    tab64 = tab.detach().double().requires_grad_(True)
    ref64 = reference_fp64(x, tab64, res)
    gout = torch.randn(N, L * F, device="cuda", generator=g)
    if column_major:
        gout = gout.t().contiguous().t()
    ref.backward(gout)
    ref64.backward(gout.double())
    gt = et.encode_backward(x, gout, params, (L, T, F))
    gt2 = et.encode_backward(x, gout, params, (L, T, F))
    # autograd path (what hash_encode dispatches to)
    tab_a = tab.detach().clone().requires_grad_(True)
    out_a = et.hash_encode_fused(x, tab_a, res, column_major=column_major)
    out_a.backward(gout)
    torch.cuda.synchronize()
    return {
        "N": N, "L": L, "T": T, "F": F, "seed": seed, "column_major": column_major,
        "nan_out": int(torch.isnan(out).sum()), "nan_grad": int(torch.isnan(gt).sum()),
        "fwd_rel_fp32": rel(out, ref), "fwd_rel_fp64": rel(out, ref64), "fwd_repeat_equal": bool(torch.equal(out, out2)),
        "bwd_rel_fp32": rel(gt, tab.grad), "bwd_rel_fp64": rel(gt, tab64.grad), "bwd_repeat_rel": rel(gt2, gt),
        "autograd_fwd_rel": rel(out_a, ref), "autograd_bwd_rel": rel(tab_a.grad, tab.grad),
    }


def timing(N: int, L: int, T: int, F: int, do_compile: bool) -> list[dict]:
    res = resolutions(L)
    xs = [torch.rand(N, 3, device="cuda") for _ in range(3)]  # rotate input sets
    tab = (torch.rand(L, T, F, device="cuda") * 2e-4 - 1e-4).requires_grad_(True)
    gout = torch.randn(N, L * F, device="cuda")
    params = et.level_params(res, T).cuda()
    rows = []
    it = [0]

    def nx():
        it[0] += 1
        return xs[it[0] % 3]

    def add(name, ms, note=""):
        rows.append({"name": name, "ms": ms, "Mpts_per_s": N / (ms * 1e-3) / 1e6, "note": note})
        print(f"  {name:52s} {ms:9.3f} ms  {N / (ms * 1e-3) / 1e6:9.1f} M pts/s {note}", flush=True)

    def fwdbwd(enc):
        def f():
            tab.grad = None
            enc(nx(), tab, res).backward(gout)
        return f

    # fused kernels: launch variants, forward and backward alone
    for block, lpp, warps in [(128, 1, 4), (256, 1, 4), (512, 1, 4), (256, 1, 8), (512, 1, 8), (1024, 1, 8),
                              (256, 2, 4), (256, 4, 4), (256, 8, 4), (256, 16, 4)]:
        kw = dict(BLOCK=block, LPP=lpp, num_warps=warps)
        out = torch.empty(N, L * F, device="cuda")
        add(f"fused fwd B{block} LPP{lpp} w{warps}", bench(lambda: et.encode_forward(nx(), tab.detach(), params, out=out, **kw)))
        gbuf = torch.zeros(L, T, F, device="cuda")
        add(f"fused bwd B{block} LPP{lpp} w{warps} (no zeroing)",
            bench(lambda: et.encode_backward(nx(), gout, params, (L, T, F), grad_tables=gbuf, **kw)))
    # where the backward's time goes: one level at a time (same strided grad reads as the full launch)
    per_level = []
    for l in range(L):
        gb = torch.zeros(1, T, F, device="cuda")
        ms = bench(lambda: et.encode_backward(nx(), gout[:, l * F:(l + 1) * F], params[l:l + 1], (1, T, F),
                                              grad_tables=gb), warmup=10, rep=30)
        msf = bench(lambda: et.encode_forward(nx(), tab.detach()[l:l + 1], params[l:l + 1],
                                              out=torch.empty(F, N, device="cuda").t()), warmup=10, rep=30)
        per_level.append((res[l], bool(params[l, 3]), msf, ms))
    print("  per level (R, dense, fwd ms, bwd ms): " + ", ".join(f"({r},{'D' if d else 'H'},{a:.3f},{b:.3f})"
                                                              for r, d, a, b in per_level), flush=True)
    rows.append({"name": "per_level", "levels": per_level})
    outc = torch.empty(L * F, N, device="cuda").t()
    add("fused fwd column-major out (default launch)", bench(lambda: et.encode_forward(nx(), tab.detach(), params, out=outc)))
    goutc = gout.t().contiguous().t()
    gbuf = torch.zeros(L, T, F, device="cuda")
    add("fused bwd column-major grad (default launch)", bench(lambda: et.encode_backward(nx(), goutc, params, (L, T, F), grad_tables=gbuf)))
    add("zero grad tables (torch.zeros)", bench(lambda: torch.zeros(L, T, F, device="cuda")))
    add("fused fwd+bwd via autograd (hash_encode path, column-major)", bench(fwdbwd(et.hash_encode_fused)))
    add("fused fwd+bwd via autograd (row-major)",
        bench(fwdbwd(lambda x, t, r: et.hash_encode_fused(x, t, r, column_major=False))))
    add("eager torch reference fwd+bwd", bench(fwdbwd(hash_encode_torch), warmup=5, rep=20))
    if do_compile:
        t0 = time.time()
        comp = torch.compile(hash_encode_torch)
        fwdbwd(comp)()
        torch.cuda.synchronize()
        add("torch.compile reference fwd+bwd", bench(fwdbwd(comp), warmup=5, rep=30), f"(compile {time.time() - t0:.0f}s)")

    # encode + 2-layer MLP (the anchors: 12 M/s eager, 88 M/s compiled)
    mlp = torch.nn.Sequential(torch.nn.Linear(L * F, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 16)).cuda()
    g16 = torch.randn(N, 16, device="cuda")

    def with_mlp(enc):
        def f():
            tab.grad = None
            mlp.zero_grad(set_to_none=True)
            mlp(enc(nx(), tab, res)).backward(g16)
        return f

    add("fused encode (row-major) + MLP fwd+bwd",
        bench(with_mlp(lambda x, t, r: et.hash_encode_fused(x, t, r, column_major=False))))
    add("fused encode (column-major) + MLP fwd+bwd",
        bench(with_mlp(lambda x, t, r: et.hash_encode_fused(x, t, r, column_major=True))))
    add("eager reference encode + MLP fwd+bwd", bench(with_mlp(hash_encode_torch), warmup=5, rep=20))
    return rows


def fp16_error(L=16, T=2**19, F=2, N=2**16) -> float:
    """Relative error of fp16-stored tables (fp32 math) vs fp32 tables: decides whether fp16 is 'safe'."""
    res = resolutions(L)
    x = torch.rand(N, 3, device="cuda")
    tab = torch.rand(L, T, F, device="cuda") * 2 - 1
    return rel(hash_encode_torch(x, tab.half().float(), res), hash_encode_torch(x, tab, res))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=2**20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    import triton

    p = torch.cuda.get_device_properties(0)
    info = {"device": p.name, "sms": p.multi_processor_count, "torch": torch.__version__, "triton": triton.__version__}
    print(info, flush=True)
    ceil = ceilings()
    print(f"ceilings: device copy {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s (read+write), bf16 matmul "
          f"{ceil['bf16_flops'] / 1e12:.0f} TFLOP/s", flush=True)

    print("correctness (relative L2 error vs torch reference; poisoned outputs)", flush=True)
    checks = []
    for cfg in [dict(N=2**20 + 13, L=16, T=2**19, F=2, seed=1, column_major=False),
                dict(N=2**20 + 13, L=16, T=2**19, F=2, seed=2, column_major=True),
                dict(N=100_003, L=8, T=2**14, F=4, seed=3, column_major=False),
                dict(N=4097, L=16, T=2**12, F=1, seed=4, column_major=False)]:
        c = check(**cfg)
        checks.append(c)
        print("  " + json.dumps(c), flush=True)
    ok = all(c["nan_out"] == 0 and c["nan_grad"] == 0 and c["fwd_rel_fp64"] < 1e-5 and c["bwd_rel_fp64"] < 1e-5
             and c["fwd_rel_fp32"] < 1e-5 and c["bwd_rel_fp32"] < 1e-5 and c["autograd_bwd_rel"] < 1e-5
             and c["fwd_repeat_equal"] for c in checks)
    print(f"correctness: {'PASS' if ok else 'FAIL'} (threshold 1e-5 relative)", flush=True)
    e16 = fp16_error()
    print(f"fp16 tables (fp32 math) vs fp32 tables: relative error {e16:.2e} -> {'within' if e16 < 1e-5 else 'outside'} 1e-5", flush=True)

    N, L, T, F = a.points, 16, 2**19, 2
    # floors: compulsory bytes (x, out, grad_out once; tables read once; grad zeroed + written once)
    fwd_bytes = N * (12 + 4 * L * F) + 4 * L * T * F
    bwd_bytes = N * (12 + 4 * L * F) + 2 * 4 * L * T * F
    floor_ms = (fwd_bytes + bwd_bytes) / ceil["copy_bytes_per_s"] * 1e3
    print(f"timing N={N} L={L} T=2^{int(math.log2(T))} F={F}; compulsory-bytes floor fwd+bwd {floor_ms:.3f} ms "
          f"({N / (floor_ms * 1e-3) / 1e6:.0f} M pts/s); corner accesses {N * L * 8 / 1e6:.0f} M gathers + "
          f"{N * L * 8 / 1e6:.0f} M atomics", flush=True)
    rows = timing(N, L, T, F, not a.no_compile)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"info": info, "ceilings": ceil, "checks": checks, "fp16_rel": e16, "floor_ms": floor_ms,
                       "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
