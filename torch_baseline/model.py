"""The article's modules, as in its gan_mnist.py: fully connected, Sigmoid on D's output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 128, features: Sequence[int] = (256, 512, 1024), out_dim: int = 784):
        super().__init__()
        layers, width = [], latent_dim
        for f in features:
            layers += [nn.Linear(width, f), nn.LeakyReLU(0.2)]
            width = f
        layers += [nn.Linear(width, out_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, in_dim: int = 784, features: Sequence[int] = (256, 128), dropout: float = 0.3):
        super().__init__()
        layers, width = [], in_dim
        for f in features:
            layers += [nn.Linear(width, f), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = f
        layers += [nn.Linear(width, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
