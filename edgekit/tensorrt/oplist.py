"""What TensorRT's ONNX parser accepts: ops, the tensor types each takes, and the restrictions a static check can test.

Data, not code. Sources (read from public snapshots; no copy of parser code):
  * onnx/onnx-tensorrt @ 96e78110 ("ONNX-TensorRT 10.1 GA release"), docs/operators.md -- the newest parser operator
    table stored; there is no 10.2/10.3 branch in that repository. Transcribed below (one typo fixed:
    ConstantOfShape's "INF64" is INT64).
  * NVIDIA/TensorRT @ a892d222, CHANGELOG.md -- parser changes from 10.2 to 11.1 (ADDED_IN, RELAXED_IN). 10.2 changed
    no operator; 10.3 (JetPack 6) added tensor `axes` for Slice.
  * onnx/onnx-tensorrt @ 96e78110, onnxOpImporters.cpp (Loop, If, QuantizeLinear/DequantizeLinear importers) -- the
    Loop, If and Q/DQ rules that edgekit.tensorrt.check applies (summarised in comments below); no parser code is used.
TensorRT 10.0-10.3 parse ONNX opset 9 to 20 (operators.md header).
"""

from __future__ import annotations

MIN_OPSET = 9

# Tensor types TensorRT takes at all (operators.md header). DOUBLE has "limited support": it is cast down to FLOAT,
# clamping to +-FLT_MAX. INT8, INT4 and FP8 are "Quantized Types": only reachable through Q/DQ from a wider float.
# UINT8 "is only supported as network input or output tensor types".
TRT_TYPES = frozenset({"FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "UINT8", "BOOL", "FP8", "INT4", "DOUBLE"})
QUANTIZED_TYPES = frozenset({"INT8", "INT4", "FP8"})

# ONNX TensorProto.DataType name -> the name the operator table uses.
ONNX_TO_TRT = {
    "FLOAT": "FP32",
    "FLOAT16": "FP16",
    "BFLOAT16": "BF16",
    "DOUBLE": "DOUBLE",
    "INT32": "INT32",
    "INT64": "INT64",
    "INT8": "INT8",
    "UINT8": "UINT8",
    "BOOL": "BOOL",
    "FLOAT8E4M3FN": "FP8",
    "INT4": "INT4",
}

# op -> tensor types of its data input ("Supported Types" column of operators.md, TensorRT 10.1 GA).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "Abs": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Acos": ("FP32", "FP16", "BF16"),
    "Acosh": ("FP32", "FP16", "BF16"),
    "Add": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "And": ("BOOL",),
    "ArgMax": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ArgMin": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Asin": ("FP32", "FP16", "BF16"),
    "Asinh": ("FP32", "FP16", "BF16"),
    "Atan": ("FP32", "FP16", "BF16"),
    "Atanh": ("FP32", "FP16", "BF16"),
    "AveragePool": ("FP32", "FP16", "BF16"),
    "BatchNormalization": ("FP32", "FP16", "BF16"),
    "Cast": ("FP32", "FP16", "BF16", "INT32", "INT64", "UINT8", "BOOL"),
    "CastLike": ("FP32", "FP16", "BF16", "INT32", "INT64", "UINT8", "BOOL"),
    "Ceil": ("FP32", "FP16", "BF16"),
    "Celu": ("FP32", "FP16", "BF16"),
    "Clip": ("FP32", "FP16", "BF16"),
    "Concat": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Constant": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "ConstantOfShape": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Conv": ("FP32", "FP16", "BF16"),
    "ConvTranspose": ("FP32", "FP16", "BF16"),
    "Cos": ("FP32", "FP16", "BF16"),
    "Cosh": ("FP32", "FP16", "BF16"),
    "CumSum": ("FP32", "FP16", "BF16"),
    "DeformConv": ("FP32", "FP16"),
    "DepthToSpace": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "DequantizeLinear": ("INT8", "FP8", "INT4"),
    "Div": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Dropout": ("FP32", "FP16", "BF16"),
    "Einsum": ("FP32", "FP16", "BF16"),
    "Elu": ("FP32", "FP16", "BF16"),
    "Equal": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Erf": ("FP32", "FP16", "BF16"),
    "Exp": ("FP32", "FP16", "BF16"),
    "Expand": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "EyeLike": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Flatten": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Floor": ("FP32", "FP16", "BF16"),
    "Gather": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "GatherElements": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "GatherND": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Gelu": ("FP32", "FP16", "BF16", "INT8", "INT32", "INT64"),
    "Gemm": ("FP32", "FP16", "BF16"),
    "GlobalAveragePool": ("FP32", "FP16", "BF16"),
    "GlobalLpPool": ("FP32", "FP16", "BF16"),
    "GlobalMaxPool": ("FP32", "FP16", "BF16"),
    "Greater": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "GreaterOrEqual": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "GridSample": ("FP32", "FP16"),
    "GroupNormalization": ("FP32", "FP16", "BF16"),
    "GRU": ("FP32", "FP16", "BF16"),
    "HardSigmoid": ("FP32", "FP16", "BF16"),
    "HardSwish": ("FP32", "FP16", "BF16"),
    "Hardmax": ("FP32", "FP16", "BF16"),
    "Identity": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "If": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "ImageScaler": ("FP32", "FP16", "BF16"),
    "InstanceNormalization": ("FP32", "FP16", "BF16"),
    "IsInf": ("FP32", "FP16", "BF16"),
    "IsNaN": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "LayerNormalization": ("FP32", "FP16", "BF16"),
    "LeakyRelu": ("FP32", "FP16", "BF16"),
    "Less": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "LessOrEqual": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Log": ("FP32", "FP16", "BF16"),
    "LogSoftmax": ("FP32", "FP16", "BF16"),
    "Loop": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "LRN": ("FP32", "FP16", "BF16"),
    "LSTM": ("FP32", "FP16", "BF16"),
    "LpNormalization": ("FP32", "FP16", "BF16"),
    "LpPool": ("FP32", "FP16", "BF16"),
    "MatMul": ("FP32", "FP16", "BF16"),
    "Max": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "MaxPool": ("FP32", "FP16", "BF16"),
    "Mean": ("FP32", "FP16", "BF16", "FP8", "INT32", "INT64"),
    "MeanVarianceNormalization": ("FP32", "FP16", "BF16"),
    "Min": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Mish": ("FP32", "FP16"),
    "Mod": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Mul": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Neg": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "NonMaxSuppression": ("FP32", "FP16"),
    "NonZero": ("FP32", "FP16"),
    "Not": ("BOOL",),
    "OneHot": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Or": ("BOOL",),
    "Pad": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ParametricSoftplus": ("FP32", "FP16", "BF16"),
    "Pow": ("FP32", "FP16", "BF16"),
    "PRelu": ("FP32", "FP16", "BF16"),
    "QuantizeLinear": ("FP32", "FP16", "BF16"),
    "RandomNormal": ("FP32", "FP16", "BF16"),
    "RandomNormalLike": ("FP32", "FP16", "BF16"),
    "RandomUniform": ("FP32", "FP16", "BF16"),
    "RandomUniformLike": ("FP32", "FP16", "BF16"),
    "Range": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Reciprocal": ("FP32", "FP16", "BF16"),
    "ReduceL1": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceL2": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceLogSum": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceLogSumExp": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceMax": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceMean": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceMin": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceProd": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceSum": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ReduceSumSquare": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Relu": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Reshape": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Resize": ("FP32", "FP16", "BF16"),
    "ReverseSequence": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "RNN": ("FP32", "FP16", "BF16"),
    "RoiAlign": ("FP32", "FP16"),
    "Round": ("FP32", "FP16", "BF16"),
    "ScaledTanh": ("FP32", "FP16", "BF16"),
    "Scan": ("FP32", "FP16", "BF16"),
    "Scatter": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ScatterElements": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "ScatterND": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Selu": ("FP32", "FP16", "BF16"),
    "Shape": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Shrink": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Sigmoid": ("FP32", "FP16", "BF16"),
    "Sign": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Sin": ("FP32", "FP16", "BF16"),
    "Sinh": ("FP32", "FP16", "BF16"),
    "Size": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Slice": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Softmax": ("FP32", "FP16", "BF16"),
    "Softplus": ("FP32", "FP16", "BF16"),
    "Softsign": ("FP32", "FP16", "BF16"),
    "SpaceToDepth": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Split": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Sqrt": ("FP32", "FP16", "BF16"),
    "Squeeze": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Sub": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Sum": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Tan": ("FP32", "FP16", "BF16"),
    "Tanh": ("FP32", "FP16", "BF16"),
    "ThresholdedRelu": ("FP32", "FP16", "BF16"),
    "Tile": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "TopK": ("FP32", "FP16", "BF16", "INT32", "INT64"),
    "Transpose": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Trilu": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Unsqueeze": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Upsample": ("FP32", "FP16", "BF16"),
    "Where": ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL"),
    "Xor": ("BOOL",),
}

# Ops operators.md marks "N" (unsupported). Any op in neither table (and any non-default domain) is unknown to the
# parser.
UNSUPPORTED = frozenset(
    {
        "AffineGrid",
        "Bernoulli",
        "BitShift",
        "BitwiseAnd",
        "BitwiseNot",
        "BitwiseOr",
        "BitwiseXor",
        "BlackmanWindow",
        "Col2Im",
        "CenterCropPad",
        "Compress",
        "ConcatFromSequence",
        "ConvInteger",
        "DFT",
        "Det",
        "DynamicQuantizeLinear",
        "HammingWindow",
        "HannWindow",
        "ImageDecoder",
        "MatMulInteger",
        "MaxRoiPool",
        "MaxUnpool",
        "MelWeightMatrix",
        "Multinomial",
        "NegativeLogLikelihoodLoss",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
        "QLinearConv",
        "QLinearMatMul",
        "RegexFullMatch",
        "STFT",
        "SequenceAt",
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceErase",
        "SequenceInsert",
        "SequenceLength",
        "SequenceMap",
        "SoftmaxCrossEntropyLoss",
        "SplitToSequence",
        "StringConcat",
        "StringNormalizer",
        "StringSplit",
        "TfIdfVectorizer",
        "Unique",
    }
)

# The "Restrictions" column, verbatim: printed next to a finding so the user sees NVIDIA's wording.
RESTRICTIONS: dict[str, str] = {
    "AveragePool": "2D or 3D Pooling only. `dilations` must be empty or all ones",
    "Constant": "`sparse_value`, `value_string`, and `value_strings` attributes are unsupported.",
    "CumSum": "`axis` must be an initializer",
    "DeformConv": (
        "`input` must have 1D or 2D spatial dimensions. "
        "`pads` for the beginning and end along each spatial axis must be the same"
    ),
    "DequantizeLinear": "`x_zero_point` must be zero",
    "Dropout": "`is_traning` must be an initializer and evaluate to False.",
    "EyeLike": "`input` must have static dimensions",
    "GridSample": "Input must be 4D input.",
    "GRU": "For bidirectional GRUs, activation functions must be the same for both the forward and reverse pass",
    "Hardmax": "`axis` dimension of input must be a build-time constant",
    "If": "Output tensors of the two conditional branches must have the same rank and must have different names",
    "LayerNormalization": "Only the first output `Y` is supported.",
    "Loop": (
        "Scan output length cannot be dynamic. "
        "The shape of Loop carried dependencies must be the same across all loop iterations."
    ),
    "LSTM": (
        "For bidirectional LSTMs, activation functions must be the same for both the forward and reverse pass. "
        "`input_forget` attribute must be 0. `layout` attribute must be 0."
    ),
    "LpPool": "`dilations` must be empty or all ones",
    "MaxPool": "2D or 3D pooling only. `Indices` output tensor unsupported. `dilations` must be empty or all ones",
    "OneHot": "`depth` must be a build-time constant",
    "Pad": "`axes` must be an initializer",
    "QuantizeLinear": "`y_zero_point` must be 0",
    "RandomNormal": "`seed` value is ignored by TensorRT",
    "RandomNormalLike": "`seed` value is ignored by TensorRT",
    "RandomUniform": "`seed` value is ignored by TensorRT",
    "RandomUniformLike": "`seed` value is ignored by TensorRT",
    "ReduceL1": "`axes` must be an initializer",
    "ReduceL2": "`axes` must be an initializer",
    "ReduceLogSum": "`axes` must be an initializer",
    "ReduceLogSumExp": "`axes` must be an initializer",
    "ReduceMax": "`axes` must be an initializer",
    "ReduceMean": "`axes` must be an initializer",
    "ReduceMin": "`axes` must be an initializer",
    "ReduceProd": "`axes` must be an initializer",
    "ReduceSum": "`axes` must be an initializer",
    "ReduceSumSquare": "`axes` must be an initializer",
    "Resize": (
        "Supported resize transformation modes: `half_pixel`, `pytorch_half_pixel`, `tf_half_pixel_for_nn`, "
        "`asymmetric`, and `align_corners`."
        "<br />Supported resize modes: `nearest`, `linear`."
        "<br />Supported nearest modes: `floor`, `ceil`, `round_prefer_floor`, `round_prefer_ceil`."
        "<br />Supported aspect ratio policy: `stretch`."
        "<br />When `scales` is a tensor input, `axes` must be an iota vector of length rank(input)."
        "<br />Antialiasing is not supported."
    ),
    "RNN": "For bidirectional RNNs, activation functions must be the same for both the forward and reverse pass",
    "ScatterND": "`reduction` is not supported",
    "Slice": "`axes` must be an initializer",
    "Squeeze": "`axes` must be an initializer",
    "TopK": "`sorted` must be 1. `K` input must be less than 3840.",
    "Unsqueeze": "`axes` must be a constant tensor",
}

# Parser support added after 10.1 (NVIDIA/TensorRT CHANGELOG.md): op -> first TensorRT version that parses it.
ADDED_IN: dict[str, tuple[int, int]] = {
    "BlackmanWindow": (10, 4),
    "HammingWindow": (10, 4),
    "HannWindow": (10, 4),  # 10.4 GA
    "STFT": (10, 5),  # 10.5 GA, real-valued only
    "Attention": (10, 14),  # toolchain.md §0.3 (CHANGELOG)
    "RMSNormalization": (10, 15),
    "RotaryEmbedding": (10, 15),
    "TensorScatter": (10, 15),  # 10.15 GA
    "Swish": (11, 0),  # 11.0 GA
}

# Inputs that must be build-time constants (an initializer or a Constant node): op -> {input index: input name}.
# From the Restrictions column ("`axes` must be an initializer", "`depth` must be a build-time constant", ...).
CONSTANT_INPUTS: dict[str, dict[int, str]] = {
    **{
        op: {1: "axes"}
        for op in (
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
        )
    },
    "Slice": {3: "axes"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "Pad": {3: "axes"},
    "CumSum": {1: "axis"},
    "OneHot": {1: "depth"},
    "Dropout": {2: "training_mode"},
}

# A constant-input rule lifted in a later release: (op, input name) -> version (CHANGELOG.md: 10.3 "tensor `axes`
# inputs for Slice", 10.4 "tensor `axes` for Pad").
RELAXED_IN: dict[tuple[str, str], tuple[int, int]] = {("Slice", "axes"): (10, 3), ("Pad", "axes"): (10, 4)}

# Attribute values the parser accepts (Restrictions column): op -> {attribute: allowed values}.
ATTRIBUTE_VALUES: dict[str, dict[str, frozenset]] = {
    "TopK": {"sorted": frozenset({1})},
    "LSTM": {"input_forget": frozenset({0}), "layout": frozenset({0})},
    "ScatterND": {"reduction": frozenset({b"none"})},
    "Resize": {
        "antialias": frozenset({0}),
        "mode": frozenset({b"nearest", b"linear"}),
        "coordinate_transformation_mode": frozenset(
            {b"half_pixel", b"pytorch_half_pixel", b"tf_half_pixel_for_nn", b"asymmetric", b"align_corners"}
        ),
        "nearest_mode": frozenset({b"floor", b"ceil", b"round_prefer_floor", b"round_prefer_ceil"}),
        "keep_aspect_ratio_policy": frozenset({b"stretch"}),
    },
}
# Attributes that must be absent or all ones ("`dilations` must be empty or all ones").
ALL_ONES_ATTRIBUTES: dict[str, str] = {"AveragePool": "dilations", "MaxPool": "dilations", "LpPool": "dilations"}
# Attributes the parser refuses outright (Constant: "`sparse_value`, `value_string`, and `value_strings`").
FORBIDDEN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "Constant": frozenset({"sparse_value", "value_string", "value_strings"})
}
# Only the first N outputs may be used (LayerNormalization: "Only the first output `Y`"; MaxPool: no `Indices`).
MAX_USED_OUTPUTS: dict[str, int] = {"LayerNormalization": 1, "MaxPool": 1}
TOPK_MAX_K = 3840  # TopK: "`K` input must be less than 3840"

# Loop: carried values become IRecurrenceLayers, M becomes an INT32 kCOUNT trip limit (an int64 M >= INT32_MAX is
# treated as absent), cond a kWHILE limit; scan outputs are concatenated to length M, or to a dummy 1024 when M is
# absent ("the scan outputs must not be used in the rest of the model"). operators.md: "Scan output length cannot be
# dynamic. The shape of Loop carried dependencies must be the same across all loop iterations." A recurrence output
# cannot feed a shape input (onnx/onnx-tensorrt#670).
INT32_MAX = 2**31 - 1
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "ConstantOfShape": (0,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Range": (0, 1, 2),
    "Resize": (3,),
    "OneHot": (1,),
}

# Q/DQ (QuantizeLinear/DequantizeLinear importer): zero point must be all zeros ("TensorRT only supports symmetric
# quantization"); a UINT8 zero point is silently turned into INT8 with the same scale (the upper half of the uint8
# range is lost); with no zero point ONNX means UINT8 while TensorRT uses INT8; scales must be positive constants of
# static shape; only INT8, FP8 (E4M3FN) and INT4 are quantized types.
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
