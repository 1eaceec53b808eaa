"""Perceptual image distance (LPIPS family) for metrics and the identity-preserving loss.

Default backend: the shift-tolerant LPIPS networks (ST-LPIPS, Ghildyal & Liu, ECCV 2022) whose trained
weights ship inside the PyPI package `stlpips-pytorch` (alex 9.9 MB, vgg 59 MB, BSD-2 licence, loads
offline). We only read its weight files: that package's Python modules import IPython, torchsummary and
torchvision at module level without declaring them, so the network is re-implemented here (AlexNet /
VGG16 trunk with blur-pooling, reflection padding, LPIPS linear heads) and the weights are loaded with
strict key checking. `tests/metrics/test_perceptual.py` checks the output against the package's own
implementation when its undeclared imports can be stubbed.

Optional backend "lpips": the standard `lpips` package (torchvision ImageNet trunks), for users who have
those backbone weights on their machine.
"""

from __future__ import annotations

import importlib.resources
import threading

import torch
import torch.nn.functional as F
from torch import nn

from pnr.errors import CheckpointError, PnrError

# Layer plans of the shift-tolerant trunks (stlpips variant "shift_tolerant"), one tuple per LPIPS tap.
# Each entry: (module index in the published state dict, kind, args). Indices follow the published
# weight files so that loading is a strict, key-for-key match.
#   conv: (c_in, c_out, kernel, padding)  blur: (channels,)  maxpool: (kernel,)  relu: ()
_ALEX = (
    ((0, "conv", (3, 64, 11, 2)), (1, "blur", (64,)), (2, "relu", ())),
    ((3, "maxpool", (3,)), (4, "blur", (64,)), (5, "conv", (64, 192, 5, 2)), (6, "relu", ())),
    ((7, "maxpool", (3,)), (8, "blur", (192,)), (9, "conv", (192, 384, 3, 1)), (10, "relu", ())),
    ((11, "conv", (384, 256, 3, 1)), (12, "relu", ())),
    ((13, "conv", (256, 256, 3, 1)), (14, "relu", ())),
)


def _vgg_plan() -> tuple:
    """VGG16 config "D" with each stride-2 max-pool replaced by max-pool(2, stride 1) + blur-pool."""
    cfg = [[64, 64], ["M", 128, 128], ["M", 256, 256, 256], ["M", 512, 512, 512], ["M", 512, 512, 512]]
    plan, idx, c_in = [], 0, 3
    for stage in cfg:
        layers = []
        for v in stage:
            if v == "M":
                layers += [(idx, "maxpool", (2,)), (idx + 1, "blur", (c_in,))]
                idx += 2
            else:
                layers += [(idx, "conv", (c_in, v, 3, 1)), (idx + 1, "relu", ())]
                idx, c_in = idx + 2, v
        plan.append(tuple(layers))
    return tuple(plan)


_PLANS = {"alex": _ALEX, "vgg": _vgg_plan()}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
MIN_SIZE = 32  # reflection padding in the deepest blur-pool needs at least this many pixels per side


class _BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad by 2, depthwise 3x3 binomial filter, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(a, a) / 16.0
        self.register_buffer("filt", k.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])


def _make_layer(kind: str, args: tuple) -> nn.Module:
    if kind == "conv":
        c_in, c_out, k, pad = args
        return nn.Conv2d(c_in, c_out, k, stride=1, padding=pad)
    if kind == "blur":
        return _BlurPool(args[0])
    if kind == "maxpool":
        return nn.MaxPool2d(args[0], stride=1)
    return nn.ReLU()


class _Trunk(nn.Module):
    def __init__(self, plan: tuple):
        super().__init__()
        for s, stage in enumerate(plan, start=1):
            seq = nn.Sequential()
            for idx, kind, args in stage:
                seq.add_module(str(idx), _make_layer(kind, args))
            setattr(self, f"slice{s}", seq)
        self.n = len(plan)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for s in range(1, self.n + 1):
            x = getattr(self, f"slice{s}")(x)
            feats.append(x)
        return feats


class STLPIPS(nn.Module):
    """LPIPS distance with a shift-tolerant trunk; weights from the `stlpips-pytorch` package."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in _PLANS:
            raise PnrError(f"unknown perceptual network {net!r}: choose one of {sorted(_PLANS)}")
        self.net_name = net
        self.net = _Trunk(_PLANS[net])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        # Input normalisation of LPIPS v0.1 (values replaced by the stored ones on load).
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def load_published(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict in the layout of stlpips' `*_shift_tolerant.pth` (strict)."""
        mapped = {}
        for k, v in state.items():
            if k.startswith("scaling_layer."):
                k = k.split(".", 1)[1]
            elif k.startswith("lin"):
                k = f"lins.{int(k[3])}.weight"
            mapped[k] = v
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"ST-LPIPS {self.net_name} weights do not match the network: "
                f"missing {missing[:4]}, unexpected {unexpected[:4]}"
            )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: [B,3,H,W] in [0,1] -> distance [B]."""
        n = a.shape[0]
        x = torch.cat([a, b], 0) * 2.0 - 1.0
        x = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        d = 0.0
        for f, lin in zip(self.net(x), self.lins):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            diff = (f[:n] - f[n:]).pow(2)
            d = d + lin(diff).mean((2, 3))
        return d[:, 0]


def stlpips_weights_path(net: str = "alex"):
    """Path of the weight file bundled with `stlpips-pytorch` (imports nothing but its empty __init__)."""
    try:
        root = importlib.resources.files("stlpips_pytorch")
    except ModuleNotFoundError as e:
        raise PnrError(
            "perceptual distance needs the package 'stlpips-pytorch' (pip install stlpips-pytorch)"
        ) from e
    path = root / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise CheckpointError(f"ST-LPIPS weights not found at {path}: reinstall stlpips-pytorch")
    return path


def load_stlpips(net: str = "alex", device: str | torch.device = "cpu") -> STLPIPS:
    """Build the shift-tolerant LPIPS network with its published weights, frozen, in eval mode."""
    model = STLPIPS(net)
    path = stlpips_weights_path(net)
    with path.open("rb") as fh:
        state = torch.load(fh, map_location="cpu", weights_only=True)
    model.load_published(state)
    model.requires_grad_(False).eval()
    return model.to(device)


class _LpipsAdapter(nn.Module):
    """The standard `lpips` package (torchvision ImageNet trunks), same call convention."""

    def __init__(self, net: str):
        super().__init__()
        try:
            import lpips  # optional: needs torchvision and its cached ImageNet weights
        except ImportError as e:
            raise PnrError("backend 'lpips' needs the packages 'lpips' and 'torchvision'") from e
        self.m = lpips.LPIPS(net=net, verbose=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.m(a, b, normalize=True).flatten()


_CACHE: dict[tuple[str, str, str], nn.Module] = {}
_LOCK = threading.Lock()


def get_perceptual_net(net: str = "alex", device: str | torch.device = "cpu", backend: str = "stlpips") -> nn.Module:
    """Cached frozen network per (backend, net, device)."""
    key = (backend, net, str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            if backend == "stlpips":
                _CACHE[key] = load_stlpips(net, device)
            elif backend == "lpips":
                _CACHE[key] = _LpipsAdapter(net).requires_grad_(False).eval().to(device)
            else:
                raise PnrError(f"unknown perceptual backend {backend!r}: use 'stlpips' or 'lpips'")
        return _CACHE[key]


def perceptual_distance(a: torch.Tensor, b: torch.Tensor, net: str = "alex", backend: str = "stlpips") -> torch.Tensor:
    """LPIPS-style distance between image batches a, b: [B,3,H,W] in [0,1] -> [B].

    Differentiable w.r.t. both inputs (the network is frozen). Identical images give exactly 0.
    Computed in float32 unless the caller runs it under autocast.
    """
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
        raise PnrError(f"perceptual_distance needs two [B,3,H,W] batches of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < MIN_SIZE:
        raise PnrError(f"perceptual_distance needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(a.shape[-2:])}")
    model = get_perceptual_net(net, a.device, backend)
    if not torch.is_autocast_enabled():
        a, b = a.float(), b.float()
    return model(a, b)
