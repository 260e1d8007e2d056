"""Small nn.Modules for the tests, imported by dotted path exactly like a user's own model."""

import torch
from torch import nn


class TinyConv(nn.Module):
    """A user's own model: conv stack over [B, C, T]."""

    def __init__(self, channels: int = 8, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(channels, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, channels, 1))

    def forward(self, x):
        return self.net(x)


class TorchMHA(nn.Module):
    """nn.MultiheadAttention: the legacy exporter bakes the export-time length into its reshapes."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class BesselOp(nn.Module):
    """torch.special.bessel_j0 has no ONNX export: the exporter must fail, naming the op."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1))

    def forward(self, x):
        return torch.special.bessel_j0(x * self.scale)


class Gain(nn.Module):
    """A per-channel gain and offset: elementwise only, so its INT8 variant has nothing to quantize and fails."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels)[None, :, None])
        self.offset = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x):
        return x * self.gain + self.offset


class Overflow(nn.Module):
    """Squares activations scaled into the hundreds and divides by 1e6: the square and the divisor are beyond
    fp16's range (max 65504), the result is not."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        h = self.proj(x) * 1000.0
        return (h * h) / 1e6


class OutlierChain(nn.Module):
    """Four blocks; inside block `c` one conv scales a channel by 1000 and the next scales it back, so the
    tensor between them has one huge channel: 8-bit activations there lose every other channel. Only
    block `c` needs float."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.a = nn.Conv1d(channels, 16, 3, padding=1)
        self.b = nn.Conv1d(16, 16, 1)
        self.c = nn.Sequential(nn.Conv1d(16, 16, 1), nn.Conv1d(16, 16, 1))
        self.d = nn.Conv1d(16, channels, 1)
        with torch.no_grad():
            self.c[0].weight[0] *= 1000.0
            self.c[0].bias[0] *= 1000.0
            self.c[1].weight[:, 0] /= 1000.0

    def forward(self, x):
        return self.d(self.c(torch.relu(self.b(torch.relu(self.a(x))))))


class TinyDenoiser(nn.Module):
    """A log-mel denoiser [B, n_mels, T] -> [B, n_mels, T]: a residual conv stack (the second chain's first role)."""

    def __init__(self, n_mels: int = 80, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(n_mels, hidden, 5, padding=2), nn.GELU(), nn.Conv1d(hidden, n_mels, 1))

    def forward(self, mel):
        return mel + 0.1 * self.net(mel)


class FixedFrames(nn.Module):
    """A frame classifier over [n, 1024] (a pitch tracker's shape): only the batch of frames is dynamic, the
    1024 samples of a frame are fixed."""

    def __init__(self, width: int = 1024, hidden: int = 64, classes: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)

    def forward(self, frames):
        return self.head(self.net(frames))


class FixedBins(nn.Module):
    """A conv net over [n, 1, 219] (a CQT frame's shape): channels and bins fixed, only the batch dynamic."""

    def __init__(self, bins: int = 219, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, hidden, 5, padding=2), nn.ReLU(), nn.Conv1d(hidden, hidden, 3, padding=1))
        self.head = nn.Conv1d(hidden, 4, 1)

    def forward(self, cqt):
        return self.head(torch.relu(self.net(cqt)))
