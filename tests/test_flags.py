"""Property test: any flag values give either a valid Config or one clear sentence."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gancore.config import CONFIG_SETTINGS, JAX, Config, ConfigError
from gancore.flags import build_parser, from_flags

NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "abc", "1e400", "-0", "0x10", " 7 "]),
)
# Every numeric flag, as declared (a new setting is fuzzed without touching this test).
FLAGS = [s.flag for s in CONFIG_SETTINGS if s.flag and s.type in (int, float)]


class ParserExit(Exception):
    pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FLAGS), NUMBERS), max_size=5), st.booleans(), st.booleans(), st.booleans())
def test_random_flags_give_a_valid_config_or_a_clear_error(pairs, resume, overwrite, conditional):
    parser = build_parser(JAX, "test", "runs/x")

    def refuse(message):
        raise ParserExit(message)

    parser.error = refuse
    argv = [item for flag, value in pairs for item in (flag, value)]
    argv += ["--resume"] * resume + ["--overwrite"] * overwrite + ["--conditional"] * conditional
    try:
        args = parser.parse_args(argv)
    except ParserExit as e:
        assert "argument" in str(e)  # argparse names the flag
        return
    try:
        config, _ = from_flags(JAX, args)
    except ConfigError as e:
        message = str(e)
        assert message.startswith("--") and message.endswith(".") and "\n" not in message
        return
    assert isinstance(config, Config)
    assert config.epochs >= 1 and config.batch_size >= 1 and config.lr > 0
    assert config.digit is None or 0 <= config.digit <= 9
    assert 0 <= config.label_smoothing < 0.5 and not (config.resume and config.overwrite)
    assert 0 <= config.dropout < 1 and config.gp_weight >= 0 and config.d_steps >= 1 and config.dcgan_features >= 1
    assert 0 <= config.adam_beta1 < 1 and 0 <= config.beta2 < 1
    assert not (config.conditional and config.digit is not None)


def test_config_round_trips_through_its_json_form():
    config = Config(g_features=(8, 16), digit=3)
    assert Config.from_dict({**config.to_dict(), "framework": "jax"}) == config
