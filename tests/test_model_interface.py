"""timm's model interface on every CNN network: forward gives logits, the head and feature methods,
reset_classifier, features_only backbones, pretrained_cfg and drop_path_rate, checked by behaviour."""

import pytest
import torch
from torch import nn

from gdas_cli import GdasError, NetworkArgs, build_network, load_genotype
from gdas_cli.data import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from gdas_cli.models import CellFeatures, CellNetwork, TrainForward, pretrained_cfg_for

# (layout, input size, expected reductions of the feature levels: stem, then the deepest cell per stride)
LAYOUTS = [("cifar", 32, [1, 1, 2, 4]), ("imagenet", 64, [4, 8, 16, 32])]
GENOTYPES = ["gdas", "gdas_frc"]


def _net(net="cifar", genotype="gdas", layers=5, **options):
    torch.manual_seed(0)
    return build_network(load_genotype(genotype), NetworkArgs(net=net, C=8, layers=layers, num_classes=6), **options)


@pytest.mark.parametrize("net, size, _", LAYOUTS)
def test_forward_returns_logits_in_train_and_eval(net, size, _):
    model = _net(net)
    assert model.aux_head is not None  # the head exists, and forward still leaves it out
    x = torch.randn(2, 3, size, size)
    for training in (True, False):
        out = model.train(training)(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, model.num_classes) == (2, 6)


@pytest.mark.parametrize("genotype", GENOTYPES)
@pytest.mark.parametrize("net, size, reductions", LAYOUTS)
def test_forward_is_head_of_features(net, size, reductions, genotype):
    model = _net(net, genotype).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(x)
        side = size // reductions[-1]
        assert features.shape == (2, model.num_features, side, side)
        torch.testing.assert_close(model(x), model.forward_head(features))
        pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(model.get_classifier()(pooled), model(x))


def test_forward_train_adds_the_auxiliary_logits():
    model = _net().train()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    logits, aux = model.forward_train(x)
    assert logits.shape == aux.shape == (2, 6)
    torch.manual_seed(1)
    wrapped_logits, wrapped_aux = TrainForward(model)(x)  # what DDP and torch.compile call in training
    torch.testing.assert_close((wrapped_logits, wrapped_aux), (logits, aux))
    torch.testing.assert_close(model(x), logits)  # train-mode BN: same batch, same logits
    without = build_network(load_genotype("gdas"), NetworkArgs(C=8, layers=5, num_classes=6, auxiliary=False))
    assert without.forward_train(x)[1] is None


def test_reset_classifier_changes_the_head_and_keeps_the_rest():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_classifier(3)
    assert model.num_classes == model.args.num_classes == 3 and model.args.auxiliary
    assert model.get_classifier() is model.classifier and model.classifier.out_features == 3
    after = model.state_dict()
    heads = {k for k in before if k.startswith(("classifier.", f"aux_head.{len(model.aux_head) - 1}."))}
    assert heads == {"classifier.weight", "classifier.bias", "aux_head.9.weight", "aux_head.9.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before if k not in heads)
    assert all(after[k].shape[0] == 3 for k in heads)
    logits, aux = model.forward_train(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 3)


def test_reset_classifier_to_zero_gives_pooled_features():
    model = _net()
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model.aux_head is None
    assert (model.num_classes, model.args.auxiliary) == (0, False)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, model.num_features)
    assert model.forward_train(x)[1] is None
    assert not any(k.startswith(("classifier.", "aux_head.")) for k in model.state_dict())
    # the same network is what NetworkArgs(num_classes=0) builds, so its weights save and load strictly
    rebuilt = build_network(model.genotype, model.args)
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(GdasError, match="average"):
        model.reset_classifier(3, global_pool="max")


def test_num_classes_zero_builds_a_headless_network():
    model = build_network(load_genotype("gdas"), NetworkArgs(C=8, layers=5, num_classes=0))
    assert model.aux_head is None and not model.args.auxiliary
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, model.num_features)


@pytest.mark.parametrize("genotype", GENOTYPES)
@pytest.mark.parametrize("net, size, reductions", LAYOUTS)
def test_features_only_maps_match_feature_info(net, size, reductions, genotype):
    model = _net(net, genotype, features_only=True)
    assert isinstance(model, CellFeatures) and model.out_indices == (0, 1, 2, 3)
    maps = model(torch.randn(2, 3, size, size))
    info = model.feature_info
    assert info.reduction() == reductions and len(maps) == len(info)
    for fmap, level in zip(maps, info):
        side = size // level["reduction"]
        assert fmap.shape == (2, level["num_chs"], side, side)
        assert isinstance(model.get_submodule(level["module"]), nn.Module)
    assert info.channels() == [m.shape[1] for m in maps] and info.channels(-1) == _net(net, genotype).num_features
    assert info.module_name() == ["stem0", "cells.0", "cells.2", "cells.4"]  # layers=5: reductions at cells 1, 3


def test_out_indices_pick_levels_and_skip_unused_cells():
    model = _net(features_only=True, out_indices=(-2, 1))
    assert model.out_indices == (1, 2) and model.feature_info.reduction() == [1, 2]
    assert len(model.cells) == 3 and model.aux_head is None  # cells after the last level are not built
    maps = model(torch.randn(1, 3, 32, 32))
    assert [m.shape[1:] for m in maps] == [(c, 32 // r, 32 // r) for c, r in zip(model.feature_info.channels(),
                                                                                   model.feature_info.reduction())]
    assert len(_net(features_only=True, out_indices=[0])(torch.randn(1, 3, 32, 32))) == 1


def test_features_load_a_classifier_state_dict():
    classifier = _net().eval()
    features = _net(features_only=True, out_indices=(3,)).eval()
    result = features.load_state_dict(classifier.state_dict(), strict=False)
    assert not result.missing_keys
    assert {k.split(".")[0] for k in result.unexpected_keys} == {"aux_head", "classifier"}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(features(x)[0], classifier.forward_features(x))


@pytest.mark.parametrize("out_indices", [(4,), (-5,), (), (0.5,), 2])
def test_bad_out_indices_are_one_line_errors(out_indices):
    with pytest.raises(GdasError, match="out_indices"):
        _net(features_only=True, out_indices=out_indices)


def test_out_indices_need_features_only():
    with pytest.raises(GdasError, match="features_only"):
        _net(out_indices=(1,))


def test_plain_pytorch_training_loop_reduces_the_loss():
    model = _net(layers=3)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 6
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("net, size, _", LAYOUTS)
def test_features_feed_a_detection_head_end_to_end(net, size, _):
    backbone = _net(net, features_only=True)
    heads = nn.ModuleList(nn.Conv2d(c, 5, 1) for c in backbone.feature_info.channels())  # e.g. 4 box + 1 score
    maps = backbone(torch.randn(2, 3, size, size))
    outputs = [head(fmap) for head, fmap in zip(heads, maps)]
    assert [o.shape[-1] for o in outputs] == [size // r for r in backbone.feature_info.reduction()]
    sum(o.square().mean() for o in outputs).backward()
    params = list(backbone.parameters()) + list(heads.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)


@pytest.mark.parametrize("net, size, _", LAYOUTS)
def test_pretrained_cfg_defaults(net, size, _):
    cfg = _net(net).pretrained_cfg
    assert isinstance(cfg, dict) and cfg["num_classes"] == 6 and cfg["classifier"] == "classifier"
    assert cfg["first_conv"] == "stem0.0" and isinstance(_net(net).get_submodule(cfg["first_conv"]), nn.Conv2d)
    assert {"label_names", "dataset", "license", "source"} <= set(cfg)
    if net == "cifar":
        assert cfg["input_size"] == (3, 32, 32) and cfg["crop_pct"] == 1.0
        assert (cfg["mean"], cfg["std"]) == (CIFAR_MEAN, CIFAR_STD)  # what gdas_cli.data normalises with
    else:
        assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875  # resize 256, crop 224
        assert (cfg["mean"], cfg["std"]) == (IMAGENET_MEAN, IMAGENET_STD)
    assert cfg["interpolation"] == "bilinear"


def test_pretrained_cfg_is_set_by_the_loader():
    fields = {"dataset": "cifar10", "label_names": [str(i) for i in range(6)], "license": "mit", "source": "hf-hub"}
    model = _net(pretrained_cfg=fields)
    assert {k: model.pretrained_cfg[k] for k in fields} == fields and model.pretrained_cfg["crop_pct"] == 1.0
    assert _net(features_only=True, pretrained_cfg=fields).pretrained_cfg == model.pretrained_cfg
    model.pretrained_cfg = pretrained_cfg_for(model.args, dataset="other")  # a plain attribute
    assert model.pretrained_cfg["dataset"] == "other"
    with pytest.raises(GdasError, match="unknown field"):
        _net(pretrained_cfg={"datset": "cifar10"})
    with pytest.raises(GdasError, match="2 label_names for 6 classes"):
        pretrained_cfg_for(model.args, label_names=["a", "b"])


def test_drop_path_rate_is_set_at_construction():
    x = torch.randn(2, 3, 32, 32)
    plain = _net().train()
    assert plain.drop_path_prob == 0.0
    torch.testing.assert_close(plain(x), plain(x))
    dropped = _net(drop_path_rate=0.5).train()
    assert dropped.drop_path_prob == 0.5
    torch.manual_seed(0)
    first = dropped(x)
    assert not torch.allclose(first, dropped(x))  # a fresh drop-path mask per call
    with torch.no_grad():  # same seed, same weights; no drop-path in eval mode
        torch.testing.assert_close(_net(drop_path_rate=0.5).eval()(x), _net().eval()(x))
    with pytest.raises(GdasError, match="drop_path_rate"):
        _net(drop_path_rate=1.0)


def test_builders_are_typed():
    assert type(_net()) is CellNetwork and type(_net(features_only=True)) is CellFeatures
