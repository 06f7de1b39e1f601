import pytest

from edgekit.artefact import OutputError, atomic_folder


def test_atomic_folder_replaces_only_on_success(tmp_path):
    final = tmp_path / "a"
    with atomic_folder(final) as t:
        (t / "manifest.json").write_text("1")
    assert (final / "manifest.json").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_folder(final) as t:
        (t / "manifest.json").write_text("2")
        raise RuntimeError("killed half-way")
    assert (final / "manifest.json").read_text() == "1"  # previous complete artefact kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary or lock file left behind
    with atomic_folder(final) as t:
        (t / "manifest.json").write_text("3")
        (t / "y").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["manifest.json", "y"]


def test_atomic_folder_never_replaces_a_folder_it_did_not_write(tmp_path):
    final = tmp_path / "a"
    final.mkdir()
    (final / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds files edgekit did not write"), atomic_folder(final):
        pass
    assert (final / "notes.txt").read_text() == "mine"
