"""Test-wide settings: one torch thread (small networks; avoids oversubscribing the 2 CI cores)."""

import torch

torch.set_num_threads(1)
