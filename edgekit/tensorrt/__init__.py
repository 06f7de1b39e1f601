"""TensorRT targets: static compatibility check, on-device build plans, engine builds.

  check.py             `edgekit check`: artefact ONNX vs a target's TensorRT parser rules (or onnxruntime); no GPU
  oplist.py            the parser's operator table and rules, as data, with sources
  recipe.py            what an engine build does (the validated variant and its precision, flags for TensorRT 10.x
                       and 11, batch profiles, workspace), shared by plan and build
  plan.py              `edgekit plan`: the bash + trtexec script that builds engines on the device itself
  tensorrt_builder.py  `edgekit build`: the same build through the TensorRT Python API, here
  engine_manifest.py   what engines were built with and for; refusal to run them elsewhere
  graphs.py, versions.py, toolchain.py   ONNX inputs and batch axes, TensorRT version ranges, what is installed

Nothing here imports TensorRT at module level: only a build or an engine run does, and without it they exit 5.
"""
