"""SpecAugment-style masking of training crops (Park et al. 2019, without time warping).

Each crop of a (B, 1, bands, frames) batch gets one band of ``freq_mask`` or fewer consecutive
filterbank bands and one stretch of ``time_mask`` or fewer consecutive frames set to 0 (the
features are mean-normalised per band, so 0 is the band's mean). Widths are drawn uniformly
from 0..width per crop, positions uniformly. Used on training crops only, never on validation
or test utterances.
"""
import torch


def mask_along(batch: torch.Tensor, width: int, dim: int, generator=None) -> torch.Tensor:
    """Boolean (B, 1, 1|bands, 1|frames) mask of one random stretch of <= width along ``dim``."""
    size, n = batch.shape[dim], batch.shape[0]
    widths = torch.randint(0, min(width, size) + 1, (n,), generator=generator)
    starts = (torch.rand(n, generator=generator) * (size - widths + 1)).long()
    pos = torch.arange(size)
    mask = (pos >= starts[:, None]) & (pos < (starts + widths)[:, None])  # (B, size)
    shape = [n, 1, 1, 1]
    shape[dim] = size
    return mask.reshape(shape).to(batch.device)


def spec_augment(batch: torch.Tensor, freq_mask: int = 8, time_mask: int = 20,
                 generator=None) -> torch.Tensor:
    """A masked copy of a (B, 1, bands, frames) batch: one frequency and one time mask per crop."""
    masked = batch.clone()
    if freq_mask > 0:
        masked.masked_fill_(mask_along(batch, freq_mask, 2, generator), 0.0)
    if time_mask > 0:
        masked.masked_fill_(mask_along(batch, time_mask, 3, generator), 0.0)
    return masked


if __name__ == '__main__':
    out = spec_augment(torch.ones(2, 1, 40, 100), 8, 20)
    print(tuple(out.shape), (out == 0).float().mean().item())
