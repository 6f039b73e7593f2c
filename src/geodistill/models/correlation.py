"""Sliding-window sums of G2SWeakly's correlation: every window of a map against a kernel,
summed over channels (a valid cross-correlation), by direct convolution or by FFT.

    out = window_sums(x, k)                      # x (B, C, H, W), k (B, C, h, w) -> (B, H-h+1, W-w+1)
    out = window_sums(x, k, all_pairs=True)      # -> (B_x, B_k, H-h+1, W-w+1), every x against every k

Both routes compute out[i, j, u, v] = sum over (c, y, z) of x[i, c, u + y, v + z] k[j, c, y, z].
`direct` is F.conv2d with k as the kernel: exact float32 arithmetic, but its cost grows with
the kernel's area, and on CPU the backward of a convolution with a very large kernel (G2SWeakly's
BEV crop: 102 x 102 cells at VIGOR size) runs 10-13x slower than its forward. `fft` multiplies
the maps' spectra: its cost barely depends on the kernel, and it runs in float64, whose error
(~1e-15 of the maps' norms) lies far below the float32 rounding of its result. No wrap-around:
a window at u < H - h + 1 ends at u + h - 1 < H, inside the transform's length H.

window_sums takes the FFT for kernels of at least FFT_MIN_KERNEL_CELLS cells, by measurement
(benchmarks/correlation_speed.py, forward + backward, batches 4-32): at 26 x 26 cells and above
the FFT is 14-60x faster (VIGOR's levels; configs/synthetic-large.yaml's finest), at 6 x 6 and
below the convolution is 2-7x faster for all pairs. At 12 x 12 (the synthetic default's finest
level) the FFT is already ~1.2x faster for all pairs and 5-12x for the paired sums, a few ms a
step at those sizes: the threshold stays above it, so that the default's and the smoke preset's
numbers remain those of the plain convolution, bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FFT_MIN_KERNEL_CELLS = 400   # 20 x 20: above the synthetic default's largest BEV crop (12 x 12), below VIGOR's smallest (26 x 26)


def window_sums(x: torch.Tensor, k: torch.Tensor, all_pairs: bool = False) -> torch.Tensor:
    """x (B_x, C, H, W), k (B_k, C, h, w) -> (B_x, B_k, P, Q) with all_pairs, else (B, P, Q)
    pairing x[i] with k[i] (B_x = B_k = B); P = H - h + 1, Q = W - w + 1."""
    route = fft if takes_fft(k.shape) else direct
    return route(x, k, all_pairs)


def direct(x: torch.Tensor, k: torch.Tensor, all_pairs: bool = False) -> torch.Tensor:
    """window_sums by F.conv2d with k as the kernel (a grouped convolution for the paired sums)."""
    if all_pairs:
        return F.conv2d(x, k)                                              # (B_x, B_k, P, Q)
    B, C, H, W = x.shape
    return F.conv2d(x.reshape(1, B * C, H, W), k, groups=B)[0]             # (B, P, Q)


def fft(x: torch.Tensor, k: torch.Tensor, all_pairs: bool = False) -> torch.Tensor:
    """window_sums as products of float64 spectra (real FFTs of length H x W); returns x's dtype."""
    return _FFTWindowSums.apply(x, k, all_pairs)


class _FFTWindowSums(torch.autograd.Function):
    """The window sums and both gradients, each by one spectral product: with X, K, G the real
    FFTs (length H x W, zero-padded) of x, k and the output's gradient g,
        out = irfft(sum_c X conj(K))[:P, :Q]           (correlation of x with k)
        dx  = irfft(sum_j G K)                         (g convolved with k: fills H x W exactly)
        dk  = irfft(sum_i conj(G) X)[:h, :w]           (correlation of x with g)
    none of which wraps around. For all pairs the sums are one small matrix product per
    frequency, (B_x, C) x (C, B_k), in a frequency-major layout; paired, they are elementwise.
    (Autograd through torch.fft would pad every half spectrum to a full complex one, ~10x slower.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: torch.Tensor, all_pairs: bool) -> torch.Tensor:
        H, W = x.shape[-2:]
        h, w = k.shape[-2:]
        X = torch.fft.rfft2(x.double())                                    # (B_x, C, H, W//2+1)
        K = torch.fft.rfft2(k.double(), s=(H, W))                          # (B_k, C, H, W//2+1)
        if all_pairs:
            X, K = frequency_major(X), frequency_major(K)                  # (F, B_x, C), (F, B_k, C)
            spectrum = from_frequency_major(X @ K.mH, H)                   # (B_x, B_k, H, W//2+1)
        else:
            spectrum = (X * K.conj()).sum(1)                               # (B, H, W//2+1)
        ctx.save_for_backward(X, K)
        ctx.sizes, ctx.all_pairs, ctx.dtypes = (H, W, h, w), all_pairs, (x.dtype, k.dtype)
        return torch.fft.irfft2(spectrum, s=(H, W))[..., :H - h + 1, :W - w + 1].to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        X, K = ctx.saved_tensors
        H, W, h, w = ctx.sizes
        G = torch.fft.rfft2(grad.double(), s=(H, W))                       # (B_x, B_k, H, W//2+1) or (B, H, W//2+1)
        if ctx.all_pairs:
            G = frequency_major(G)                                         # (F, B_x, B_k)
            GK = lambda: from_frequency_major(G @ K, H)                    # (B_x, C, H, W//2+1)
            GX = lambda: from_frequency_major(G.mH @ X, H)                 # (B_k, C, H, W//2+1)
        else:
            GK = lambda: G[:, None] * K                                    # (B, C, H, W//2+1)
            GX = lambda: G[:, None].conj() * X
        dx = torch.fft.irfft2(GK(), s=(H, W)).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        dk = torch.fft.irfft2(GX(), s=(H, W))[..., :h, :w].to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return dx, dk, None


def frequency_major(spectra: torch.Tensor) -> torch.Tensor:
    """(m, n, H, W') -> (H W', m, n), contiguous: one (m, n) matrix per frequency."""
    return spectra.permute(2, 3, 0, 1).flatten(0, 1).contiguous()


def from_frequency_major(matrices: torch.Tensor, H: int) -> torch.Tensor:
    """(H W', m, n) -> (m, n, H, W'), the inverse of frequency_major (a view)."""
    return matrices.unflatten(0, (H, -1)).permute(2, 3, 0, 1)


def takes_fft(kernel_shape: torch.Size) -> bool:
    """Whether window_sums runs by FFT for a kernel of this shape (B, C, h, w)."""
    return kernel_shape[-2] * kernel_shape[-1] >= FFT_MIN_KERNEL_CELLS
