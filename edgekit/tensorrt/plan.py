"""`edgekit plan`: write the bash script that builds an artefact's TensorRT engines on the device itself.

Jetson engines must be built on the Jetson (engines are not portable across GPUs or TensorRT versions), and the
device may not have Python packages beyond JetPack's. So the plan is plain bash + trtexec: it checks the artefact's
hashes, the TensorRT version and the GPU, runs one trtexec per graph with the recipe's precision, shapes, workspace
and a timing cache named by content hash, and writes the engine manifest the runtime verifies.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
from pathlib import Path

from .. import __version__
from ..artefact import writable_folder
from ..schema import Target, load_target
from . import versions
from .build_spec import BuildRecipe, make_recipe
from .engine_manifest import ENGINE_MANIFEST, ENGINE_SCHEMA_VERSION
from .toolchain import JETSON_CC


def script_name(target: str) -> str:
    return f"build_{target}.sh"


def write_plan(
    artefact: str | Path,
    target: Target | str,
    out: str | Path | None = None,
    precision: str | None = None,
    strongly_typed: bool = False,
    graphs: list[str] | None = None,
    variants: list[str] | None = None,
) -> Path:
    """Write build_<target>.sh into `out` (default: the artefact folder) and return its path. `variants`: the
    artefact variants to build (default: the validated one, see edgekit.tensorrt.build_spec); `graphs` limits the
    engines to those roles or manifest names (default: every graph of those variants)."""
    target = load_target(target) if isinstance(target, str) else target
    artefact = Path(artefact).resolve()
    recipe = make_recipe(artefact, target, precision, strongly_typed, graphs, variants)
    return write_script(recipe, target, artefact, out)


def write_script(recipe: BuildRecipe, target: Target, artefact: str | Path, out: str | Path | None = None) -> Path:
    """build_<target>.sh for a recipe made from `artefact`, into `out` (default: the artefact folder)."""
    artefact = Path(artefact).resolve()
    out_dir = writable_folder(out, "--out").resolve() if out else artefact  # one line for a file or too long a name
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / script_name(target.name)
    path.write_text(render(recipe, target, artefact, inside_artefact=out_dir == artefact))
    path.chmod(0o755)
    return path


def render(recipe: BuildRecipe, target: Target, artefact: Path, inside_artefact: bool = True) -> str:
    q = shlex.quote
    # a separate assignment: inside "${1:-...}" single quotes are literal and $(...) would run
    art_default = '"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"' if inside_artefact else q(str(artefact))
    prof = recipe.batch
    forced = [g.name for g in recipe.graphs if g.strongly_typed]  # Q/DQ graphs that also compute in float16
    typed = (
        f"STRONGLY_TYPED=1  # forced: {_comment(', '.join(forced))} compute in float16 beside Q/DQ (see the notes)"
        if forced
        else f'STRONGLY_TYPED="${{EDGEKIT_STRONGLY_TYPED:-{1 if recipe.strongly_typed else 0}}}"'
    )
    lines = [
        "#!/usr/bin/env bash",
        f"# edgekit on-device engine build: {_comment(artefact.name)} -> {_comment(target.name)} "
        f"({_comment(target.description)})",
        f"# Written by edgekit {__version__} on {_dt.date.today().isoformat()} "
        f"(`edgekit plan --target {_comment(target.name)}`).",
        f"# Run on the device: bash {_comment(script_name(target.name))} [ARTEFACT_DIR]",
        f"# Variant {_comment(', '.join(recipe.variants))} at {_comment(recipe.precision)}: {_comment(recipe.reason)}.",
        f"# Batch min/opt/max {prof['min']}/{prof['opt']}/{prof['max']}; "
        f"workspace {recipe.workspace_mb} MiB; TensorRT {_comment(recipe.tensorrt or 'any')}.",
        *[f"# Note: {_comment(n)}" for n in recipe.notes],
        "# Environment: TRTEXEC (path to trtexec), ENGINE_DIR, EDGEKIT_CACHE (cache root; timing caches in",
        "#   its timing-cache/) or EDGEKIT_CACHE_DIR (the timing-cache folder itself),",
        "#   EDGEKIT_STRONGLY_TYPED=1 (strongly typed build on TensorRT 10.x), EDGEKIT_FORCE=1 (build despite a",
        "#   TensorRT version or GPU mismatch; the engine manifest still records what was present).",
        "set -euo pipefail",
        "",
        f"ART_DEFAULT={art_default}",
        'ART="${1:-$ART_DEFAULT}"',
        f'ENGINE_DIR="${{ENGINE_DIR:-$ART/engines/{_word(target.name)}}}"',
        'CACHE_DIR="${EDGEKIT_CACHE_DIR:-${EDGEKIT_CACHE:-$HOME/.cache/edgekit}/timing-cache}"',
        typed,
        'FORCE="${EDGEKIT_FORCE:-0}"',
        'die() { echo "error: $*" >&2; exit 1; }',
        'mismatch() { if [ "$FORCE" = 1 ]; then echo "warning: $* (EDGEKIT_FORCE=1: building anyway)" >&2; '
        'else die "$*; set EDGEKIT_FORCE=1 to build anyway"; fi; }',
        "json_str() { printf '%s' \"$1\" | sed 's/\\\\/\\\\\\\\/g; s/\"/\\\\\"/g'; }",
        "sha() { sha256sum \"$1\" | cut -d' ' -f1; }",
        "# Every file this script writes goes to a fresh mktemp name (O_EXCL: never a planted file or link) and is",
        "# renamed into place (a link at the final name is replaced, not followed); leftovers go on exit.",
        "TMPS=(); trap 'rm -f -- ${TMPS[@]+\"${TMPS[@]}\"}' EXIT",
        'fresh() { local t; t=$(mktemp "$ENGINE_DIR/.$2.XXXXXXXX") || die "cannot write in $ENGINE_DIR"; '
        'TMPS+=("$t"); printf -v "$1" %s "$t"; }  # fresh VAR what: VAR names a new empty file',
        'publish() { chmod "$(printf %04o $(( 0666 & ~0$(umask) )))" "$1" && mv -fT -- "$1" "$2"; }',
        "# edgekit's rule for every cache folder: a real folder (not a link) of this user's own that no one else can",
        "# write; missing levels are created 0700.",
        'private_dir() { [ -e "$1" ] || [ -L "$1" ] || (umask 077 && mkdir -p -- "$1") || return 1; '
        '[ -d "$1" ] && [ ! -L "$1" ] && [ -O "$1" ] && [ $(( 0$(stat -c %a -- "$1") & 022 )) = 0 ]; }',
        "",
        "# 1. The artefact is the one this plan was written for (sha256 from its manifest.json).",
        'check_sha() { [ -f "$ART/$1" ] || die "$ART/$1 is missing; copy the whole artefact folder"; '
        'local got; got=$(sha "$ART/$1"); [ "$got" = "$2" ] || die "$1 has sha256 $got, the manifest says $2; '
        're-run edgekit plan for this artefact"; }',
        *[f"check_sha {q(g.onnx)} {q(g.onnx_sha256)}" for g in recipe.graphs],
        "",
        "# 2. TensorRT: trtexec prints 'TensorRT v100300' for 10.3.0.",
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        '[ -x "$TRTEXEC" ] || die "trtexec not found; '
        'install TensorRT (JetPack: sudo apt install tensorrt) or set TRTEXEC"',
        "TRT_NUM=$(\"$TRTEXEC\" --help 2>&1 | sed -n 's/.*TensorRT v\\([0-9][0-9]*\\).*/\\1/p' | head -n1 || true)",
        'if [ -z "$TRT_NUM" ] && command -v python3 >/dev/null; then',
        "  TRT_NUM=$(python3 -c \"import tensorrt as t; a=(t.__version__.split('.')+['0','0'])[:3]; "
        'print(int(a[0])*10000+int(a[1])*100+int(a[2]))" 2>/dev/null || true)',
        "fi",
        '[ -n "$TRT_NUM" ] || die "cannot read the TensorRT version from $TRTEXEC"',
        'if [ "$TRT_NUM" -lt 100000 ]; then  # TensorRT 8/9 numbered major*1000 + minor*100 + patch',
        "  TRT_NUM=$(( TRT_NUM / 1000 * 10000 + TRT_NUM / 100 % 10 * 100 + TRT_NUM % 100 ))",
        "fi",
        'TRT_MAJOR=$(( TRT_NUM / 10000 )); TRT_VERSION="$TRT_MAJOR.$(( TRT_NUM / 100 % 100 )).$(( TRT_NUM % 100 ))"',
    ]
    if recipe.tensorrt:
        outside = q(f"{target.name}'s range {recipe.tensorrt}")
        lines.append(
            f'if ! {{ {versions.bash_test(recipe.tensorrt)}; }}; then mismatch "TensorRT $TRT_VERSION is outside '
            f'target "{outside}; fi'
        )
    lines += [
        'echo "TensorRT $TRT_VERSION ($TRTEXEC)"',
        "",
        "# 3. The GPU: Jetson by /proc/device-tree/model (and its L4T release), other GPUs by nvidia-smi.",
        "GPU_NAME=unknown; GPU_CC=unknown; L4T=$(head -n1 /etc/nv_tegra_release 2>/dev/null || true)",
        "if [ -r /proc/device-tree/model ] && grep -qai jetson /proc/device-tree/model; then",
        "  GPU_NAME=$(tr -d '\\0' < /proc/device-tree/model)",
        '  case "$GPU_NAME" in ' + " ".join(f"*{soc}*) GPU_CC={cc};;" for soc, cc in JETSON_CC.items()) + " esac",
    ]
    if target.device_model:
        lines.append(
            f'  case "$GPU_NAME" in *{q(target.device_model)}*) ;; *) mismatch "this is $GPU_NAME, the plan is '
            f'for "{q(target.device_model + " (memory and workspace differ)")};; esac'
        )
    lines += [
        "elif command -v nvidia-smi >/dev/null; then",
        "  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)",
        "  GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1)",
        "fi",
    ]
    if target.compute_capability:
        lines.append(
            f'[ "$GPU_CC" = {q(target.compute_capability)} ] || mismatch "GPU $GPU_NAME has compute capability '
            f'$GPU_CC, target "{q(target.name + " is " + target.compute_capability)}'
        )
    lines += [
        'echo "GPU $GPU_NAME (compute capability $GPU_CC)"',
        "",
        "# 4. One engine per graph. TensorRT 11 is always strongly typed (precision comes from the graph), 10.x with",
        "#    EDGEKIT_STRONGLY_TYPED=1 too, and always for Q/DQ graphs that also compute in float16 (their Casts",
        "#    decide those layers' precision); otherwise 10.x takes precision flags. Float32 engines keep TF32 off.",
        'if [ "$TRT_MAJOR" -ge 11 ] || [ "$STRONGLY_TYPED" = 1 ]; then TYPED=strong; else TYPED=weak; fi',
        'mkdir -p "$ENGINE_DIR"',
        'if ! private_dir "$CACHE_DIR"; then',
        '  echo "warning: the timing-cache folder $CACHE_DIR is a link, not yours or writable by others; building '
        'without a timing cache (make it yours and private: chmod 700, or set EDGEKIT_CACHE_DIR)" >&2; CACHE_DIR=""',
        "fi",
        'cache_file() { echo "$CACHE_DIR/$(printf \'%s|%s|%s|%s\' "$1" "$TRT_VERSION" "$GPU_NAME" "$GPU_CC" '
        '| sha256sum | cut -c1-32).cache"; }',
    ]
    for g in recipe.graphs:
        weak, strong10, strong11 = (
            " ".join(q(f) for f in flags)
            for flags in (g.trtexec_weak_flags(), g.trtexec_strong_flags(10), g.trtexec_strong_flags(11))
        )
        shape_flags = " ".join(q(f) for f in g.trtexec_shape_flags())
        mismatch = g.strong_mismatch()
        lines += [
            "",
            f"echo building {q(g.engine)} from {q(g.onnx)} {q(f'({g.label()})')}",
            (
                f'if [ "$TRT_MAJOR" -ge 11 ]; then PREC=({strong11}); else PREC=({strong10}); fi  # strongly typed'
                if g.strongly_typed
                else f'if [ "$TYPED" = weak ]; then PREC=({weak}); elif [ "$TRT_MAJOR" -ge 11 ]; then '
                f"PREC=({strong11}); else PREC=({strong10}); fi"
            ),
            *(
                [f'[ "$TYPED" = weak ] || echo "warning: TensorRT $TRT_VERSION, strongly typed: "{q(mismatch)} >&2']
                if mismatch
                else []
            ),
            f'FLAGS_{_ident(g.name)}="${{PREC[*]-}}"',
            f'TC=(); [ -z "$CACHE_DIR" ] || TC=(--timingCacheFile="$(cache_file {q(g.onnx_sha256)})")',
            "fresh ENGINE_TMP engine; fresh LOG_TMP log",
            f'"$TRTEXEC" --onnx="$ART"/{q(g.onnx)} --saveEngine="$ENGINE_TMP" \\',
            *([f"  {shape_flags} \\"] if shape_flags else []),
            '  ${PREC[@]+"${PREC[@]}"} '
            f'--memPoolSize=workspace:{int(recipe.workspace_mb)}M ${{TC[@]+"${{TC[@]}}"}} \\',
            f'  --skipInference > "$LOG_TMP" 2>&1 || {{ publish "$LOG_TMP" "$ENGINE_DIR/{_ident(g.name)}.build.log"; '
            f'die "trtexec failed on "{q(g.onnx)}"; see $ENGINE_DIR/{_ident(g.name)}.build.log"; }}',
            f'publish "$LOG_TMP" "$ENGINE_DIR/{_ident(g.name)}.build.log"',
            f'publish "$ENGINE_TMP" "$ENGINE_DIR"/{q(g.engine)}',
        ]
    recipe_json = json.dumps(recipe.to_dict(), sort_keys=True)
    lines += [
        "",
        "# 5. The engine manifest the runtime checks before loading (TensorRT version, GPU, hashes).",
        f"fresh TMP {ENGINE_MANIFEST}",
        "{",
        f'  printf \'{{\\n "schema_version": {ENGINE_SCHEMA_VERSION},\\n "target": "{_word(target.name)}",\\n '
        '"built_with": "trtexec",\\n\'',
        '  printf \' "tensorrt_version": "%s",\\n "gpu": {"name": "%s", "compute_capability": "%s"},\\n\' '
        '"$TRT_VERSION" "$(json_str "$GPU_NAME")" "$GPU_CC"',
        '  printf \' "l4t": "%s",\\n "strongly_typed": %s,\\n\' "$(json_str "$L4T")" '
        '"$([ "$TYPED" = strong ] && echo true || echo false)"',
        f'  printf \' "build_recipe_sha256": "{recipe.sha256()}",\\n "build_recipe": \'',
        "  cat <<'EDGEKIT_RECIPE'",
        recipe_json,
        "EDGEKIT_RECIPE",
        "  printf ' ,\"engines\": {\\n'",
    ]
    for i, g in enumerate(recipe.graphs):
        sep = "," if i < len(recipe.graphs) - 1 else ""
        fmt = (
            '  "%s": {"file": "%s", "onnx": "%s", "onnx_sha256": "%s", "engine_sha256": "%s", "engine_bytes": %s, '
            '"flags": "%s"}'
        )
        lines.append(
            f"  printf '{fmt}{sep}\\n' {_jq(g.name)} {_jq(g.engine)} {_jq(g.onnx)} {_jq(g.onnx_sha256)} "
            f'"$(sha "$ENGINE_DIR"/{q(g.engine)})" "$(wc -c < "$ENGINE_DIR"/{q(g.engine)} | tr -d \' \')" '
            f'"$(json_str "$FLAGS_{_ident(g.name)}")"'
        )
    lines += [
        "  printf ' }\\n}\\n'",
        '} > "$TMP"',
        f'publish "$TMP" "$ENGINE_DIR/{ENGINE_MANIFEST}"  # mktemp makes 0600: files get the umask\'s mode',
        f'echo "engines and {ENGINE_MANIFEST} written to $ENGINE_DIR"',
        "",
    ]
    return "\n".join(lines)


def _jq(text: str) -> str:
    """A value for the engine manifest's JSON, escaped for JSON and then quoted for bash (printf %s keeps it)."""
    return shlex.quote(json.dumps(str(text))[1:-1])


def _comment(text: str) -> str:
    """Text safe inside a bash comment line: no newline or other control character can end the comment."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _word(text: str) -> str:
    """A name spliced into a double-quoted bash string: only characters with no meaning to bash survive."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(text))


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
