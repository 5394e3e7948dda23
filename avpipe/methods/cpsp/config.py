"""Typed settings of PSP / CPSP / SSPSP (PSP, CVPR 2021; CPSP, arXiv 2211.09980).

Defaults are the released CPSP scripts' values for AVE (jasongief/CPSP
``cpsp_avel/run_fully_supv.sh``, with the flags the script means to pass: a trailing
space after a line continuation drops them); ``config/config.yaml`` shortens the
schedule for the synthetic default.  One *experiment* = one setting (full / weak), one head and
one set of loss weights; PSP is CPSP with the contrastive weights at zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from avpipe.training.loop import LoopConfig, OptimizerConfig, ScheduleConfig


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: CPSP's ``run_fully_supv.sh``)."""

    epochs: int = 45
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (10, 20, 30)  # after this many epochs, lr *= lr_gamma
    lr_gamma: float = 0.5
    grad_clip: float | None = 0.1  # max L2 norm of all gradients; null = no clipping
    # equal val accuracies keep the first epoch (the released CPSP scripts compare with >)
    ties: Literal["first", "last"] = "first"
    log_every: int = 50  # steps between progress log lines

    def loop(self) -> LoopConfig:
        """Adam + multi-step decay, selected on val segment accuracy (``accuracy``)."""
        return LoopConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=OptimizerConfig("adam", self.lr, weight_decay=self.weight_decay),
            schedule=ScheduleConfig("multistep", tuple(self.milestones), gamma=self.lr_gamma),
            grad_clip=self.grad_clip,
            select="accuracy",
            ties=self.ties,
            log_every=self.log_every,
        )


@dataclass(frozen=True)
class DataConfig:
    """Which features to read and how."""

    visual_recipe: str = "vgg19_pool5"  # maps (N, T, H, W, C); H, W, C read from the store
    audio_recipe: str = "vggish"  # vectors (N, T, D)
    # per-channel z-scoring with train-split statistics (random-weight synthetic features
    # have arbitrary scales; real VGG/VGGish features are used raw, as in the papers)
    standardize: bool = False
    evaluate_split: Literal["val", "test"] = "test"  # split written to predictions.npz
    # one budget for the stage's splits: what does not fit streams from Zarr
    memory_budget_mb: int = 4096
    loader_workers: int = 2  # processes that read streamed batches ahead
    device: str = "auto"
    num_threads: int = 2


@dataclass(frozen=True)
class ModelConfig:
    """PSP backbone widths (jasongief/CPSP ``psp_family.py``); paper values for VGG-19 + VGGish."""

    audio_hidden: int = 256  # a' = FC(FC(a)): D_a -> 256 -> 128
    embed: int = 128  # width of a' and v' (LSTM input)
    attention_hidden: int = 512  # AVGA hidden width
    visual_hidden: int = 256  # v' = FC(FC(v_att)): C_v -> 256 -> 128
    lstm_hidden: int = 128  # per direction; PSP width d = 2 * lstm_hidden
    dropout: float = 0.1
    segment_hidden: int = 64  # original PSP head: FC(d -> 64) -> ReLU -> FC(64 -> C+1)


@dataclass(frozen=True)
class LossWeights:
    """Total loss = L_cls + avpsp*L_avpsp + spsa*L_spsa + vpsa*L_vpsa + ss*L_ss."""

    avpsp: float = 100.0
    spsa: float = 0.01
    vpsa: float = 1.0
    ss: float = 0.0


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment of the method (a column of the papers' tables)."""

    setting: Literal["full", "weak"] = "full"
    # cpsp: event gate e_t + video category logits (CPSP, CMRAN); psp: per-segment C+1 scores
    # of the original PSP (weak: temporal weights on the segment scores)
    head: Literal["cpsp", "psp"] = "cpsp"
    weights: LossWeights = field(default_factory=LossWeights)
    # PSP pruning threshold tau; null = 0.099 (full) / 0.095 (weak), just below 1/T = 0.1
    psp_threshold: float | None = None
    # intended: event vs background InfoNCE (non-zero gradient); released_noop: the
    # released function, a constant with zero gradient (jasongief/CPSP ``cpsp_avel/losses.py``)
    spsa_impl: Literal["intended", "released_noop"] = "intended"
    spsa_temperature: float = 0.6
    # batch-hard triplet; null = released defaults (full: 0.2 / 3, weak: 0.6 / 4)
    vpsa_margin: float | None = None
    vpsa_negatives: int | None = None
    ss_temperature: float = 0.1
    # the category of a video with several event classes (L_cls's CE, L_vpsa): largest =
    # the largest class index, as the released scripts; most_frequent = avpipe's earlier rule
    video_class: Literal["largest", "most_frequent"] = "largest"
    # weak video labels of the cpsp head: cpsp = C columns (jasongief/CPSP
    # AVE_dataset_weak.py drops mil_labels.h5's background column), so a background-only
    # video's label is all zero; background_column = C+1 columns with background-only
    # videos labelled background, the category head then scores C+1 classes (AVE's weak
    # setting, labels_noisy.h5: AVEL, Tian et al. ECCV 2018; FloretCat/CMRAN weakly_main.py).
    # The psp head always has the background column (jasongief/PSP_CVPR_2021).
    weak_labels: Literal["cpsp", "background_column"] = "cpsp"
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def threshold(self) -> float:
        if self.psp_threshold is not None:
            return self.psp_threshold
        return 0.099 if self.setting == "full" else 0.095

    @property
    def margin(self) -> float:
        if self.vpsa_margin is not None:
            return self.vpsa_margin
        return 0.2 if self.setting == "full" else 0.6

    @property
    def negatives(self) -> int:
        if self.vpsa_negatives is not None:
            return self.vpsa_negatives
        return 3 if self.setting == "full" else 4


@dataclass(frozen=True)
class CpspStage:
    """What ``avpipe cpsp`` receives: the experiment resolved for one dataset."""

    experiment: str = "cpsp_full"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    run: ExperimentConfig = field(default_factory=ExperimentConfig)
