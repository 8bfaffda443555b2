"""Architectures for ``ei-jax measure --arch`` (tests/app/test_cli_architecture.py): a
torchvision-style basic block with BatchNorm, and a pre-LN transformer MLP block with GELU."""

import torch


class BasicBlock(torch.nn.Module):
    """Stem conv-BN-relu, then conv-BN-relu-conv-BN + identity skip, relu; a linear read-out."""

    def __init__(self, c=2):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.BatchNorm2d(c),
                                        torch.nn.ReLU())
        self.conv1, self.bn1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
        self.conv2, self.bn2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
        self.fc = torch.nn.Linear(c * 5 * 5, 3)

    def forward(self, x):
        h = self.stem(x)
        out = torch.relu(self.bn1(self.conv1(h)))
        out = torch.relu(self.bn2(self.conv2(out)) + h)
        return self.fc(torch.flatten(out, 1))


class PreLNBlock(torch.nn.Module):
    """An embedding, h + W2 gelu(W1 LayerNorm(h)), a read-out."""

    def __init__(self, n_in=4, width=4):
        super().__init__()
        self.embed = torch.nn.Linear(n_in, width)
        self.norm = torch.nn.LayerNorm(width)
        self.up, self.down = torch.nn.Linear(width, 2 * width), torch.nn.Linear(2 * width, width)
        self.head = torch.nn.Linear(width, 2)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.down(torch.nn.functional.gelu(self.up(self.norm(h))))
        return self.head(h)


def make_resnet():
    return BasicBlock()


def make_mlp():
    return PreLNBlock()
