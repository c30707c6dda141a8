"""The MNIST sweep's settings (paper Sec. 5): validation, the path template and its presets."""

from __future__ import annotations

import pytest

from weightsym.experiments.mnist import MNIST_PATH, MnistConfig
from weightsym.paths import PathConfig


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="variant"):
        MnistConfig(variants=("nope",)).validate()
    with pytest.raises(ValueError, match="gauge"):
        MnistConfig(variants=("gauge",), activation="softplus").validate()
    with pytest.raises(ValueError, match="loss"):
        MnistConfig(loss="mse").validate()


def test_more_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        MnistConfig(activation="nope").validate()
    with pytest.raises(ValueError, match="widths must be ints >= 2"):
        MnistConfig(widths=(1,)).validate()
    with pytest.raises(ValueError, match="at least one value"):
        MnistConfig(seeds=()).validate()
    with pytest.raises(ValueError, match="lanczos_steps"):
        MnistConfig(lanczos_steps=-1).validate()
    with pytest.raises(ValueError, match="tol"):
        MnistConfig(path=MNIST_PATH.replace(tol=-1.0)).validate()
    MnistConfig(variants=("gauge",), activation="relu").validate()


def test_path_template_holds_the_mnist_defaults_and_the_variant_sets_the_distance() -> None:
    """Layer 2, the most similar pair, 100 steps, L-BFGS to 1e-6 within 60 iterations (the
    documented MNIST settings); the variant's preset overrides the template's distance/gauge."""
    cfg = MnistConfig()
    assert cfg.path == MNIST_PATH
    assert (MNIST_PATH.layer, MNIST_PATH.pair, MNIST_PATH.steps) == (2, None, 100)
    assert (MNIST_PATH.solver, MNIST_PATH.tol, MNIST_PATH.max_iter) == ("lbfgs", 1e-6, 60)
    assert MNIST_PATH.ratio == PathConfig().ratio
    for name in ("paper", "joint", "gauge"):
        preset = PathConfig.preset(name)
        got = cfg.path_config(name)
        assert (got.distance, got.gauge) == (preset.distance, preset.gauge)
        assert got.replace(distance=MNIST_PATH.distance, gauge=False) == MNIST_PATH


def test_jobs_run_the_widest_first_and_tables_keep_the_configured_order() -> None:
    cfg = MnistConfig(widths=(10, 25), seeds=(0, 1), variants=("paper", "joint"))
    assert cfg.natural_jobs()[:3] == [(10, 0, "paper"), (10, 0, "joint"), (10, 1, "paper")]
    assert [j[0] for j in cfg.jobs()] == [25] * 4 + [10] * 4
    d = cfg.as_dict()
    assert d["widths"] == [10, 25] and d["path"]["solver"] == "lbfgs"
