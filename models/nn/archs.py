"""The built-in architectures (torch modules; the importer reads them through torch.export).

* ``digits-mlp``: Linear 64-128, ReLU, Linear 128-64, ReLU, Linear 64-10.
* ``digits-cnn``: Unflatten to 1x8x8, Conv 1->8 3x3 (pad 1), BatchNorm, ReLU,
  Conv 8->16 3x3 (stride 2, pad 1), BatchNorm, ReLU, Flatten, Linear 256-10.
* ``digits-resnet``: a small residual CNN with pooling for 8x8 digits: stem Conv 1->16
  3x3 + BN + ReLU; a basic block (two 3x3 convs with BN, identity shortcut, add, ReLU);
  MaxPool 2x2; a basic block 16->32 with a 1x1-conv + BN projection shortcut; adaptive
  average pool to 1x1; Linear 32-10.  Every integer op of a ResNet in 4k parameters.
* ``digits-vit``: a small pre-norm vision transformer for 8x8 digits: 2x2 patches (a
  stride-2 2x2 Conv 1->32, 16 tokens), a learned positional embedding added, 2 encoder
  blocks (LayerNorm, 2-head self-attention with separate Q/K/V projections and
  ``scaled_dot_product_attention``, residual add; LayerNorm, MLP 32-64-32 with GELU,
  residual add), mean pooling over the tokens, LayerNorm, Linear 32-10.
* ``resnet20``: the CIFAR ResNet-20 of He et al. 2016 (section 4.2): a 3x3 conv with 16
  channels, three stages of three basic blocks with 16, 32 and 64 channels (stride 2 at
  the first block of stages 2 and 3), global average pooling and a fully connected layer;
  6n + 2 = 20 weighted layers for n = 3.  Where the shape changes, the shortcut is a 1x1
  convolution with BN (the paper's option B) rather than option A's zero-padded identity,
  whose channel padding and strided slicing no periphery unit computes; this adds two
  1x1 convolutions (0.27 M -> 0.28 M parameters).

The digits networks take flat (B, 64) inputs in [0, 1]; ``resnet20`` takes (B, C, H, W)
images.  Every network returns (B, classes) logits.
"""

from __future__ import annotations

import math

from aimcflow.models.errors import UserInputError

ARCHS = ("digits-mlp", "digits-cnn", "digits-resnet", "digits-vit", "resnet20")
VIT = {"patch": 2, "width": 32, "depth": 2, "heads": 2, "mlp": 64}


def _square_side(arch: str, input_shape: tuple[int, ...]) -> int:
    n = math.prod(input_shape)
    side = int(round(n**0.5))
    if len(input_shape) != 1 or side * side != n:
        raise UserInputError(
            f"{arch} needs flat square images (features = side**2); the data has "
            f"per-image shape {tuple(input_shape)}"
        )
    return side


def _block(in_ch: int, out_ch: int, stride: int):
    """A basic block: conv-BN-ReLU-conv-BN plus shortcut, add, ReLU."""
    # lazy: torch (~2 s)
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_ch)
            self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_ch)
            self.shortcut = (
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
                )
                if stride != 1 or in_ch != out_ch
                else nn.Identity()
            )

        def forward(self, x):
            y = self.bn1(self.conv1(x)).relu()
            y = self.bn2(self.conv2(y))
            return (y + self.shortcut(x)).relu()

    return BasicBlock()


def _resnet(in_shape: tuple[int, ...], stem: int, stages, n_classes: int, pool_after_stem: bool):
    # lazy: torch (~2 s)
    from torch import nn

    layers: list = []
    if len(in_shape) == 1:
        side = int(round(in_shape[0] ** 0.5))
        layers.append(nn.Unflatten(1, (1, side, side)))
        in_ch = 1
    else:
        in_ch = in_shape[0]
    layers += [nn.Conv2d(in_ch, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU()]
    ch = stem
    for k, (out_ch, blocks, stride) in enumerate(stages):
        for b in range(blocks):
            layers.append(_block(ch, out_ch, stride if b == 0 else 1))
            ch = out_ch
        if k == 0 and pool_after_stem:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, n_classes)]
    return nn.Sequential(*layers)


def _vit(side: int, n_classes: int, patch: int, width: int, depth: int, heads: int, mlp: int):
    """A pre-norm ViT over ``patch`` x ``patch`` patches of a 1 x side x side image."""
    # lazy: torch (~2 s)
    import torch
    from torch import nn
    from torch.nn import functional as F

    tokens = (side // patch) ** 2
    dh = width // heads

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
            self.out = nn.Linear(width, width)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = (f(x).view(b, n, heads, dh).transpose(1, 2) for f in (self.q, self.k, self.v))
            y = F.scaled_dot_product_attention(q, k, v)
            return self.out(y.transpose(1, 2).reshape(b, n, width))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(width), Attention()
            self.ln2 = nn.LayerNorm(width)
            self.fc1, self.fc2 = nn.Linear(width, mlp), nn.Linear(mlp, width)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unflatten = nn.Unflatten(1, (1, side, side))
            self.patch = nn.Conv2d(1, width, patch, stride=patch)
            self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
            self.blocks = nn.Sequential(*(Block() for _ in range(depth)))
            self.ln = nn.LayerNorm(width)
            self.head = nn.Linear(width, n_classes)

        def forward(self, x):
            t = self.patch(self.unflatten(x)).flatten(2).transpose(1, 2) + self.pos
            return self.head(self.ln(self.blocks(t).mean(dim=1)))

    return ViT()


def build(arch: str, input_shape: tuple[int, ...] = (64,), n_classes: int = 10):
    """An untrained model of architecture ``arch`` (a name of :data:`ARCHS`) for images of
    per-image shape ``input_shape``."""
    # lazy: torch (~2 s)
    from torch import nn

    input_shape = tuple(int(s) for s in input_shape)
    if arch == "digits-mlp":
        flat = [nn.Flatten()] if len(input_shape) > 1 else []  # keeps 64-input keys 0..4
        return nn.Sequential(
            *flat,
            nn.Linear(math.prod(input_shape), 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )
    if arch == "digits-cnn":
        side = _square_side(arch, input_shape)
        out_side = (side + 1) // 2  # stride-2 3x3 conv with padding 1
        return nn.Sequential(
            nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * out_side * out_side, n_classes),
        )
    if arch == "digits-resnet":
        side = _square_side(arch, input_shape)
        if side < 2:
            raise UserInputError(f"digits-resnet needs images of at least 2x2; got {side}x{side}")
        return _resnet(input_shape, 16, [(16, 1, 1), (32, 1, 1)], n_classes, pool_after_stem=True)
    if arch == "digits-vit":
        side = _square_side(arch, input_shape)
        if side % VIT["patch"]:
            raise UserInputError(
                f"digits-vit needs an image side divisible by {VIT['patch']}; got {side}x{side}"
            )
        return _vit(side, n_classes, **VIT)
    if arch == "resnet20":
        if len(input_shape) != 3 or min(input_shape[1:]) < 4:
            raise UserInputError(
                f"resnet20 needs (channels, height, width) images of at least 4x4; the data "
                f"has per-image shape {tuple(input_shape)}"
            )
        return _resnet(input_shape, 16, [(16, 3, 1), (32, 3, 2), (64, 3, 2)], n_classes, False)
    raise UserInputError(
        f"unknown model '{arch}'; allowed: {', '.join(ARCHS)} or a path to a model file"
    )
