"""Weight conversion between torch_baseline and jaxgan is exact, and the same weights give the same outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from gancore import data
from gancore.config import Config
from jaxgan import models
from jaxgan.build import make_gan
from jaxgan.step import create_train_state, discriminate, generate
from torch_baseline import convert
from torch_baseline import model as torch_model


@pytest.fixture(scope="module")
def torch_nets():
    torch.manual_seed(0)
    return torch_model.Generator(), torch_model.Discriminator().eval()


def test_torch_to_jax_to_torch_is_bit_exact(torch_nets):
    for net, jax_layers in zip(torch_nets, (["hidden_0", "hidden_1", "hidden_2", "out"], ["hidden_0", "hidden_1", "out"])):
        params = convert.params_from_state_dict(net.state_dict())
        assert list(params) == jax_layers
        back = convert.state_dict_from_params(params, net.state_dict())
        assert list(back) == list(net.state_dict())
        for key, tensor in net.state_dict().items():
            assert torch.equal(back[key], tensor), key
    assert convert.params_from_state_dict(torch_nets[0].state_dict())["hidden_0"]["kernel"].shape == (128, 256)


def test_jax_to_torch_to_jax_is_bit_exact():
    g = models.Generator().init(jax.random.key(0), jnp.zeros((1, 128)))["params"]
    G = convert.load_params(torch_model.Generator(), g)
    np.testing.assert_array_equal(G.net[0].weight.detach().numpy(), np.asarray(g["hidden_0"]["kernel"]).T)
    back = convert.params_from_state_dict(G.state_dict())
    for layer in g:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(back[layer][leaf], np.asarray(g[layer][leaf]))


def test_mismatches_name_the_layer(torch_nets):
    G, D = torch_nets
    d_params = convert.params_from_state_dict(D.state_dict())
    narrow = torch_model.Discriminator(features=(256, 64))
    with pytest.raises(convert.ConversionError, match=r"layer hidden_1 \(torch net.3\).*kernel \(256, 128\).*weight \(64, 256\)"):
        convert.state_dict_from_params(d_params, narrow.state_dict())
    with pytest.raises(convert.ConversionError, match="'hidden_2' has no counterpart"):
        convert.state_dict_from_params(convert.params_from_state_dict(G.state_dict()), D.state_dict())
    missing = {k: v for k, v in convert.params_from_state_dict(D.state_dict()).items() if k != "hidden_1"}
    with pytest.raises(convert.ConversionError, match="lack layer 'hidden_1'"):
        convert.state_dict_from_params(missing, D.state_dict())
    extra = {**convert.params_from_state_dict(D.state_dict()), "hidden_9": missing["out"]}
    with pytest.raises(convert.ConversionError, match="'hidden_9' has no counterpart"):
        convert.state_dict_from_params(extra, D.state_dict())
    with pytest.raises(convert.ConversionError, match="'layers.0' is not a torch_baseline layer"):
        convert.params_from_state_dict({"layers.0.weight": torch.zeros(2, 2), "layers.0.bias": torch.zeros(2)})
    with pytest.raises(convert.ConversionError, match="net.0 has no bias"):
        convert.params_from_state_dict({"net.0.weight": torch.zeros(2, 2)})


def test_jax_train_state_refuses_params_of_the_wrong_shape(torch_nets):
    gan = make_gan(Config(g_features=(8,), d_features=(256, 64)))
    with pytest.raises(ValueError, match=r"discriminator params\['hidden_1'\]\['bias'\] is \(128,\); the model needs \(64,\)"):
        create_train_state(gan, jax.random.key(0), d_params=convert.params_from_state_dict(torch_nets[1].state_dict()))


def test_same_weights_give_the_same_outputs(torch_nets):
    """Full float32 on the CPU: only summation order differs, so outputs agree to about 1e-6."""
    G, D = torch_nets
    gan = make_gan(Config())
    g_params = convert.params_from_state_dict(G.state_dict())
    d_params = convert.params_from_state_dict(D.state_dict())
    z_BxZ = np.random.default_rng(0).standard_normal((256, 128)).astype(np.float32)
    x_real_BxD = data.to_unit_range(data.load("train", subset=256).flat_NxD)
    with torch.no_grad():
        x_fake_torch = G(torch.from_numpy(z_BxZ)).numpy()
        torch_probs = [D(torch.from_numpy(x)).numpy()[:, 0] for x in (x_real_BxD, x_fake_torch)]
        torch_logits = [D.net[:-1](torch.from_numpy(x)).numpy()[:, 0] for x in (x_real_BxD, x_fake_torch)]
    x_fake_jax = np.asarray(generate(gan, g_params, z_BxZ))
    np.testing.assert_allclose(x_fake_jax, x_fake_torch, rtol=0, atol=1e-6)
    for x, probs, logits in zip((x_real_BxD, x_fake_torch), torch_probs, torch_logits, strict=True):
        jax_logits = np.asarray(discriminate(gan, d_params, x, None))
        np.testing.assert_allclose(jax_logits, logits, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(jax_logits)), probs, rtol=0, atol=1e-6)
    # Not vacuous: the outputs spread far beyond the tolerance.
    assert x_fake_jax.std() > 0.01 and np.ptp(torch_logits[0]) > 0.01
