"""Typed settings of the unsupervised method (CLCL, Bao et al., AAAI 2023).

Defaults are the paper's values for real data and, where the paper is silent,
avpipe's own choice, marked [REC]; ``config/config.yaml`` shortens the schedules for the
synthetic default.  Each stage receives only its slice (``data`` + its own section),
so that changing the EM settings does not rerun pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DataConfig:
    """Which features to read and how (shared by every stage)."""

    visual_recipe: str = "vgg19_pool5"
    audio_recipe: str = "vggish"
    # number of pseudo-classes C; "auto" = the dataset's number of classes
    n_pseudo_classes: int | Literal["auto"] = "auto"
    # split whose videos train every stage; "auto" = train, else unlabeled (folder adapter)
    train_split: str = "auto"
    # which of its videos: all, or only those whose annotation has an event (AVE's train
    # split has an event in every video; the background-only videos of AVE's weak setting,
    # labels_noisy.h5, are a separate set, which the synthetic benchmark puts in train)
    train_videos: Literal["all", "with_event"] = "all"
    # one budget for the stage's features: what does not fit streams from Zarr
    memory_budget_mb: int = 4096
    loader_workers: int = 2  # processes that read streamed batches ahead
    # [REC] z-score visual channels and audio dims with train-split statistics (not in
    # the paper); needed when the extractor's scale is tiny or off-centre (random weights)
    standardize: bool = False
    device: str = "auto"
    # torch CPU threads; the rules pass their `threads` (1 measured ~8x faster than 2
    # on a shared 2-core box: these models are too small to gain from intra-op threads)
    num_threads: int = 1


@dataclass(frozen=True)
class EncoderConfig:
    """Collaborative encoder (paper Eqs. 1-5)."""

    d_model: int = 512
    heads: int = 4
    # paper: w^T(h_a * h_v) softmax; tanh: CMRAN-style tanh before softmax; mean: "w/o s-attn"
    spatial_attention: Literal["paper", "tanh", "mean"] = "paper"
    audio2visual: bool = True  # False = visual self-attention ("w/o audio2visual", Table 3)
    visual2audio: bool = True
    residual_norm: bool = True  # [REC] residual + LayerNorm around cross-attention
    dropout: float = 0.0


@dataclass(frozen=True)
class PretrainConfig:
    """Stage A: instance discrimination + soft decorrelation (paper Eqs. 6-7)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    memory_momentum: float = 0.9  # m_i <- norm(mu m_i + (1 - mu) x_i)
    temperature: float = 1.0  # tau of the non-parametric softmax (Eq. 6)
    decorrelation_temperature: float = 2.0  # tau_2 of the soft decorrelation (IDFD)
    weight_decorrelation: float = 1.0
    weight_instance_audio: float = 1.0
    weight_instance_visual: float = 1.0
    feature_dropout: float = 0.0  # [REC] optional input augmentation
    log_every: int = 20


@dataclass(frozen=True)
class SelflabelConfig:
    """Stage B: annotator with label contrast and marginal entropy (paper Eqs. 9-13)."""

    hidden: int = 512
    top_k: int = 30
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # ceiling of each repulsion KL (unbounded in the paper): "log_c" = log C, a
    # number, or null = unbounded as printed in the paper
    repulsion_clip: float | Literal["log_c"] | None = "log_c"
    # how the ceiling bounds: hard clip (no gradient above) or c * tanh(KL / c)
    repulsion_bound: Literal["clip", "tanh"] = "tanh"
    # sum over the K neighbours as printed, or mean (keeps L_e from being diluted by 1/K)
    neighbour_reduction: Literal["sum", "mean"] = "mean"
    # annotator initialisation of every E-step: "seeded" = fresh from the run seed and
    # round; "previous" = warm start from round k-1's annotator; "kmeans" = seeded, then
    # fitted for init_epochs to the k-means partition of the E-step's features before the
    # label contrast [REC], stage B's annotator included (otherwise stage B is seeded)
    init: Literal["seeded", "previous", "kmeans"] = "seeded"
    init_epochs: int = 20
    # [REC] annotators trained per E-step from different seeds; the one with the lowest
    # label-contrast objective over all videos is kept (k-means' n_init; no labels read)
    restarts: int = 1
    # [REC] which restart is kept: "objective" = the lowest L_c + L_e (k-means' n_init);
    # "consensus" = the medoid partition, highest mean NMI of its pseudo-labels to the
    # other restarts' (best-of-K consensus, Goder and Filkov 2008): on the synthetic
    # benchmark the objective does not rank the restarts' partitions, their agreement does
    restart_choice: Literal["objective", "consensus"] = "objective"
    entropy_weight: float = 1.0
    # [REC] scale of the visual half of f = [a; w v] seen by the annotator (neighbour sets
    # and Phi); 1.0 = the paper.  Lower it when the visual features carry little class
    # information (random-weight extractors): their noise otherwise swamps the audio half
    visual_weight: float = 1.0
    # maximize: L_e = -H(mean p) (paper Eq. 10 with its sign flipped, avpipe's choice);
    # paper: +H as printed (collapses)
    entropy_sign: Literal["maximize", "paper"] = "maximize"
    log_every: int = 20


@dataclass(frozen=True)
class EMConfig:
    """Stage C: MIL localizer (M-step) and the E-steps of rounds >= 2 (paper Eqs. 14-17)."""

    rounds: int = 3
    epochs: int = 50
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 5e-4
    dropout: float = 0.1
    targets: Literal["hard", "soft"] = "hard"
    # every round's localizer starts from stage A's encoder with fresh, seeded heads
    # ("pretrain", avpipe's choice [REC]) or warm-starts from round k-1's localizer ("previous")
    init: Literal["pretrain", "previous"] = "pretrain"
    finetune_encoder: bool = True
    # E-step of round k >= 2: annotator epochs
    annotator_epochs: int = 200
    # features the E-step pools with round k-1's gamma: the stage-A encoder's ("pretrain",
    # the space the annotator was trained in) or the fine-tuned localizer encoder's
    estep_features: Literal["pretrain", "localizer"] = "pretrain"
    # permute round k's pseudo-classes to best match round k-1's (Hungarian on the
    # contingency table) so pseudo-class ids stay stable across rounds
    align_labels: bool = True
    # after the M-step, reverse gamma when its reverse pools the input features into
    # more separable pseudo-classes ("separability"), or keep it as trained ("none")
    gamma_orientation: Literal["separability", "none"] = "separability"
    # segment t is foreground iff gamma_t >= 1/T (uniform) or gamma_t / max gamma >= threshold
    foreground_rule: Literal["uniform", "relative"] = "uniform"
    relative_threshold: float = 0.5
    log_every: int = 20


@dataclass(frozen=True)
class PretrainStage:
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


@dataclass(frozen=True)
class SelflabelStage:
    data: DataConfig = field(default_factory=DataConfig)
    selflabel: SelflabelConfig = field(default_factory=SelflabelConfig)


@dataclass(frozen=True)
class EMStage:
    data: DataConfig = field(default_factory=DataConfig)
    selflabel: SelflabelConfig = field(default_factory=SelflabelConfig)
    em: EMConfig = field(default_factory=EMConfig)
