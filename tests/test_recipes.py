"""Named recipes (gancore/recipes/NAME.toml) and --recipe FILE.toml: the same Config as their flags, flags over
them, one sentence for a bad file, key or value, the name in config.json, and ablate.py's variants read from them."""

import dataclasses
import fnmatch
import json
import tomllib

import pytest
from conftest import ROOT, load_script

from gancore.config import CONFIG_SETTINGS, JAX, RECIPE_NAMES, RECIPES, TORCH, Config, ConfigError, read_recipe
from gancore.flags import build_parser, from_flags
from jaxgan.ablation import VARIANTS


def parse(argv: list[str], trainer: str = JAX) -> Config:
    return from_flags(trainer, build_parser(trainer, "test", "runs/t").parse_args(argv))[0]


def flags_of(table: dict) -> list[str]:
    """The command-line flags that say what a recipe file says."""
    flag = {s.name: s.flag for s in CONFIG_SETTINGS}
    return [item for key, value in table.items() for item in ([flag[key]] if value is True else [flag[key], str(value)])]


def test_the_two_recipes_are_packaged():
    assert RECIPE_NAMES == ("conditional", "unconditional")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gancore"]
    for name in RECIPE_NAMES:
        assert any(fnmatch.fnmatch(f"recipes/{name}.toml", p) for p in patterns), f"{name}.toml is not in pyproject's package-data"


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_a_recipe_gives_the_config_its_flags_give(name):
    table = tomllib.loads((RECIPES / f"{name}.toml").read_text())
    from_recipe, from_its_flags = parse(["--recipe", name]), parse(flags_of(table))
    assert from_recipe.recipe == name and from_its_flags.recipe is None
    assert dataclasses.replace(from_recipe, recipe=None) == from_its_flags
    assert from_recipe != parse([])  # a recipe changes something
    assert Config.from_recipe(name, workdir="runs/t") == from_recipe


def test_the_recipes_hold_what_the_docs_say():
    conditional, unconditional = parse(["--recipe", "conditional"]), parse(["--recipe", "unconditional"])
    assert (conditional.arch, conditional.conditional, conditional.ema_decay, conditional.epochs, conditional.batch_size) == ("dcgan", True, 0.999, 40, 100)
    assert (unconditional.arch, unconditional.conditional, unconditional.ema_decay) == ("dcgan", False, 0.999)
    assert (unconditional.r1_weight, unconditional.r1_every, unconditional.epochs, unconditional.batch_size) == (1.0, 16, 30, 50)


def test_a_flag_given_overrides_the_recipe_and_the_rest_of_the_recipe_stays():
    config = parse(["--epochs", "50", "--recipe", "unconditional", "--r1-every", "8", "--seed", "3"])
    assert (config.epochs, config.r1_every, config.seed) == (50, 8, 3)
    assert (config.batch_size, config.r1_weight, config.ema_decay, config.arch) == (50, 1.0, 0.999, "dcgan")
    assert Config.from_recipe("unconditional", epochs=50).epochs == 50


def test_a_recipe_file_of_ones_own(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('d_loss = "hinge"\ng_loss = "hinge"\nlr = 1\ndropout = 0\nconditional = true\n')
    config = parse(["--recipe", str(mine)])
    assert (config.d_loss, config.g_loss, config.lr, config.dropout, config.conditional, config.recipe) == ("hinge", "hinge", 1.0, 0.0, True, str(mine))
    assert isinstance(config.lr, float)  # TOML's whole number 1 stands for the float --lr


BAD = {
    "unknown key": ("batchsize = 10\n", "batchsize in {path} is not a setting a recipe can hold; use config.json's names, e.g. batch_size for --batch-size."),
    "framework setting": ('dtype = "bfloat16"\n', "dtype in {path} is not a setting a recipe can hold;"),
    "out of range": ("ema_decay = 1.5\n", "ema_decay in {path} must be in [0, 1) (0: no EMA; typical: 0.999), got 1.5."),
    "not a choice": ('arch = "resnet"\n', "arch in {path} must be one of mlp, dcgan, got 'resnet'."),
    "wrong type": ('epochs = "ten"\n', "epochs in {path} must be a whole number, got 'ten'."),
    "float for int": ("epochs = 2.5\n", "epochs in {path} must be a whole number, got 2.5."),
    "bool for a number": ("lr = true\n", "lr in {path} must be a number, got True."),
    "number for a switch": ("conditional = 1\n", "conditional in {path} must be true or false, got 1."),
    "not TOML": ("epochs = \n", "recipe {path} is not valid TOML ("),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_recipe_file_is_refused_in_one_sentence_naming_the_file_and_key(case, tmp_path, capsys):
    text, sentence = BAD[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refusal:
        read_recipe(str(path))
    assert str(refusal.value).startswith(sentence.format(path=path)) and "\n" not in str(refusal.value)
    # Through the trainer: exit code 2, the same sentence last on stderr, nothing written.
    with pytest.raises(SystemExit) as stop:
        load_script("train_jax").main(["--recipe", str(path), "--workdir", str(tmp_path / "run")])
    assert stop.value.code == 2 and not (tmp_path / "run").exists()
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(str(refusal.value))


@pytest.mark.parametrize(
    "recipe, sentence",
    [
        ("nope", "--recipe must be conditional or unconditional (gancore/recipes/), or a .toml file, got 'nope'."),
        ("missing.toml", "recipe missing.toml cannot be read (No such file or directory); give an existing .toml file."),
    ],
)
def test_a_recipe_that_is_not_there_is_refused_in_one_sentence(recipe, sentence, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"^{sentence.replace('(', '[(]').replace(')', '[)]').replace('.', '[.]')}$"):
        read_recipe(recipe)
    with pytest.raises(SystemExit) as stop:
        load_script("train_jax").main(["--recipe", recipe])
    assert stop.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(sentence)
    assert not (tmp_path / "runs").exists()


def test_torch_baseline_refuses_a_recipe_of_research_options_in_one_sentence(tmp_path, capsys):
    code = load_script("train_torch").main(["--recipe", "conditional", "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "run").exists()
    assert err == (
        "error: torch_baseline is the article's GAN only; --arch, --conditional, --ema-decay is a jaxgan option: run it with scripts/train_jax.py.\n"
    )


def test_config_json_records_the_recipe_and_every_value(tmp_path):
    mine = tmp_path / "small.toml"
    mine.write_text("epochs = 1\nbatch_size = 100\nsubset = 200\nlabel_smoothing = 0.1\nsample_every = 1\n")
    workdir = tmp_path / "run"
    assert load_script("train_jax").main(["--recipe", str(mine), "--seed", "4", "--workdir", str(workdir)]) == 0
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["recipe"] == str(mine) and saved["seed"] == 4
    assert (saved["epochs"], saved["batch_size"], saved["subset"], saved["label_smoothing"]) == (1, 100, 200, 0.1)
    # Every value: the run's Config comes back whole (beta1 as the one in effect).
    assert Config.from_dict(saved) == dataclasses.replace(parse(["--recipe", str(mine), "--seed", "4", "--workdir", str(workdir)]), beta1=0.9)
    # A named recipe's record, as both trainers write it (Config.run_record).
    assert Config.from_recipe("conditional").run_record(JAX, (28, 28), dtype="float32", prng="threefry2x32")["recipe"] == "conditional"
    assert Config.from_recipe("unconditional").run_record(TORCH, (28, 28), loader="article")["r1_every"] == 16


def test_ablate_trains_the_recipes_as_the_files_define_them_with_its_own_budget():
    for variant, name in (("dcgan-conditional-ema", "conditional"), ("dcgan-ema-lazy-r1", "unconditional")):
        changes = VARIANTS[variant][0]
        table = tomllib.loads((RECIPES / f"{name}.toml").read_text())
        assert changes == {k: v for k, v in table.items() if k not in ("epochs", "batch_size")} | {"recipe": name}


def test_a_recipe_run_resumes_with_the_recipe_or_its_settings_spelled_out_and_not_without_them():
    from gancore import runs

    def record(config: Config) -> dict:
        return config.run_record(JAX, (28, 28), dtype="float32", prng="threefry2x32")

    saved = record(parse(["--recipe", "unconditional"]))
    runs.check_same_run(saved, record(parse(["--recipe", "unconditional", "--epochs", "50"])))
    runs.check_same_run(saved, record(parse(flags_of(tomllib.loads((RECIPES / "unconditional.toml").read_text())))))
    with pytest.raises(ConfigError, match="has batch_size=50, this command has 6000; use the same --batch-size or another --workdir"):
        runs.check_same_run(saved, record(parse([])))
