"""Test-wide settings: one CPU thread (see README), and nothing reaches a real network."""

import atexit
import os
import shutil
import socket
import tempfile

# --- The Hub: tests talk to their own loopback Hub-protocol server (tests/hub_server.py) with the
# real huggingface_hub client. The client reads HF_ENDPOINT and HF_HOME when it is first imported,
# so they are fixed here, before any test module imports it; the server starts on HUB_PORT in the
# session fixture `loopback_hub`. A user's token, cache or offline switch must not leak in.
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
             "HF_OIDC_RESOURCE", "HF_TOKEN_PATH", "HF_XET_CACHE", "GDAS_ZOO_PATH"):
    os.environ.pop(_var, None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
_HF_HOME = tempfile.mkdtemp(prefix="gdas-test-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, True)
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def loopback_hub():
    """The loopback Hub on HUB_PORT (HF_ENDPOINT points there), for the whole session."""
    from hub_server import LoopbackHub

    with LoopbackHub(HUB_PORT) as hub:
        yield hub


@pytest.fixture
def hub_faults(loopback_hub):
    """add(Fault(kind, method, path, ...)) spoils matching transfers of the loopback Hub for this test only."""
    yield loopback_hub.state.add_fault
    loopback_hub.state.clear_faults()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """make(genotype="gdas_frc", seed=0) -> a model.safetensors (weights.py format) of a tiny real network.

    C=8, 5 cells, auxiliary head, 10 classes, trained for a few SGD steps on random 32x32 images,
    so its weights (BN statistics included) are not the initial ones. Cached per (genotype, seed).
    """
    made = {}

    def make(genotype: str = "gdas_frc", seed: int = 0):
        if (genotype, seed) not in made:
            from gdas_cli import NetworkArgs, build_network, load_genotype
            from gdas_cli.weights import save_network

            torch.manual_seed(seed)
            model = build_network(load_genotype(genotype), NetworkArgs(net="cifar", C=8, layers=5, num_classes=10))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            for _ in range(3):
                images, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
                logits, aux = model.forward_train(images)
                loss = torch.nn.functional.cross_entropy(logits, labels) + 0.4 * torch.nn.functional.cross_entropy(aux, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            path = tmp_path_factory.mktemp(f"tiny-{genotype}-{seed}") / "model.safetensors"
            save_network(model, path)
            made[genotype, seed] = path
        return made[genotype, seed]

    return make
