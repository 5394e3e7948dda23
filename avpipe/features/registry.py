"""Extractor recipes by name: options, specs (cheap) and extractors (heavy, built lazily).

``spec_for(recipe, options)`` validates the options and returns the
:class:`~avpipe.features.base.ExtractorSpec` without importing torchvision or
building a model (the decode stage uses it for frame rates and sizes);
``build(recipe, options)`` imports the extractor module and builds the model.
An unknown recipe raises ``KeyError`` listing the known ones; an unknown or
ill-typed option raises :class:`~avpipe.config.ConfigError` naming it.

Recipes (defaults reproduce the features the papers used: the AVE release of
YapengTian/AVE-ECCV18 and the LLP scripts of YapengTian/AVVP-ECCV20):

=============== ======== ======================================== =======================
recipe          modality per segment                             reference
=============== ======== ======================================== =======================
vggish          audio    (128,) float32, post-ReLU, no PCA        AVE / LLP audio
vgg19_pool5     visual   (7, 7, 512) float16, mean of 16 frames   AVE visual
resnet152_maps  visual   (7, 7, 2048) float16, mean of 8 frames   AVE variant (CMRAN)
resnet152_llp   visual   (2048,) float32, mean of 8 frames at 8   LLP 2D; extra output
                         fps                                      ``frames`` (8, 2048)
r2plus1d18      visual   (512,) float32, one 8-frame 112x112 clip LLP 3D
=============== ======== ======================================== =======================

Options (every recipe; defaults per recipe in parentheses)
-----------------------------------------------------------
weights : str ("pretrained")
    ``pretrained`` = the recipe's reference weights (torchvision weight enum, or the
    converted VGGish release), read from the torch hub cache or downloaded;
    ``random`` = seeded random initialisation on purpose (tests, synthetic default);
    a local file path (a state dict in the torchvision / torchvggish layout); or an
    ``http(s)://`` URL fetched with ``torch.hub.load_state_dict_from_url``.
    Without network or cache, building raises ``WeightsUnavailableError``.
    Set ``AVPIPE_OFFLINE=1`` to never attempt a download.
seed : int (0)
    Seed of the random initialisation (``weights: random`` only); recorded as
    ``random(seed=N)``.
(There is no hop or window option: every recipe follows its dataset's segment grid,
``avpipe/io/grid.py``.  Segment t covers ``[t * hop, t * hop + window)``; visual recipes
sample their frames over the window, VGGish takes its 0.96-s patch at the segment start.)
dtype : "float16" | "float32" (maps float16, vectors float32)
    Store dtype; the extractor returns tensors in this dtype.
autocast : bool (visual true; vggish false)
    bf16 autocast when the device supports it (CUDA bf16, or a CPU with
    AVX512-BF16/AMX per ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``);
    otherwise fp32, logged.  Features stay within cosine >= 0.999 of fp32.
channels_last : bool (true)
    ``channels_last`` (``channels_last_3d`` for R(2+1)D) memory format.

Visual recipes only
-------------------
frames_per_segment : int (vgg19_pool5 16; resnet152_* 8; r2plus1d18 8)
    Frames sampled uniformly inside each segment's window, start-aligned
    (fps = frames_per_segment / window).
    2D recipes average per-frame outputs over them on the device; R(2+1)D takes them
    as one clip.
input_size : int (224; r2plus1d18 112)
    Network input side in pixels (square).  Smaller values (>= 32) keep tests fast;
    the spatial map side follows (7 at 224).
resize : "direct" | "shorter_crop" (vgg19_pool5 direct; resnet152_* shorter_crop;
    r2plus1d18 direct)
    ``direct``: resize the frame to input_size x input_size (Keras ``load_img``
    ``target_size`` convention; AVVP's R(2+1)D ``Resize((112, 112))``).
    ``shorter_crop``: shorter side to ``floor(input_size / 0.875)`` (256 at 224),
    centre crop (Cadene ``LoadTransformImage``, used for LLP's ResNet-152).

vggish only
-----------
backend : "torch" | "tfhub" ("torch")
    ``tfhub`` needs the ``tfhub`` extra (tensorflow, tensorflow_hub), imported lazily.
handle : str ("https://tfhub.dev/google/vggish/1")
    TF-Hub handle or local SavedModel directory (``backend: tfhub`` only).
postprocess : bool (false)
    Apply the AudioSet PCA + 8-bit quantisation (AVE/LLP did not).
pca_params : str ("pretrained")
    PCA parameters for ``postprocess``: ``pretrained`` (torchvggish release), a path or URL.
placement : "segment" | "contiguous" ("segment")
    ``segment``: the patch of segment t starts at t * hop (on the grid).  ``contiguous``:
    back-to-back 0.96-s patches (patch t starts at 0.96 t), what the released LLP
    features did; only for 1-s grids and clips of at most 10 s, recorded in the store.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from avpipe.config import ConfigError
from avpipe.features.base import Extractor, ExtractorSpec
from avpipe.io.grid import Grid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision R2Plus1D_18_Weights / AVVP script
KINETICS_STD = (0.22803, 0.22145, 0.216989)
VGGISH_SAMPLE_RATE = 16000
CONTIGUOUS_HOP_S = 0.96  # VGGish's own example hop (released LLP features)
CONTIGUOUS_MAX_SEGMENTS = 10
TFHUB_VGGISH = "https://tfhub.dev/google/vggish/1"
# The converted VGGish release (harritaylor/torchvggish hubconf.py; cited for the URLs only).
VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
VGGISH_PCA_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
    "vggish_pca_params-970ea276.pth"
)


@dataclass(frozen=True)
class Option:
    """One recipe option: its type (a Python type or a tuple of allowed strings)."""

    type: Any
    default: Any
    help: str


def _common(dtype: str, autocast: bool) -> dict[str, Option]:
    return {
        "weights": Option(
            str, "pretrained", "pretrained | random | local state-dict path | http(s) URL"
        ),
        "seed": Option(int, 0, "seed of the random initialisation (weights: random)"),
        "dtype": Option(("float16", "float32"), dtype, "store dtype of the outputs"),
        "autocast": Option(bool, autocast, "bf16 autocast where the device supports it"),
        "channels_last": Option(bool, True, "channels_last memory format"),
    }


def _visual(frames: int, size: int, resize: str, dtype: str) -> dict[str, Option]:
    return {
        **_common(dtype, True),
        "frames_per_segment": Option(int, frames, "frames sampled uniformly per segment"),
        "input_size": Option(int, size, "network input side in pixels (square)"),
        "resize": Option(
            ("direct", "shorter_crop"),
            resize,
            "direct: resize to input_size^2; shorter_crop: shorter side to "
            "floor(input_size/0.875), centre crop",
        ),
    }


# Width of the global-average-pooled output of each residual stage (the ``readout``).
READOUT_DIMS = {
    "resnet152_llp": {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048},
    "r2plus1d18": {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
}


def _readout() -> Option:
    # Why a shallower readout exists: with ``weights: random`` (zero_init_residual) every
    # residual branch is zero, so each stage reduces to its stride-2 1x1 shortcut conv, a
    # spatial subsampling; after layer4 the pooled vector sees a few 11-px patches of the
    # frame.  Measured on synth_llp (linear probe, visual segment macro-F1; all-positive
    # 0.32): ResNet-152 at 64 px GAP layer4 0.13, layer3 0.50, layer2 0.73.
    return Option(
        ("layer4", "layer3", "layer2", "layer1"),
        "layer4",
        "residual stage whose output is global-average-pooled (layer4 = the paper's "
        "features; shallower only for random weights, see READOUT_DIMS)",
    )


@dataclass(frozen=True)
class Recipe:
    """A registry entry: options with defaults, and where the extractor class lives."""

    name: str
    modality: str
    target: str  # "module:Class", imported by build()
    options: dict[str, Option] = field(default_factory=dict)
    reference_weights: str = ""  # the "pretrained" weights
    doc: str = ""


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "vggish",
            "audio",
            "avpipe.features.vggish:VGGishExtractor",
            {
                **_common("float32", False),
                "backend": Option(("torch", "tfhub"), "torch", "VGGish implementation"),
                "handle": Option(str, TFHUB_VGGISH, "TF-Hub handle or local dir (tfhub)"),
                "postprocess": Option(bool, False, "AudioSet PCA + 8-bit quantisation"),
                "pca_params": Option(str, "pretrained", "PCA params: pretrained | path | URL"),
                "placement": Option(
                    ("segment", "contiguous"),
                    "segment",
                    "segment: patch t at t*hop; contiguous: 0.96-s patches back to back "
                    "(released LLP features; 1-s grid, clips <= 10 s)",
                ),
            },
            "url:" + VGGISH_URL,
            "VGGish 128-d embedding after the last ReLU, one 0.96-s patch per segment",
        ),
        Recipe(
            "vgg19_pool5",
            "visual",
            "avpipe.features.visual:VGG19Pool5",
            _visual(16, 224, "direct", "float16"),
            "torchvision:VGG19_Weights.IMAGENET1K_V1",
            "VGG-19 pool5 maps averaged over the segment's frames (AVE)",
        ),
        Recipe(
            "resnet152_maps",
            "visual",
            "avpipe.features.visual:ResNet152Maps",
            _visual(8, 224, "shorter_crop", "float16"),
            "torchvision:ResNet152_Weights.IMAGENET1K_V1",
            "ResNet-152 layer4 maps averaged over the segment's frames (AVE variant)",
        ),
        Recipe(
            "resnet152_llp",
            "visual",
            "avpipe.features.visual:ResNet152LLP",
            {**_visual(8, 224, "shorter_crop", "float32"), "readout": _readout()},
            "torchvision:ResNet152_Weights.IMAGENET1K_V1",
            "ResNet-152 pooled 2048-d per frame at 8 fps, segment mean + per-frame (LLP)",
        ),
        Recipe(
            "r2plus1d18",
            "visual",
            "avpipe.features.visual:R2Plus1D18",
            {**_visual(8, 112, "direct", "float32"), "readout": _readout()},
            "torchvision:R2Plus1D_18_Weights.KINETICS400_V1",
            "R(2+1)D-18 (Kinetics-400) 512-d per 8-frame clip at 112x112, no crop (LLP)",
        ),
    )
}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(recipe: str) -> Recipe:
    if recipe not in RECIPES:
        raise KeyError(
            f"unknown extractor recipe {recipe!r}; known recipes: {', '.join(list_recipes())}"
        )
    return RECIPES[recipe]


def resolve_options(recipe: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``options``, type-checked; unknown keys raise naming the key."""
    r = get_recipe(recipe)
    options = dict(options or {})
    unknown = sorted(set(options) - set(r.options))
    if "hop_s" in unknown:
        raise ConfigError(
            f"extractor {recipe!r}: hop_s is not a recipe option any more; every recipe "
            "follows its dataset's segment grid (datasets.<name>.segment_hop / segment_win)"
        )
    if unknown:
        raise ConfigError(
            f"extractor {recipe!r}: unknown option(s) {unknown}; known: {sorted(r.options)}"
        )
    out: dict[str, Any] = {}
    for key, opt in r.options.items():
        value = options.get(key, opt.default)
        out[key] = _check(f"extractor {recipe!r} option {key!r}", opt, value)
    if r.modality == "visual":
        if out["frames_per_segment"] < 1:
            raise ConfigError(f"extractor {recipe!r}: frames_per_segment must be >= 1")
        if out["input_size"] < 32:
            raise ConfigError(
                f"extractor {recipe!r}: input_size must be >= 32 (five stride-2 stages)"
            )
    return out


def _check(where: str, opt: Option, value: Any) -> Any:
    if isinstance(opt.type, tuple):
        if value not in opt.type:
            raise ConfigError(f"{where}: {value!r} is not one of {list(opt.type)}")
        return value
    if opt.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if opt.type is int and isinstance(value, bool) or not isinstance(value, opt.type):
        raise ConfigError(f"{where}: expected {opt.type.__name__}, got {value!r}")
    return value


def weights_id(recipe: str, options: dict[str, Any], key: str = "weights") -> str:
    """The provenance string of the weights the options select (nothing is loaded)."""
    w = options[key]
    if w == "pretrained":
        return get_recipe(recipe).reference_weights
    if w == "random":
        return f"random(seed={options['seed']})"
    if w.startswith(("http://", "https://")):
        return f"url:{w}"
    return f"file:{w}"


def _vgg_side(n: int) -> int:
    for _ in range(5):  # five 2x2 max-pools, floor
        n //= 2
    return n


def _resnet_side(n: int) -> int:
    for _ in range(5):  # stem conv, max-pool, layer2-4: each ceil(n / 2)
        n = math.ceil(n / 2)
    return n


def spec_for(
    recipe: str, options: dict[str, Any] | None = None, grid: Grid | None = None
) -> ExtractorSpec:
    """The spec of ``recipe`` under ``options`` on the dataset's ``grid``; no model is built."""
    r = get_recipe(recipe)
    o = resolve_options(recipe, options)
    grid = grid or Grid()
    if r.modality == "audio":
        return _vggish_spec(r, o, grid)
    size = o["input_size"]
    if recipe == "vgg19_pool5":
        s = _vgg_side(size)
        out, extra = (s, s, 512), {}
    elif recipe == "resnet152_maps":
        s = _resnet_side(size)
        out, extra = (s, s, 2048), {}
    elif recipe == "resnet152_llp":
        d = READOUT_DIMS[recipe][o["readout"]]
        out, extra = (d,), {"frames": (o["frames_per_segment"], d)}
    else:
        out, extra = (READOUT_DIMS[recipe][o["readout"]],), {}
    kinetics = recipe == "r2plus1d18"
    crop = f"shorter={math.floor(size / 0.875)},center_crop={size}"
    return ExtractorSpec(
        name=recipe,
        modality="visual",
        window_s=grid.window_s,
        hop_s=grid.hop_s,
        output_shape=out,
        weights=weights_id(recipe, o),
        frames_per_segment=o["frames_per_segment"],
        input_size=(size, size),
        resize=f"direct={size}x{size}" if o["resize"] == "direct" else crop,
        mean=KINETICS_MEAN if kinetics else IMAGENET_MEAN,
        std=KINETICS_STD if kinetics else IMAGENET_STD,
        store_dtype=o["dtype"],
        extra_outputs=extra,
        details={
            "description": r.doc,
            "options": o,
            "interpolation": "bilinear, antialias",
            "aggregation": "clip" if kinetics else "mean over frames, on device",
            "random_init": "zero_init_residual" if o["weights"] == "random" else "",
            "grid": grid.as_attrs(),
            "frame_times": "t * hop + k * window / frames_per_segment, nearest source frame",
            **({"readout": f"global average pool of {o['readout']}"} if "readout" in o else {}),
        },
    )


def _vggish_spec(r: Recipe, o: dict[str, Any], grid: Grid) -> ExtractorSpec:
    from avpipe.features.melspec import PATCH_FRAMES, samples_per_patch

    n = samples_per_patch()
    contiguous = o["placement"] == "contiguous"
    if contiguous and abs(grid.hop_s - 1.0) > 1e-9:
        raise ConfigError(
            f"extractor {r.name!r}: placement contiguous reproduces the released LLP features "
            f"and needs a 1-s grid; this dataset's hop is {grid.hop_s} s"
        )
    weights = weights_id(r.name, o) if o["backend"] == "torch" else f"tfhub:{o['handle']}"
    return ExtractorSpec(
        name=r.name,
        modality="audio",
        # The network sees 96 STFT frames: 95 hops of 10 ms plus one 25-ms window.
        window_s=n / VGGISH_SAMPLE_RATE,
        hop_s=CONTIGUOUS_HOP_S if contiguous else grid.hop_s,
        output_shape=(128,),
        weights=weights,
        sample_rate=VGGISH_SAMPLE_RATE,
        store_dtype=o["dtype"],
        details={
            "description": r.doc,
            "options": o,
            "patch": f"{PATCH_FRAMES}x64 log-mel, 25 ms periodic Hann / 10 ms hop, 512-pt FFT, "
            "64 HTK mel bands 125-7500 Hz, log(mel + 0.01)",
            "samples_per_segment": n,
            "embedding": "post-ReLU" + (", PCA + uint8 quantised" if o["postprocess"] else ""),
            "pca_params": _pca_id(o["pca_params"]) if o["postprocess"] else "",
            "grid": grid.as_attrs(o["placement"]),
            "patch_start": "0.96 * t (contiguous, released LLP features)"
            if contiguous
            else "t * hop (the segment's start)",
        },
    )


def _pca_id(value: str) -> str:
    if value == "pretrained":
        return "url:" + VGGISH_PCA_URL
    return f"url:{value}" if value.startswith(("http://", "https://")) else f"file:{value}"


def build(
    recipe: str, options: dict[str, Any] | None = None, grid: Grid | None = None
) -> Extractor:
    """The extractor of ``recipe`` (imports torchvision etc. only now; loads weights)."""
    spec = spec_for(recipe, options, grid)
    module, cls = get_recipe(recipe).target.split(":")
    return getattr(importlib.import_module(module), cls)(spec, spec.details["options"])


def describe(recipe: str) -> dict[str, dict[str, Any]]:
    """Option table of ``recipe`` (for schemas and docs): name -> type, default, help."""
    return {
        k: {
            "type": list(o.type) if isinstance(o.type, tuple) else o.type.__name__,
            "default": o.default,
            "help": o.help,
        }
        for k, o in get_recipe(recipe).options.items()
    }
