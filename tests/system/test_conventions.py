"""One convention each: the cache root every cache lives under, the Jetson compute-capability table, and the
precision names a user may type."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cache import cache_dir
from edgekit.runtime.providers import ProviderSettings, cache_root, user_cache
from edgekit.runtime.toolchain import JETSON_CC
from edgekit.tensorrt import plan
from edgekit.tensorrt.tensorrt_builder import default_cache_dir


def test_every_cache_lives_under_edgekit_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("EDGEKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))  # no longer a second convention
    assert cache_dir() == tmp_path and cache_root(ProviderSettings()) == tmp_path
    assert default_cache_dir() == tmp_path / "timing-cache"
    assert user_cache(ProviderSettings(artefact_key="k")) == tmp_path / "trt-ep" / "k"
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "timing"))  # the timing-cache folder itself
    assert default_cache_dir() == tmp_path / "timing"
    source = Path(plan.__file__).read_text()
    assert "${EDGEKIT_CACHE_DIR:-${EDGEKIT_CACHE:-$HOME/.cache/edgekit}/timing-cache}" in source
    assert "XDG_CACHE_HOME" not in source


def test_one_jetson_compute_capability_table():
    assert JETSON_CC == {"Orin": "8.7", "Xavier": "7.2"}
    assert plan.JETSON_CC is JETSON_CC and not hasattr(plan, "_JETSON_CC")


@pytest.mark.parametrize("asked", ["fp16", "float16"])
def test_float16_and_fp16_name_the_same_engine_precision(trm_artefact, asked):
    from edgekit.tensorrt.build_spec import make_recipe

    recipe = make_recipe(trm_artefact, "rtx-40", precision=asked)
    assert recipe.precision == "fp16"


def test_test_folders_never_shadow_an_optional_package():
    """tests/ is on sys.path (conftest.py lives there), so a folder named like a package that may be missing becomes a
    namespace package: `importorskip("tensorrt")` imported tests/tensorrt/ and its tests failed instead of skipping."""
    root = Path(__file__).resolve().parents[1]
    optional = {"tensorrt", "ray", "openvino", "onnxruntime", "torch", "onnx", "nncf", "cuda", "matplotlib", "pycuda"}
    assert not {p.name for p in root.iterdir() if p.is_dir()} & optional


def test_no_test_imports_conftest():
    """Several test folders have a conftest.py; `from conftest import X` gets whichever one pytest imported first
    under that name, which differs between a clean clone and a cached run (it broke CI's collection once)."""
    import re

    root = Path(__file__).resolve().parents[1]
    bare = re.compile(r"^\s*(from conftest import|import conftest\b)", re.M)
    assert not [str(p.relative_to(root)) for p in root.rglob("*.py") if bare.search(p.read_text())]
