"""An engine folder, read strictly before any engine is deserialized: its `engine_manifest.json` (written by
`edgekit build` or the `edgekit plan` script), that the engines were built from THIS artefact's graphs (sha256 of
each ONNX file against the artefact's manifest), that the engine files are the ones built (sha256), and that this
device has the TensorRT release and GPU architecture they were built for. Engines are not portable across GPU
architectures or TensorRT releases: a plan built elsewhere fails to deserialize or, worse, runs untuned.

Standard library and numpy only, no TensorRT: every refusal here is one line (exit 2) and testable anywhere.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artefact import sha256_file
from ..errors import InputError
from ..manifest import Manifest

ENGINE_MANIFEST = "engine_manifest.json"
ENGINE_SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
MAX_ENGINE_BYTES = 64 << 30
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d{1,3}(\.\d{1,5}){0,3}$")
_CC = re.compile(r"^\d{1,2}\.\d{1,2}$")
_TARGET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REBUILD = "rebuild the engines for this artefact on this device (`edgekit build`, or the `edgekit plan` script)"


def _bad(folder: Path, what: str) -> InputError:
    return InputError(f"{folder / ENGINE_MANIFEST}: {what}", REBUILD)


def release(version: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0): the build number does not change plan compatibility."""
    parts = [int(p) for p in str(version).split(".")[:3] if p.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))


def read_engine_manifest(folder: Path) -> dict[str, Any]:
    """The engine manifest, checked field by field (a regular file of at most 1 MiB; every field typed)."""
    path = folder / ENGINE_MANIFEST
    try:
        st = os.lstat(path)
    except OSError:
        raise InputError(
            f"{folder} has no {ENGINE_MANIFEST}",
            "build engines first: `edgekit build` here, or `edgekit plan` and run the script on the device",
        ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
        raise _bad(folder, f"is not a regular file of at most {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        data = json.loads(path.read_bytes().decode())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(folder, "is not valid JSON") from None
    if not isinstance(data, dict) or data.get("schema_version") != ENGINE_SCHEMA_VERSION:
        raise _bad(folder, f"is not an edgekit engine manifest (schema_version {ENGINE_SCHEMA_VERSION})")
    gpu, recipe, engines = data.get("gpu"), data.get("build_recipe"), data.get("engines")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise _bad(folder, what)

    need(isinstance(data.get("target"), str) and bool(_TARGET.match(data["target"])), "target is not a target name")
    need(isinstance(data.get("tensorrt_version"), str) and bool(_VERSION.match(data["tensorrt_version"])),
         "tensorrt_version is not a version")  # fmt: skip
    need(isinstance(gpu, dict) and isinstance(gpu.get("name"), str) and len(gpu["name"]) <= 256
         and isinstance(gpu.get("compute_capability"), str) and bool(_CC.match(gpu["compute_capability"])),
         "gpu must name the GPU and its compute capability")  # fmt: skip
    need(isinstance(data.get("strongly_typed"), bool), "strongly_typed must be true or false")
    need(isinstance(recipe, dict) and isinstance(recipe.get("batch"), dict), "build_recipe.batch is missing")
    assert isinstance(recipe, dict)
    batch = recipe["batch"]
    need(all(isinstance(batch.get(k), int) and not isinstance(batch.get(k), bool) and 1 <= batch[k] <= 1 << 20
             for k in ("min", "opt", "max")) and batch["min"] <= batch["opt"] <= batch["max"],
         "build_recipe.batch must hold 1 <= min <= opt <= max")  # fmt: skip
    need(isinstance(engines, dict) and 0 < len(engines) <= 64, "engines must list the engines built")
    assert isinstance(engines, dict)
    for key, e in engines.items():
        need(bool(_KEY.match(key)) and isinstance(e, dict), f"engine entry {key[:40]!r} is malformed")
        need(isinstance(e.get("file"), str) and bool(_FILE.match(e["file"])),
             f"engine {key!r}: file must be a plain file name in the folder")  # fmt: skip
        for h in ("onnx_sha256", "engine_sha256"):
            need(isinstance(e.get(h), str) and bool(_SHA.match(e[h])), f"engine {key!r}: {h} is not a sha256")
        size = e.get("engine_bytes")  # recorded by builds since sizes were added; older manifests lack it
        need(size is None or (type(size) is int and 0 <= size <= MAX_ENGINE_BYTES),
             f"engine {key!r}: engine_bytes must be a size of at most 64 GiB")  # fmt: skip
    return data


@dataclass
class EngineFolder:
    """A checked engine folder and the engines of one artefact variant in it (graph role -> manifest entry)."""

    path: Path
    manifest: dict[str, Any]
    roles: dict[str, dict[str, Any]]

    @property
    def target(self) -> str:
        return str(self.manifest["target"])

    @property
    def max_batch(self) -> int:
        return int(self.manifest["build_recipe"]["batch"]["max"])

    def engine_file(self, graph: str) -> Path:
        if graph not in self.roles:
            raise InputError(
                f"{self.path} has no {graph} engine for this variant (it has: {', '.join(sorted(self.roles))})",
                f"build the {graph} graph too (`edgekit build --graphs`), or use another mode",
            )
        return self.path / str(self.roles[graph]["file"])

    def check_device(self, trt_version: str, gpu_name: str, compute_capability: str) -> list[str]:
        """Refuse engines built for another TensorRT release or GPU architecture; warn for another GPU model of the
        same architecture (they load, untuned)."""
        m = self.manifest
        if release(m["tensorrt_version"]) != release(trt_version):
            raise InputError(
                f"the engines in {self.path} were built with TensorRT {m['tensorrt_version']}, this device has "
                f"{trt_version}",
                REBUILD,
            )
        built = m["gpu"]
        if built["compute_capability"] != str(compute_capability):
            raise InputError(
                f"the engines in {self.path} were built for compute capability {built['compute_capability']} "
                f"({built['name']}), this GPU is {compute_capability} ({gpu_name})",
                REBUILD,
            )
        if built["name"].strip().lower() != gpu_name.strip().lower():
            return [
                f"engines were built on {built['name']}, this is {gpu_name} (same compute capability): they load, "
                "but rebuild here for tuned kernels"
            ]
        return []

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "target": m["target"],
            "tensorrt_version": m["tensorrt_version"],
            "gpu": m["gpu"],
            "strongly_typed": m["strongly_typed"],
            "batch": m["build_recipe"]["batch"],
            "precision": m["build_recipe"].get("precision"),
            "graphs": {role: e["file"] for role, e in sorted(self.roles.items())},
        }


def _default_folder(artefact: Path, target: str | None) -> Path:
    if target is not None:
        return artefact / "engines" / target
    root = artefact / "engines"
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(found) != 1:
        raise InputError(
            f"{root} holds engines for {', '.join(found) or 'no target'}",
            "pass the engine folder with --engines DIR",
        )
    return root / found[0]


def open_engine_folder(
    artefact: Path, manifest: Manifest, graphs: dict[str, str], engines: str | Path | None, target: str | None
) -> EngineFolder:
    """The engine folder for an artefact variant (`graphs`: role -> artefact file key), checked strictly: the
    engines were built from this artefact's graphs and are unchanged since (sha256), one line otherwise."""
    folder = Path(engines) if engines is not None else _default_folder(artefact, target)
    if folder.is_symlink() or not folder.is_dir():
        raise InputError(f"{folder} is not an engine folder", "pass the folder `edgekit build` or the plan wrote")
    data = read_engine_manifest(folder)
    hashes = manifest.hashes
    for key, e in data["engines"].items():
        if hashes.get(key) != e["onnx_sha256"]:
            raise InputError(
                f"the engines in {folder} were built from another artefact ({key} differs from this artefact's graph)",
                REBUILD,
            )
    roles = {role: data["engines"][key] for role, key in graphs.items() if key in data["engines"]}
    if not roles:
        raise InputError(
            f"{folder} holds no engine for this variant's graphs ({', '.join(sorted(graphs.values()))})",
            "build engines for this variant, or pick the variant they were built for with --variant",
        )
    for role, e in roles.items():
        path = folder / e["file"]
        try:
            st = os.lstat(path)
        except OSError:
            raise InputError(f"engine {path} ({role}) is missing", REBUILD) from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENGINE_BYTES:
            raise InputError(f"engine {path} is not a regular file of at most 64 GiB", REBUILD)
        if e.get("engine_bytes") is not None and st.st_size != e["engine_bytes"]:  # before hashing: bounded work
            raise InputError(
                f"engine {path.name} is {st.st_size:,} bytes, the engine manifest records {e['engine_bytes']:,}: it "
                "was changed after the build",
                REBUILD,
            )
        if sha256_file(path) != e["engine_sha256"]:
            raise InputError(f"engine {path.name} was changed after the build (sha256 differs)", REBUILD)
    return EngineFolder(folder, data, roles)
