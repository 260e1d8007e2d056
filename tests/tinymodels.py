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
