"""The outside-project view: code that knows nothing of gdas (a plain SGD loop on model(x), a
detection-style head on a features_only backbone) works with `create_model` networks, timm's
conventions hold by behaviour (timm is not imported), and README's "Use a cell in your own project"
block runs as written."""

import re
from pathlib import Path

import torch
from torch import nn

import gdas_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _digits(n=64):
    from gdas_cli.data import load_images

    train = load_images("digits").train
    return train.images[:n].float() / 255, train.labels[:n]


def _normalise(images, cfg):
    return (images - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)


def test_a_plain_pytorch_loop_trains_a_zoo_model():
    model = gdas_cli.create_model("gdas_frc_digits", pretrained=True, num_classes=4)
    images, labels = _digits()
    keep = labels < 4
    x, y = _normalise(images[keep], model.pretrained_cfg), labels[keep]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    model.train()
    for _ in range(8):  # what any training script does: model(x), cross-entropy, SGD
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.9


def test_timm_conventions_by_behaviour():
    model = gdas_cli.create_model("gdas_frc_digits", pretrained=True)
    assert model.training  # create_model returns train mode, as timm's does
    x = torch.randn(2, 3, 32, 32)
    for mode in (True, False):
        out = model.train(mode)(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, model.num_classes)  # logits only, both modes
    model.eval()
    features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[1] == model.num_features
    torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear) and classifier.out_features == model.num_classes
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)  # no head: pooled features
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7
    cfg = model.pretrained_cfg
    assert {"input_size", "mean", "std", "interpolation", "crop_pct", "num_classes", "first_conv", "classifier"} <= set(cfg)
    assert cfg["num_classes"] == 10  # still describes the pretrained weights, as in timm
    assert dict(model.named_modules())[cfg["classifier"]] is model.get_classifier()
    assert isinstance(dict(model.named_modules())[cfg["first_conv"]], nn.Conv2d)


class TinyDetectionHead(nn.Module):
    """Per level: 4 box offsets and a score per class at every position (an FCOS-like toy head)."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.heads = nn.ModuleList(nn.Conv2d(c, 4 + num_classes, 3, padding=1) for c in channels)

    def forward(self, features):
        return [head(f) for head, f in zip(self.heads, features, strict=True)]


def test_a_features_only_backbone_feeds_a_detection_head():
    genotype = gdas_cli.load_genotype("gdas_frc")
    backbone = gdas_cli.build_network(
        genotype, gdas_cli.NetworkArgs(C=8, layers=8, num_classes=10), features_only=True, out_indices=(1, 2, 3)
    )
    missing, unexpected = backbone.load_state_dict(
        gdas_cli.create_model("gdas_frc_digits", pretrained=True).state_dict(), strict=False
    )
    assert not missing and unexpected  # the classifier's weights are the only ones left over
    head = TinyDetectionHead(backbone.feature_info.channels(), num_classes=2)
    x = torch.randn(2, 3, 32, 32)
    outputs = head(backbone(x))
    for out, channels, reduction in zip(outputs, backbone.feature_info.channels(), backbone.feature_info.reduction(),
                                        strict=True):
        assert out.shape == (2, 6, 32 // reduction, 32 // reduction) and channels > 0
    loss = sum(o.pow(2).mean() for o in outputs)
    loss.backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


def test_readme_use_a_cell_block_runs(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use a cell in your own project", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace = {}
    exec(compile(code, "README.md: Use a cell in your own project", "exec"), namespace)
    assert namespace["predictions"].shape == (16,) and len(namespace["features"]) == 3
    assert namespace["out"].shape == (2, namespace["cell"].multiplier * 8, 8, 8)
    assert "[1, 2, 4]" in capsys.readouterr().out


def test_create_model_features_only_keeps_the_pretrained_weights():
    import gdas_cli

    model = gdas_cli.create_model("gdas_frc_digits", pretrained=True).eval()
    backbone = gdas_cli.create_model("gdas_frc_digits", pretrained=True, features_only=True, out_indices=(1, 3)).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = backbone(x)
        last = model.forward_features(x)
    assert [m.shape[1] for m in maps] == backbone.feature_info.channels()
    assert torch.equal(maps[-1], last)  # the deepest level is the classifier's feature map, same weights
    assert backbone.pretrained_cfg == model.pretrained_cfg
