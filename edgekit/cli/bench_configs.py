"""`edgekit bench` with several runtime configurations side by side: repeated `--backend` (onnxruntime, openvino,
tensorrt with --engines) and, for a backend that takes a precision, repeated `--ov-precision`, one configuration
each (onnxruntime, openvino-f32, openvino-bf16, openvino-int8: the last runs int8_weight_only's graphs). Each
configuration gets the options its backend takes; an option none of the listed backends takes is refused by its
flag, never dropped."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..runtime.errors import RuntimeInputError

if TYPE_CHECKING:
    from .device import DeviceOptions

DEFAULT_BACKEND = "onnxruntime"
DEFAULT_PRECISION = "f32"  # the OpenVINO runner's own default


def configurations(
    opts: DeviceOptions, backends: list[str], precisions: list[str]
) -> list[tuple[str, DeviceOptions]] | None:
    """(name, options) per configuration, in the order given (the first is what the others' speed-ups are measured
    against); None for one configuration (bench's single-backend path, unchanged)."""
    backends, precisions = list(dict.fromkeys(backends)), list(dict.fromkeys(precisions))
    if len(backends) <= 1 and len(precisions) <= 1:
        return None
    from ..runtime.backends import BACKENDS, FLAGS

    names = backends or [DEFAULT_BACKEND]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise RuntimeInputError(f"unknown backend {unknown[0]!r}; use one of {', '.join(BACKENDS)}")
    given = {
        "providers": opts.providers,
        "device_id": opts.device_id or None,
        "fp16": opts.fp16 or None,
        "allow_fallback": opts.allow_fallback or None,
        "tf32": opts.tf32,
        "device": opts.ov_device,
        "precision": precisions or None,
        "threads": opts.threads,
        "cache_dir": opts.cache_dir,
    }
    taken = set().union(*(BACKENDS[b].takes for b in names))
    foreign = [FLAGS.get(k, k) for k, v in given.items() if v is not None and k not in taken]
    if foreign:
        raise RuntimeInputError(
            f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not used by the backends listed "
            f"({', '.join(names)}): add the backend that takes it, or drop it"
        )
    if opts.engines is not None and not any(BACKENDS[b].engines for b in names):
        raise RuntimeInputError("--engines runs TensorRT engines: add --backend tensorrt, or drop --engines")
    out = []
    for b in names:
        takes, backend = BACKENDS[b].takes, BACKENDS[b]
        own = replace(
            opts,
            backend=b,
            providers=opts.providers if "providers" in takes else None,
            device_id=opts.device_id if "device_id" in takes else 0,
            fp16=opts.fp16 and "fp16" in takes,
            allow_fallback=opts.allow_fallback and "allow_fallback" in takes,
            tf32=opts.tf32 if "tf32" in takes else None,
            ov_device=opts.ov_device if "device" in takes else None,
            ov_precision=None,
            threads=opts.threads if "threads" in takes else None,
            cache_dir=opts.cache_dir if "cache_dir" in takes else None,
            engines=opts.engines if backend.engines else None,
        )
        if "precision" in takes:  # one configuration per precision asked for
            out += [(f"{b}-{p}", replace(own, ov_precision=p)) for p in precisions or [DEFAULT_PRECISION]]
        else:
            out.append((b, own))
    if len({n for n, _ in out}) < 2:
        raise RuntimeInputError("bench side by side needs at least two configurations")
    return out
