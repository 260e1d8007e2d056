"""The embedded singing-voice-conversion model, with the reference SVC dimensions.

Five ordinary nn.Modules; the workflow knows them only through config.yaml (class path,
kwargs, inputs), exactly like a user's own checkpoint. Defaults: latent 192, mel 80,
content 256, pitch 192 (f0 80-1000 Hz, 256 bins), speaker 256, flow conditioning
704 = 256 + 192 + 256, 4 coupling flows, HiFi-GAN V1 at 22050 Hz, upsampling 8,8,2,2.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm


class _SelfAttention(nn.Module):
    """Hand-written multi-head attention: reshapes use the runtime length, so no shape is baked in."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads, self.head_dim = heads, channels // heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, C]
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        y = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, H, T, D]
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class _TransformerLayer(nn.Module):
    def __init__(self, channels: int, heads: int, ffn: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.attn = _SelfAttention(channels, heads)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn), nn.GELU(), nn.Linear(ffn, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class ContentEncoder(nn.Module):
    """Mel frames [B, n_mels, T] -> content features [B, out_channels, T]."""

    def __init__(
        self,
        n_mels: int = 80,
        channels: int = 256,
        out_channels: int = 256,
        layers: int = 4,
        heads: int = 4,
        ffn: int = 1024,
        kernel: int = 5,
    ):
        super().__init__()
        self.front = nn.Sequential(
            nn.Conv1d(n_mels, channels, kernel, padding=kernel // 2),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
            nn.GELU(),
        )
        self.layers = nn.ModuleList(_TransformerLayer(channels, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, out_channels)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.front(mel).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.proj(self.norm(x)).transpose(1, 2)


class PitchEncoder(nn.Module):
    """f0 in Hz [B, T] + voiced mask [B, T] -> pitch features [B, dim, T].

    A quantized log-f0 bin embedding (bin 0 = unvoiced) blended, through a learned gate,
    with a continuous projection of normalized log-f0.
    """

    def __init__(self, dim: int = 192, bins: int = 256, f0_min: float = 80.0, f0_max: float = 1000.0):
        super().__init__()
        self.bins = bins
        self.log_min, self.log_max = math.log(f0_min), math.log(f0_max)
        self.f0_min, self.f0_max = f0_min, f0_max
        self.embedding = nn.Embedding(bins, dim)
        self.continuous = nn.Linear(1, dim)
        self.gate = nn.Parameter(torch.zeros(dim))
        self.smooth = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        log_f0 = torch.log(f0.clamp(self.f0_min, self.f0_max)) - self.log_min
        # The bin index takes its own path from log_f0 (not via `norm`), so an fp16 graph
        # that keeps these ops in fp32 never rounds the quantizer's input through fp16.
        idx = (torch.floor(log_f0 * ((self.bins - 2) / (self.log_max - self.log_min)) + 0.5) + 1.0) * voiced
        norm = log_f0 / (self.log_max - self.log_min)
        quantized = self.embedding(idx.long())  # [B, T, dim]
        continuous = self.continuous(norm.unsqueeze(-1)) * voiced.unsqueeze(-1)
        g = torch.sigmoid(self.gate)
        return self.smooth((g * quantized + (1.0 - g) * continuous).transpose(1, 2))


class _WN(nn.Module):
    """WaveNet-style gated residual stack with frame-level conditioning (VITS)."""

    def __init__(self, hidden: int, kernel: int, layers: int, cond_channels: int, dilation_rate: int = 1):
        super().__init__()
        self.hidden, self.n_layers = hidden, layers
        self.cond = nn.Conv1d(cond_channels, 2 * hidden * layers, 1)
        self.in_layers, self.res_skip = nn.ModuleList(), nn.ModuleList()
        for i in range(layers):
            d = dilation_rate**i
            self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel, dilation=d, padding=(kernel * d - d) // 2))
            self.res_skip.append(nn.Conv1d(hidden, 2 * hidden if i < layers - 1 else hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.hidden
        out = torch.zeros_like(x)
        g = self.cond(cond)
        for i in range(self.n_layers):
            z = self.in_layers[i](x) + g[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(z[:, :h]) * torch.sigmoid(z[:, h:])
            rs = self.res_skip[i](acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * mask


class _Coupling(nn.Module):
    """Mean-only affine coupling: exactly invertible, so the decoder runs backwards."""

    def __init__(self, channels: int, hidden: int, kernel: int, layers: int, cond_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = _WN(hidden, kernel, layers, cond_channels)
        self.post = nn.Conv1d(hidden, channels - self.half, 1)

    def _shift(self, x0, mask, cond):
        return self.post(self.enc(self.pre(x0) * mask, mask, cond)) * mask

    def forward(self, x, mask, cond):
        x0, x1 = x[:, : self.half], x[:, self.half :]
        return torch.cat([x0, self._shift(x0, mask, cond) + x1 * mask], dim=1)

    def inverse(self, x, mask, cond):
        x0, x1 = x[:, : self.half], x[:, self.half :]
        return torch.cat([x0, (x1 - self._shift(x0, mask, cond)) * mask], dim=1)


class FlowDecoder(nn.Module):
    """VITS residual coupling flows. Training runs forward; conversion runs `inverse`:
    z [B, C, T], mask [B, 1, T], conditioning [B, cond_channels, T] -> latent [B, C, T]."""

    def __init__(
        self,
        channels: int = 192,
        hidden: int = 192,
        kernel: int = 5,
        layers: int = 4,
        flows: int = 4,
        cond_channels: int = 704,
    ):
        super().__init__()
        self.flows = nn.ModuleList(_Coupling(channels, hidden, kernel, layers, cond_channels) for _ in range(flows))

    def forward(self, x, mask, cond):
        for flow in self.flows:
            x = torch.flip(flow(x, mask, cond), [1])
        return x

    def inverse(self, z, mask, cond):
        for flow in reversed(self.flows):
            z = flow.inverse(torch.flip(z, [1]), mask, cond)
        return z


# HiFi-GAN's log-mel of speech (natural log of a magnitude mel, floor log(1e-5) = -11.5): the demo's two
# calibration files average -5.5 with a spread of 1.6 per mel bin.
SPEECH_LOG_MEL_MEAN, SPEECH_LOG_MEL_SPREAD = -5.5, 1.6


class MelProjection(nn.Module):
    """Latent [B, latent, T] -> mel [B, n_mels, T] through a 1x1 convolution.

    Initialised to emit speech's log-mel range from a unit-spread latent, as a trained projection does: with
    PyTorch's default init a seeded projection emits values near 0 (every bin ~245x louder than speech), which
    drive the vocoder's tanh to +-1 and feed it mels no calibration set of real speech covers.
    """

    def __init__(self, latent: int = 192, n_mels: int = 80):
        super().__init__()
        self.proj = nn.Conv1d(latent, n_mels, 1)
        nn.init.normal_(self.proj.weight, std=SPEECH_LOG_MEL_SPREAD / math.sqrt(latent))
        nn.init.constant_(self.proj.bias, SPEECH_LOG_MEL_MEAN)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.proj(latent)


class _ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: leaky ReLU, dilated conv, leaky ReLU, conv, residual; three times."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=kernel // 2)) for _ in dilations
        )

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class HiFiGAN(nn.Module):
    """HiFi-GAN V1 generator: mel [B, n_mels, T] -> audio [B, 1, T * prod(upsample_rates)].

    The module layout is the official one (conv_pre, ups.N, a flat resblocks.0..11 with three
    per upsampling stage, conv_post), so pretrained generators load as they are; their legacy
    weight-norm keys (weight_g / weight_v) are mapped on load and folded before export.
    """

    def __init__(
        self,
        n_mels: int = 80,
        channels: int = 512,
        upsample_rates=(8, 8, 2, 2),
        upsample_kernels=(16, 16, 4, 4),
        resblock_kernels=(3, 7, 11),
        resblock_dilations=(1, 3, 5),
    ):
        super().__init__()
        self.kernels = len(resblock_kernels)
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, channels, 7, padding=3))
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        ch = channels
        for u, k in zip(upsample_rates, upsample_kernels, strict=True):
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2)))
            ch //= 2
            self.resblocks.extend(_ResBlock(ch, rk, tuple(resblock_dilations)) for rk in resblock_kernels)
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.kernels : (i + 1) * self.kernels]
            x = sum(block(x) for block in blocks) / self.kernels
        # The original uses leaky_relu's default slope (0.01) here, not 0.1.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))
