"""Test-wide settings: one CPU thread (see README), and nothing reaches a real network."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)
