"""`float16`: the model exported in float16 (an export precision the pipeline adds; nothing to quantize here)."""

from __future__ import annotations

from . import Mode, register

register(Mode("float16", form="fp16", summary="the float16 export of the model"))
