"""The V-JEPA model: masks, the seed API, encoder layouts, EMA, input checks, presets,
collapse metrics and the spread regulariser."""

import pytest
import torch
from conftest import SMALL_MODEL

from worldmodel import VJEPAModel, preset
from worldmodel.masks import future_masks, multiblock_masks
from worldmodel.vjepa import content, effective_rank, ema_momentum, spread_loss


def test_future_masks_are_disjoint_and_future_biased():
    masks = future_masks(3, 4, 8, temporal_mask_ratio=0.5, mask_ratio=0.5,
                         generator=torch.Generator().manual_seed(0))
    assert masks.context_steps == 2
    assert masks.keep.shape == (3, 32)
    target = masks.target
    for b in range(3):
        visible = torch.zeros(4, 64, dtype=torch.bool)
        visible[:2, masks.keep[b]] = True
        assert not (visible & target[b]).any(), "a context token is also a target"
        assert (visible | target[b]).all(), "a token is neither context nor target"
    assert target[:, 2:].all(), "every later time step is a target"
    # tubes: the same patches are hidden in every context step
    assert torch.equal(target[:, 0], target[:, 1])


def test_multiblock_masks_keep_equal_counts():
    masks = multiblock_masks(4, 4, 8, mask_ratio=0.6, generator=torch.Generator().manual_seed(1))
    assert masks.context_steps == 4
    hidden = masks.target[:, 0].float().mean(dim=1)
    assert torch.all(hidden >= 0.6 - 1e-6)
    assert len({int(n) for n in masks.target.sum(dim=(1, 2))}) == 1


def test_seed_api_with_seed_keys():
    config = {"encoder_dim": 32, "predictor_dim": 16, "num_frames": 8, "patch_size": 8,
              "tubelet_size": 2, "mask_ratio": 0.5, "temporal_mask_ratio": 0.5,
              "factorized": True, "num_spatial_layers": 1, "num_temporal_layers": 1,
              "num_predictor_layers": 1, "ema_momentum": 0.996, "num_heads": 2,
              "predictor_heads": 2}
    model = VJEPAModel(config)
    loss, metrics = model(torch.randn(2, 3, 8, 64, 64))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"loss", "target_std", "pred_std", "collapsed", "target_rank",
            "rank_collapsed"} <= set(metrics)
    assert "spread" not in metrics and loss == metrics["loss"]
    loss.backward()
    assert model.encoder.embed.proj.weight.grad is not None
    with pytest.raises(ValueError, match="unknown VJEPAConfig keys"):
        VJEPAModel({**config, "mpl_ratio": 2.0})


@pytest.mark.parametrize("factorized", [True, False])
def test_encoder_layouts_give_documented_shapes(factorized):
    model = VJEPAModel(preset("tiny", factorized=factorized, **SMALL_MODEL))
    tokens = model.encoder(torch.randn(2, 3, 8, 64, 64))
    assert tokens.shape == (2, 4, 64, 32)
    kinds = set(model.encoder.kinds)
    assert kinds == ({"space", "time"} if factorized else {"joint"})
    frames = model.encode_frames(torch.randn(2, 5, 3, 64, 64))
    assert frames.shape == (2, 5, 64, 32)
    torch.testing.assert_close(frames.mean(-1), torch.zeros(2, 5, 64), atol=1e-5, rtol=0)


def test_factorized_attention_is_local_in_space_then_time():
    """In a factorized encoder with only spatial blocks, a change in one frame cannot reach
    another time step; joint attention lets it."""
    for factorized, leaks in ((True, False), (False, True)):
        model = VJEPAModel(preset("tiny", **{**SMALL_MODEL, "num_temporal_layers": 0},
                                  factorized=factorized)).eval()
        video = torch.randn(1, 3, 8, 64, 64)
        changed = video.clone()
        changed[:, :, 6:] += 1.0  # the last tubelet only
        with torch.no_grad():
            a, b = model.encoder(video), model.encoder(changed)
        assert torch.allclose(a[:, :3], b[:, :3]) != leaks


def test_multiscale_weights():
    model = VJEPAModel(preset("tiny", **SMALL_MODEL, num_frames=16, multiscale_loss=True,
                              temporal_mask_ratio=0.5, mask_ratio=0.0))
    masks = model.sample_masks(1, 8)
    weights = model.target_weights(masks)
    # targets at time steps 4..7 start 1, 3, 5, 7 frames after the context
    per_step = weights.view(4, 64)[:, 0].tolist()
    assert per_step == [1.0, 0.5, 0.25, 0.25]


def test_target_encoder_is_an_ema_without_gradients():
    model = VJEPAModel(preset("tiny", **SMALL_MODEL))
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    loss, _ = model(torch.randn(2, 3, 8, 64, 64))
    loss.backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    online = model.encoder.embed.proj.weight
    target = model.target_encoder.embed.proj.weight
    torch.testing.assert_close(online, target)
    with torch.no_grad():
        online.add_(1.0)
    before = target.clone()
    m = model.update_target(0, 100)
    assert m == pytest.approx(0.996)
    torch.testing.assert_close(target, before + (1 - m) * (online - before))
    assert ema_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert ema_momentum(50, 100, 0.996) == pytest.approx(0.998)


@pytest.mark.parametrize("video, message", [
    (torch.randn(3, 8, 64, 64), "B, C, T, H, W"),
    (torch.randn(1, 3, 8, 60, 60), "64x64"),
    (torch.randn(1, 3, 7, 64, 64), "multiple of tubelet"),
    (torch.randn(1, 3, 10, 64, 64), "at most num_frames"),
    (torch.full((1, 3, 8, 64, 64), float("nan")), "NaN"),
    (torch.zeros(1, 3, 8, 64, 64, dtype=torch.uint8), "float"),
])
def test_bad_video_fails_before_compute(video, message):
    model = VJEPAModel(preset("tiny", **SMALL_MODEL))
    with pytest.raises(ValueError, match=message):
        model(video)


def test_presets_match_the_seed_table():
    expected = {"base": 86e6, "large": 304e6, "huge": 632e6}
    for name, params in expected.items():
        with torch.device("meta"):
            model = VJEPAModel(name)
        count = sum(p.numel() for p in model.encoder.parameters())
        assert abs(count - params) / params < 0.02, (name, count)
    with pytest.raises(ValueError, match="valid: tiny, small"):
        VJEPAModel("giant")


def test_content_removes_each_positions_batch_mean():
    tokens = torch.randn(6, 2, 5, 4) + torch.arange(5.0)[:, None] * 10  # position-dependent
    x = content(tokens).view(6, 2, 5, 4)
    torch.testing.assert_close(x.mean(0), torch.zeros(2, 5, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(x, tokens - tokens.mean(0))
    # with visible patches `keep`: the mean is over the samples that see each patch
    keep = torch.tensor([[0, 2], [2, 3], [0, 3]])
    seen = torch.randn(3, 1, 2, 4)
    x = content(seen, keep).view(3, 2, 4)
    torch.testing.assert_close(x[0, 0], (seen[0, 0, 0] - seen[2, 0, 0]) / 2)
    torch.testing.assert_close(x[1, 0], (seen[1, 0, 0] - seen[0, 0, 1]) / 2)


def test_effective_rank_and_spread_see_dimensional_collapse():
    generator = torch.Generator().manual_seed(0)
    isotropic = torch.randn(4000, 16, generator=generator)
    one_direction = torch.randn(4000, 1, generator=generator) * torch.randn(16, generator=generator)
    assert effective_rank(isotropic) > 15.0
    assert effective_rank(one_direction) == pytest.approx(1.0, abs=1e-3)
    assert spread_loss(one_direction) > 10 * spread_loss(isotropic)


def test_spread_weight_adds_a_regulariser_on_the_encoder():
    video = torch.randn(3, 3, 8, 64, 64)
    grads = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        model = VJEPAModel(preset("tiny", **SMALL_MODEL, spread_weight=weight))
        masks = model.sample_masks(3, 4, torch.Generator().manual_seed(0))
        loss, metrics = model(video, masks)
        if weight:
            assert loss.item() == pytest.approx(float(metrics["loss"] + weight * metrics["spread"]),
                                         rel=1e-5)
        loss.backward()
        grads[weight] = (model.encoder.embed.proj.weight.grad.clone(),
                         model.predictor.out_proj.weight.grad.clone())
    # the regulariser acts on the context encoder's tokens, not on the predictor
    assert not torch.allclose(grads[0.0][0], grads[0.5][0])
    torch.testing.assert_close(grads[0.0][1], grads[0.5][1])
    with pytest.raises(ValueError, match="spread_weight"):
        preset("tiny", spread_weight=-1.0)
    # a training-objective field is not part of the architecture an encoder is compared on
    assert preset("tiny", spread_weight=0.5).architecture == preset("tiny").architecture
    assert preset("tiny", encoder_dim=96).architecture != preset("tiny").architecture
