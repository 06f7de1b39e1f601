import pytest

from edgekit.artefact import atomic_folder


def test_atomic_folder_replaces_only_on_success(tmp_path):
    final = tmp_path / "a"
    with atomic_folder(final) as t:
        (t / "x").write_text("1")
    assert (final / "x").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as t:
            (t / "x").write_text("2")
            raise RuntimeError("killed half-way")
    assert (final / "x").read_text() == "1"          # previous complete artefact kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary left behind
    with atomic_folder(final) as t:
        (t / "y").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["y"]
