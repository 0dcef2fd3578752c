"""Every declared setting: its flag parses to it, --help documents it where it is taken, the other trainer
refuses it in one sentence, and resume compares it exactly when it is declared run-defining."""

import json
import re

import pytest
from conftest import load_script

from gancore import runs
from gancore.config import CONFIG_SETTINGS, JAX, SETTINGS, TORCH, Config, ConfigError
from gancore.flags import build_parser, from_flags
from gancore.settings import OWNER, SCRIPT, Setting

CANDIDATES = {int: [1, 2, 3, 100], float: [0.1, 0.25, 1.5], str: ["fashion_mnist", "elsewhere", "conditional", "0,3,5"], tuple: [(8,), (8, 16)]}


def example(s: Setting):
    """A value other than the default that the setting's own check allows."""
    if s.choices:
        values = s.choices
    elif s.type is None and isinstance(s.default, bool):
        values = [True]
    else:
        values = CANDIDATES[s.type or type(s.default)]
    return next(v for v in values if v != s.default and s.problem(v) is None)


def argv_of(s: Setting, value) -> list[str]:
    return [s.flag] if value is True else [s.flag, str(value)]


def parsed(trainer: str, s: Setting, value):
    config, options = from_flags(trainer, build_parser(trainer, "test", "runs/t").parse_args(argv_of(s, value)))
    return options[s.name] if s.name in options else getattr(config, s.name)


def squeezed(text: str) -> str:
    return "".join(text.split())  # argparse wraps help at spaces and hyphens


FLAGGED = [s for s in SETTINGS if s.flag]


@pytest.mark.parametrize("s", FLAGGED, ids=lambda s: s.flag)
def test_each_flag_parses_to_its_setting_and_is_documented_where_it_is_taken(s):
    value = example(s)
    for trainer in s.trainers:
        help_text = squeezed(build_parser(trainer, "test", "runs/t").format_help())
        assert s.help and squeezed(f"{s.flag} ") in help_text and squeezed(s.help) in help_text
        assert parsed(trainer, s, value) == value
    for trainer in set((JAX, TORCH)) - set(s.trainers):
        assert not re.search(re.escape(s.flag) + r"(?![\w-])", build_parser(trainer, "test", "runs/t").format_help())


@pytest.mark.parametrize("s", [s for s in FLAGGED if s.trainers != (JAX, TORCH)], ids=lambda s: s.flag)
def test_the_trainer_that_does_not_take_a_flag_refuses_it_in_one_sentence(s, tmp_path, capsys):
    (other,) = {JAX, TORCH} - set(s.trainers)
    code = load_script(f"train_{other}").main([*argv_of(s, example(s)), "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    owner = s.trainers[0]
    assert err.startswith("error: ") and err.endswith(f" {s.flag} is a {OWNER[owner]} option: run it with {SCRIPT[owner]}.\n")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_shared_flag_is_refused_by_torch_only_for_the_values_it_cannot_run():
    g_loss = next(s for s in SETTINGS if s.name == "g_loss")
    assert [v for v in g_loss.choices if Config(g_loss=v).non_article_options()] == ["least_squares", "hinge", "wasserstein"]
    assert Config(g_loss="hinge", d_loss="hinge").non_article_options() == ["--g-loss hinge", "--d-loss"]


def record(trainer: str, **changes) -> dict:
    framework = {s.name: changes.get(s.name, s.default) for s in SETTINGS if s.run and trainer in s.trainers and s not in CONFIG_SETTINGS}
    framework |= {k: v for k, v in changes.items() if k not in {s.name for s in CONFIG_SETTINGS}}
    return Config(**{k: v for k, v in changes.items() if k not in framework}).run_record(trainer, (28, 28), **framework)


@pytest.mark.parametrize("s", SETTINGS, ids=lambda s: s.name)
def test_resume_compares_exactly_the_run_defining_settings(s):
    trainer = s.trainers[0]
    saved, changed = record(trainer), record(trainer, **{s.name: example(s)})
    if not s.run:
        runs.check_same_run(saved, changed)
        return
    with pytest.raises(ConfigError) as refusal:
        runs.check_same_run(saved, changed)
    was, now = (json.loads(json.dumps(v)) for v in (saved[s.name], example(s)))  # config.json holds lists
    assert f"has {s.name}={was!r}, this command has {now!r}; use the same {s.label} or another --workdir." in str(refusal.value)
    # A run saved before the setting existed had its older value: it resumes with that value only.
    older = {k: v for k, v in saved.items() if k != s.name}
    runs.check_same_run(older, {**saved, s.name: s.resume_default})
    with pytest.raises(ConfigError, match=f"has no {s.name} in its config.json \\(read as "):
        runs.check_same_run(older, changed if example(s) != s.resume_default else saved)


def test_the_run_defining_settings_are_the_ones_runs_were_saved_with():
    # Changing this set changes which saved runs resume: runs saved before still must.
    assert set(runs.RUN_FIELDS) == {
        "framework",
        "model",
        "latent_dim",
        "g_features",
        "d_features",
        "dropout",
        "batch_size",
        "subset",
        "digit",
        "dataset",
        "data_dir",
        "seed",
        "seeds",
        "lr",
        "label_smoothing",
        "g_loss",
        "dtype",
        "prng",
        "loader",
        "arch",
        "dcgan_features",
        "conditional",
        "d_loss",
        "gp_weight",
        "d_steps",
        "beta1",
        "beta2",
        "ema_decay",
        "ema_start",
        "g_lr",
        "d_lr",
        "r1_weight",
        "r1_every",
        "spectral_norm",
        "one_d_pass",
        "dropout_bits",
    }
    assert runs.RUN_DEFAULTS["beta1"] == 0.9 and runs.RUN_DEFAULTS["model"] is None and runs.RUN_DEFAULTS["gp_weight"] == 0.0


def test_run_record_needs_the_trainers_run_defining_framework_settings():
    assert record(JAX)["prng"] == "threefry2x32" and record(TORCH)["loader"] == "article"
    with pytest.raises(TypeError, match="needs"):
        Config().run_record(JAX, (28, 28), dtype="float32")
    with pytest.raises(TypeError, match="takes"):
        Config().run_record(TORCH, (28, 28), loader="article", dtype="float32")


def test_multi_process_flags_default_to_their_environment_variables(monkeypatch):
    args = build_parser(JAX, "test", "runs/t").parse_args([])
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host:1234")
    _, options = from_flags(JAX, args)
    assert options["num_processes"] == 2 and options["coordinator_address"] == "host:1234" and options["process_id"] is None
    assert from_flags(JAX, build_parser(JAX, "test", "runs/t").parse_args(["--num-processes", "3"]))[1]["num_processes"] == 3
    monkeypatch.setenv("JAX_PROCESS_ID", "first")
    with pytest.raises(ConfigError, match=r"^\$JAX_PROCESS_ID must be a whole number, got 'first'; fix or unset it\.$"):
        from_flags(JAX, args)


def test_every_setting_with_choices_refuses_another_value_in_one_sentence():
    from gancore.framework_settings import FRAMEWORK_SETTINGS

    with_choices = [s for s in (*CONFIG_SETTINGS, *FRAMEWORK_SETTINGS) if s.choices is not None]
    assert {"arch", "dropout_bits", "dense"} <= {s.name for s in with_choices}
    for setting in with_choices:
        problem = setting.problem(object())
        assert problem.startswith(f"{setting.label} must be one of {', '.join(map(str, setting.choices))}, got <object")
