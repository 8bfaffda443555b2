"""A linen architecture for ``ei-jax measure --arch`` (tests/app/test_cli_architecture.py)."""

import flax.linen as nn


class CNN(nn.Module):
    """conv-BatchNorm-relu, 2x2 average pooling, a dense read-out."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(2, (3, 3))(x)))
        h = nn.avg_pool(h, (2, 2), (2, 2))
        return nn.Dense(3)(h.reshape(h.shape[0], -1))


def make_cnn():
    return CNN()
