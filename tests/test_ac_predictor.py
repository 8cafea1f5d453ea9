"""The action-conditioned predictor: frame-causal, its KV-cached rollout equals the full
pass, and `python -m worldmodel.train_ac` trains, resumes and exports."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_PREDICTOR, compose_config
from safetensors.torch import save_file

import worldmodel.train_ac  # noqa: F401  (registers the train_ac config schema)
from worldmodel.ac_predictor import ACConfig, ACPredictor, frame_causal_mask
from worldmodel.weights import encoder_id, load_predictor, load_pretrained


def random_predictor(conditioning: str) -> ACPredictor:
    """A small predictor with every weight random (the zero-initialised heads and AdaLN
    gates too, so that every input can reach every output)."""
    torch.manual_seed(0)
    model = ACPredictor(ACConfig(dim=32, depth=2, heads=2, conditioning=conditioning,
                                 frameskip=2, max_frames=6), num_patches=16, feature_dim=24)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def inputs(T=5, B=1):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(B, T, 16, 24, generator=g), torch.randn(B, T, 8, generator=g),
            torch.randn(B, T, 4, generator=g))


def test_mask_is_block_causal():
    mask = frame_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert torch.equal(mask, expected.bool())


@pytest.mark.parametrize("conditioning", ["adaln", "tokens"])
def test_future_frames_cannot_change_past_predictions(conditioning):
    model = random_predictor(conditioning)
    z, actions, proprio = inputs()
    before, _ = model(z, actions, proprio)
    z2, actions2, proprio2 = z.clone(), actions.clone(), proprio.clone()
    z2[:, 3:] += 1.0
    actions2[:, 3:] += 1.0
    proprio2[:, 3:] += 1.0
    after, _ = model(z2, actions2, proprio2)
    torch.testing.assert_close(after[:, :3], before[:, :3])
    assert (after[:, 3:] - before[:, 3:]).abs().max() > 1e-3  # the future does matter


@pytest.mark.parametrize("conditioning", ["adaln", "tokens"])
def test_cached_rollout_equals_full_passes(conditioning):
    """imagine() with a KV cache gives what re-running the whole sequence gives."""
    model = random_predictor(conditioning)
    z, actions, proprio = inputs()
    cache = model.context(z[:, :2], actions[:, :2], proprio[:, :2])
    plans = torch.cat([actions[:, 2:4], torch.randn(2, 2, 8)])  # (3, H=2, A)
    imagined, imagined_s = model.imagine(cache, z[:, 2], proprio[:, 2], plans)
    assert imagined.shape == (3, 2, 16, 24) and imagined_s.shape == (3, 2, 4)
    for n in range(3):
        seq_z = torch.cat([z[:, :3], imagined[n:n + 1, :1]], dim=1)
        seq_s = torch.cat([proprio[:, :3], imagined_s[n:n + 1, :1]], dim=1)
        seq_a = torch.cat([actions[:, :2], plans[n:n + 1]], dim=1)
        full, _ = model(seq_z, seq_a, seq_s)
        torch.testing.assert_close(imagined[n], full[0, 2:4], atol=1e-5, rtol=1e-5)
    # the cache's key/value buffers are reused by later calls (planning's iterations), also
    # after a call with another number of samples, a longer or a shorter horizon
    model.imagine(cache, z[:, 2], proprio[:, 2], plans[:1, :1])
    model.imagine(cache, z[:, 2], proprio[:, 2], torch.randn(3, 3, 8))
    again, again_s = model.imagine(cache, z[:, 2], proprio[:, 2], plans)
    assert torch.equal(again, imagined) and torch.equal(again_s, imagined_s)
    first, _ = model.imagine(cache, z[:, 2], proprio[:, 2], plans[:, :1])
    assert torch.equal(first, imagined[:, :1])


def test_untrained_predictor_predicts_no_change():
    model = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=16, feature_dim=24)
    z = torch.nn.functional.layer_norm(torch.randn(1, 3, 16, 24), (24,))
    _, actions, proprio = inputs(T=3)
    actions = torch.randn(1, 3, 16)
    pred, pred_s = model(z, actions, proprio)
    torch.testing.assert_close(pred, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred_s, proprio)


def test_object_state_loss_is_the_squared_error_in_cm():
    """With the object state, ac_loss adds object_weight x the squared error (cm^2) of the
    imagined contact point; the robot's proprio keeps its L1 over its own 4 dims."""
    from worldmodel.train_ac import ac_loss

    model = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=16, feature_dim=24,
                        proprio_dim=7)
    z = torch.nn.functional.layer_norm(torch.randn(1, 3, 16, 24), (24,)).expand(2, -1, -1, -1)
    actions, state = torch.randn(2, 2, 16), torch.zeros(2, 3, 7)
    state[1, 1:, 4] = 0.03  # the second window's object moves 3 cm in x after frame 0
    args = dict(rollout_passes=1, proprio_weight=1.0)
    _, plain = ac_loss(model, z, actions, state, object_weight=0.0, **args)
    loss, metrics = ac_loss(model, z, actions, state, object_weight=0.5, **args)
    # an untrained predictor imagines nothing moving: 9 cm^2 in 1 of the 4 predicted steps
    # (teacher forced, the second window's frame 1 -> 2 step starts at the moved object)
    assert metrics["tf_object"].item() == pytest.approx(2.25, rel=1e-5)
    assert loss.item() == pytest.approx(plain["tf_loss"].item() + 0.5 * 2.25, rel=1e-4)
    assert metrics["tf_proprio"].item() == 0.0


def test_l1_plus_l2_loss_is_their_sum():
    from worldmodel.train_ac import ac_loss

    model = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=16, feature_dim=24)
    z = torch.nn.functional.layer_norm(torch.randn(2, 3, 16, 24), (24,))
    actions, proprio = torch.randn(2, 2, 16), torch.zeros(2, 3, 4)
    token = {name: ac_loss(model, z, actions, proprio, rollout_passes=2, proprio_weight=0.0,
                           loss=name)[1]["rollout1_loss"].item()
             for name in ("l1", "l2", "l1+l2")}
    assert token["l1+l2"] == pytest.approx(token["l1"] + token["l2"], rel=1e-6)
    with pytest.raises(ValueError, match="loss"):
        compose_config("train_ac", "loss=huber")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="conditioning"):
        ACConfig(conditioning="film")
    with pytest.raises(ValueError, match="rollout_passes"):
        compose_config("train_ac", "rollout_passes=9")


def test_train_ac_exports_a_loadable_predictor(tiny_world_model):
    card = json.loads((tiny_world_model / "predictor.json").read_text())
    assert card["steps"] == 3 and card["command"].startswith("python -m worldmodel.train_ac")
    evaluation = card["evaluation"]
    assert len(evaluation["predictor_l1"]) == len(evaluation["horizon"]) == 4
    gripper = evaluation["gripper_one_step"]
    assert gripper["free"]["windows"] + gripper["blocked"]["windows"] <= gripper["windows"]
    model = load_pretrained(tiny_world_model, predictor=True)
    assert model.predictor is not None and not model.predictor.training
    frames = torch.zeros(1, 1, 64, 64, 3, dtype=torch.uint8)
    assert model.encode(frames).shape[-2] == model.predictor.num_patches
    assert card["encoder_id"] == encoder_id(model.encoder)


def test_a_predictor_beside_another_encoder_is_refused(tiny_world_model, tmp_path):
    """The card names the encoder whose features trained the predictor; loading it with
    other encoder weights (here: perturbed) stops with a clear error."""
    import shutil

    for name in ("encoder.json", "predictor.json", "predictor.safetensors"):
        shutil.copy(tiny_world_model / name, tmp_path / name)
    encoder = load_pretrained(tiny_world_model).encoder
    with torch.no_grad():
        next(encoder.parameters()).add_(0.01)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
              tmp_path / "encoder.safetensors")
    with pytest.raises(ValueError, match="trained on the features of encoder"):
        load_pretrained(tmp_path, predictor=True)
    assert load_pretrained(tmp_path).predictor is None  # the encoder alone still loads


def test_train_ac_resumes(tiny_play, tiny_world_model, tmp_path):
    from worldmodel.checkpoint import load_checkpoint
    from worldmodel.train_ac import train

    args = [f"data_dir={tiny_play}", f"encoder_dir={tiny_world_model}",
            f"out_dir={tmp_path}", *TINY_PREDICTOR]
    train(compose_config("train_ac", *args, "steps=2"))
    first = load_checkpoint(tmp_path)
    train(compose_config("train_ac", *args, "steps=4"))
    state = load_checkpoint(tmp_path)
    assert first["step"] == 2 and state["step"] == 4
    assert len(json.loads(state["history"])) == 4  # two before the resume, two after


def test_blocked_steps_tell_free_from_blocked_motion():
    from worldmodel.train_ac import blocked_steps, free_motion_gain

    gain, fs = 0.02, 2  # 2 cm of motion per unit of summed action; 2 control steps per step
    actions = np.zeros((1, 3, fs * 4), np.float32)
    actions[0, :2, 0::4] = 1.0  # steps 0 and 1 command +x; step 2 commands nothing
    proprio = np.zeros((1, 4, 4), np.float32)
    proprio[0, 1:, 0] = [2 * gain, 2 * gain + 0.1 * 2 * gain, 2.2 * gain]  # free, blocked, still
    free, blocked = blocked_steps(actions, proprio, fs, gain)
    assert free.tolist() == [[True, False, False]] and blocked.tolist() == [[False, True, False]]
    assert free_motion_gain(actions[:, :1], proprio[:, :2], fs) == pytest.approx(gain)


def test_train_ac_oversamples_blocked_windows(tiny_play, tiny_world_model, tmp_path, capsys):
    from worldmodel.train_ac import train

    evaluation = train(compose_config(
        "train_ac", f"data_dir={tiny_play}", f"encoder_dir={tiny_world_model}",
        f"out_dir={tmp_path}", "steps=2", "blocked_weight=4", *TINY_PREDICTOR))
    assert "of the training windows hold a blocked step" in capsys.readouterr().out
    assert set(evaluation["gripper_one_step"]) >= {"free", "blocked", "gain_cm_per_unit_action"}
    with pytest.raises(ValueError, match="blocked_weight"):
        compose_config("train_ac", "blocked_weight=0")


def test_train_ac_fine_tunes_from_a_predictor_and_oversamples_rising_objects(
        tiny_play, tiny_world_model, tmp_path, capsys):
    """init_from starts from a saved predictor's weights (and says so when it does not
    match); rise_weight oversamples windows in which the object rises (object state only)."""
    from worldmodel.train_ac import build, train

    args = [f"data_dir={tiny_play}", f"encoder_dir={tiny_world_model}",
            f"out_dir={tmp_path}", *TINY_PREDICTOR]
    start = load_predictor(tiny_world_model)
    model = build(compose_config("train_ac", *args, f"init_from={tiny_world_model}"),
                  torch.device("cpu"))[-1]
    for name, value in start.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    with pytest.raises(ValueError, match="does not match"):
        build(compose_config("train_ac", *args, f"init_from={tiny_world_model}",
                             "model.dim=64"), torch.device("cpu"))
    train(compose_config("train_ac", *args, "steps=1", "object_state=true", "rise_weight=4"))
    assert "hold an object rising" in capsys.readouterr().out
    with pytest.raises(ValueError, match="rise_weight needs object_state"):
        compose_config("train_ac", "rise_weight=4")


def test_fine_tuned_card_carries_its_lineage(tiny_play, tiny_world_model, tmp_path):
    """A predictor fine-tuned in two stages says in its card how each stage was trained,
    nearest first, down to the predictor trained from scratch."""
    from worldmodel.train_ac import train

    args = [f"data_dir={tiny_play}", f"encoder_dir={tiny_world_model}", "steps=1",
            *TINY_PREDICTOR]
    for stage, start in (("a", tiny_world_model), ("b", tmp_path / "a")):
        train(compose_config("train_ac", *args, f"init_from={start}",
                             f"out_dir={tmp_path / ('run_' + stage)}",
                             f"export_dir={tmp_path / stage}"))
    chain = json.loads((tmp_path / "b" / "predictor.json").read_text())["fine_tuned_from"]
    assert [c["dir"] for c in chain] == [str(tmp_path / "a"), str(tiny_world_model)]
    assert chain[1]["steps"] == 3 and chain[0]["steps"] == 1


def test_missing_predictor_says_how_to_train_it(tiny_encoder):
    with pytest.raises(FileNotFoundError, match="worldmodel.train_ac"):
        load_predictor(tiny_encoder)
