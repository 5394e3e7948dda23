"""Stage B of CLCL: self-labelling by label contrast (paper Eqs. 9-13).

The video representations ``f_i`` (N, 2d) are fixed during annotator training.
Affinity set A_i = the K most cosine-similar other videos, repulsion set R_i = the K
least similar; both recomputed at every E-step.  Phi is trained with SGD + cosine
decay on ``L_c + w_e L_e`` in :mod:`avpipe.training.loop`; pseudo-labels are
``Z_i = Phi(f_i)``.
:func:`fit_annotator` trains ``selflabel.restarts`` annotators (restart r from seed
``seed + 7919 r``) and keeps, by ``selflabel.restart_choice``, the one with the lowest
label-contrast objective over all videos (:func:`objective`), as k-means keeps the
lowest inertia of its ``n_init`` runs, or the consensus restart, whose partition agrees
most (mean NMI) with the others' (avpipe's choice [REC]: the paper trains one
annotator; neither rule reads labels).
:func:`kmeans_init` (``selflabel.init: kmeans``, [REC]) first fits a restart to the
k-means partition of the cosine-normalised ``f`` (the space of the affinity sets), then
trains it on the label contrast: a clustering initialisation, as DeepCluster and SCAN
start from k-means; no labels read.
:func:`align_to` permutes the pseudo-classes of a new E-step to match the previous
round's (Hungarian assignment on the contingency table), so that pseudo-class k means
the same cluster in every round.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from avpipe.methods.clcl.config import SelflabelConfig
from avpipe.methods.clcl.losses import label_contrast, marginal_entropy
from avpipe.methods.clcl.model import Annotator
from avpipe.metrics import label_free
from avpipe.training import loop
from avpipe.training.epochs import History, seed_everything

log = logging.getLogger(__name__)


def affinity_sets(f: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (N, K) of the K most and K least cosine-similar videos, each excluding i.

    f: (N, D).  Ties are broken by index (``torch.topk`` on a stable sort is not
    guaranteed, so the order within a set is not part of the contract).
    """
    n = f.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"top_k must be in [1, N-1] = [1, {n - 1}] for N = {n} videos, got {k}")
    fn = F.normalize(f, dim=1)
    sim = fn @ fn.t()
    eye = torch.eye(n, dtype=torch.bool, device=f.device)
    aff = sim.masked_fill(eye, float("-inf")).topk(k, dim=1).indices
    rep = sim.masked_fill(eye, float("inf")).topk(k, dim=1, largest=False).indices
    return aff, rep


def repulsion_ceiling(setting: float | str | None, n_classes: int) -> float | None:
    """The KL ceiling: log C for ``"log_c"``, else the configured number (None = unbounded)."""
    if setting == "log_c":
        return math.log(n_classes)
    if setting is not None and not setting > 0:
        raise ValueError(f"repulsion_clip must be 'log_c', null or > 0, got {setting!r}")
    return setting


def effective_top_k(k: int, n: int) -> int:
    """K clipped to N - 1 (a dataset smaller than K + 1 videos); logged when clipped."""
    if k > n - 1:
        log.warning("top_k %d > N - 1 = %d training videos: using %d", k, n - 1, n - 1)
        return n - 1
    return k


def new_annotator(in_dim: int, cfg: SelflabelConfig, n_classes: int, seed: int) -> Annotator:
    """A freshly initialised annotator whose weights depend only on ``seed``."""
    seed_everything(seed)
    return Annotator(in_dim, cfg.hidden, n_classes)


def align_to(z: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Columns of ``z`` (N, C) permuted so argmax labels agree most with ``reference`` (N,).

    Maximises sum_k |{i : perm(argmax z_i) = k, reference_i = k}| (Hungarian).
    """
    C = z.shape[1]
    table = np.zeros((C, C), dtype=np.int64)
    np.add.at(table, (z.argmax(1), np.asarray(reference, dtype=np.int64)), 1)
    rows, cols = linear_sum_assignment(-table)
    perm = np.empty(C, dtype=np.int64)
    perm[cols] = rows  # new column k takes old column rows[k'] with cols[k'] = k
    return z[:, perm]


class AnnotatorTrainer(loop.Trainer):
    """Label contrast over the affinity / repulsion sets + marginal entropy (Eqs. 9-13)."""

    def __init__(
        self, f: torch.Tensor, annotator: Annotator, cfg: SelflabelConfig, lc: loop.LoopConfig
    ):
        self.f, self.model, self.cfg = f, annotator, cfg
        self.aff, self.rep = affinity_sets(f, effective_top_k(cfg.top_k, f.shape[0]))
        self.clip = repulsion_ceiling(cfg.repulsion_clip, annotator.n_classes)
        self.opt = loop.Optimisers({"annotator": annotator.parameters()}, lc, f.shape[0])

    def batch_loss(self, step: loop.Step) -> tuple[torch.Tensor, dict[str, float]]:
        f, cfg = self.f, self.cfg
        i = torch.from_numpy(step.idx).to(f.device)
        b, k = len(step.idx), self.aff.shape[1]
        # anchors and neighbours in one forward pass: gradients reach both (paper Eq. 9).
        # Each distinct video goes through Phi once (a batch's b (1 + 2K) rows name at most
        # N videos): the same probabilities and gradients, in 1/3 of the time here
        rows, where = torch.unique(
            torch.cat([i, self.aff[i].reshape(-1), self.rep[i].reshape(-1)]), return_inverse=True
        )
        probs = self.model(f[rows])[where]
        p = probs[:b]
        p_aff = probs[b : b + b * k].view(b, k, -1)
        p_rep = probs[b + b * k :].view(b, k, -1)
        l_c, clipped = label_contrast(
            p, p_aff, p_rep, self.clip, cfg.neighbour_reduction, cfg.repulsion_bound
        )
        l_e = marginal_entropy(p, cfg.entropy_sign)
        loss = l_c + cfg.entropy_weight * l_e
        parts = {"label_contrast": l_c.item(), "entropy": l_e.item()}
        return loss, {**parts, "clipped_fraction": clipped.item()}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {
            "nonempty_pseudo_classes": float(len(np.unique(predict(self.model, self.f).argmax(1))))
        }


@torch.no_grad()
def objective(annotator: Annotator, f: torch.Tensor, cfg: SelflabelConfig) -> float:
    """``L_c + w_e L_e`` of ``annotator`` over all N videos of ``f`` (N, 2d) at once (eval mode).

    The neighbour sets are ``f``'s (:func:`affinity_sets`), L_e the marginal entropy of the
    mean prediction over the N videos: deterministic, and no labels read.
    """
    annotator.eval()
    aff, rep = affinity_sets(f, effective_top_k(cfg.top_k, f.shape[0]))
    p = annotator(f)
    clip = repulsion_ceiling(cfg.repulsion_clip, annotator.n_classes)
    l_c, _ = label_contrast(p, p[aff], p[rep], clip, cfg.neighbour_reduction, cfg.repulsion_bound)
    l_e = marginal_entropy(p, cfg.entropy_sign)
    return float(l_c + cfg.entropy_weight * l_e)


def kmeans_labels(f: torch.Tensor, n_classes: int, seed: int) -> np.ndarray:
    """k-means partition (N,) of the L2-normalised rows of ``f`` (cosine geometry, as the
    affinity sets), scikit-learn's k-means++ with 10 initialisations from ``seed``."""
    x = F.normalize(f.detach().float(), dim=1).cpu().numpy().astype(np.float64)
    km = KMeans(n_clusters=n_classes, n_init=10, random_state=seed % 2**32)
    return km.fit(x).labels_.astype(np.int64)


class FitToLabels(loop.Trainer):
    """Cross-entropy of the annotator's probabilities against a fixed partition."""

    def __init__(self, f: torch.Tensor, y: torch.Tensor, annotator: Annotator, lc: loop.LoopConfig):
        self.f, self.y, self.model = f, y, annotator
        self.opt = loop.Optimisers({"annotator": annotator.parameters()}, lc, f.shape[0])

    def batch_loss(self, step: loop.Step) -> tuple[torch.Tensor, dict[str, float]]:
        i = torch.from_numpy(step.idx).to(self.f.device)
        p = self.model(self.f[i])
        return F.nll_loss(torch.log(p.clamp_min(1e-8)), self.y[i]), {}


def kmeans_init(
    annotator: Annotator, f: torch.Tensor, cfg: SelflabelConfig, seed: int, device: torch.device
) -> None:
    """Fit ``annotator`` in place to the k-means partition of ``f`` (``cfg.init_epochs`` of
    cross-entropy, the stage's SGD and cosine decay)."""
    y = kmeans_labels(f, annotator.n_classes, seed)
    gen = seed_everything(seed)
    f = f.to(device)  # a no-op for fit_annotator's features, already there
    annotator.to(device)
    lc = _loop_config(cfg, cfg.init_epochs)
    trainer = FitToLabels(f, torch.from_numpy(y).to(device), annotator, lc)
    loop.fit(trainer, f.shape[0], lc, gen, name="selflabel init")


RESTART_STRIDE = 7919  # seed offset between restarts (a prime: no clash with round offsets)


def fit_annotator(
    f: torch.Tensor,
    cfg: SelflabelConfig,
    n_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    init: dict[str, torch.Tensor] | None = None,
    kmeans: bool = False,
) -> tuple[Annotator, History, list[float]]:
    """One of ``cfg.restarts`` annotators trained on ``f`` (N, 2d), kept by
    ``cfg.restart_choice``: the lowest :func:`objective`, or the consensus (medoid)
    partition (:func:`avpipe.metrics.label_free.medoid` of the restarts' pseudo-labels).

    Restart r is initialised from ``seed + RESTART_STRIDE * r`` (or from ``init``, a warm
    start, with its own batch order; with ``kmeans``, then fitted to its own k-means
    partition by :func:`kmeans_init`).  Returns the kept annotator, its history and every
    restart's objective (restart order).
    """
    if cfg.restarts < 1:
        raise ValueError(f"selflabel.restarts must be >= 1, got {cfg.restarts}")
    if cfg.restart_choice not in ("objective", "consensus"):
        raise ValueError(
            f"selflabel.restart_choice must be objective or consensus, got {cfg.restart_choice!r}"
        )
    runs: list[tuple[Annotator, History]] = []
    scores: list[float] = []
    labels: list[np.ndarray] = []
    on_device = f.to(device)  # moved once, scored by every restart
    for r in range(cfg.restarts):
        s = seed + RESTART_STRIDE * r
        ann = new_annotator(f.shape[1], cfg, n_classes, s)
        if init is not None:
            ann.load_state_dict(init)
        if kmeans:
            kmeans_init(ann, on_device, cfg, s, device)
        runs.append((ann, train_annotator(f, ann, cfg, epochs, s, device)))
        scores.append(objective(ann, on_device, cfg))
        labels.append(predict(ann, on_device).argmax(1))
    if cfg.restart_choice == "consensus":
        kept = label_free.medoid(labels)
    else:
        kept = int(np.argmin(scores))  # first of equal objectives, as before
    if cfg.restarts > 1:
        log.info(
            "selflabel: kept restart %d of %d by %s (objective %s)",
            kept,
            cfg.restarts,
            cfg.restart_choice,
            ", ".join(f"{v:.4f}" for v in scores),
        )
    return runs[kept][0], runs[kept][1], scores


def train_annotator(
    f: torch.Tensor,
    annotator: Annotator,
    cfg: SelflabelConfig,
    epochs: int,
    seed: int,
    device: torch.device,
) -> History:
    """Train ``annotator`` in place on the fixed representations ``f`` (N, 2d)."""
    gen = seed_everything(seed)
    f = f.to(device)
    annotator.to(device)
    lc = _loop_config(cfg, epochs)
    hist = loop.fit(
        AnnotatorTrainer(f, annotator, cfg, lc), f.shape[0], lc, gen, name="selflabel"
    ).history
    if hist.rows:
        last = hist.rows[-1]
        log.info(
            "selflabel: %d epochs in %.1f s, loss %.4f, %d non-empty pseudo-classes, "
            "%.1f%% repulsion KLs above the ceiling",
            epochs,
            hist.seconds,
            last["loss"],
            last["nonempty_pseudo_classes"],
            100 * last["clipped_fraction"],
        )
    return hist


def _loop_config(cfg: SelflabelConfig, epochs: int) -> loop.LoopConfig:
    """SGD with momentum and cosine decay, the annotator's schedule (paper, Sec. 4.1)."""
    return loop.LoopConfig(
        epochs=epochs,
        batch_size=cfg.batch_size,
        optimizer=loop.OptimizerConfig("sgd", cfg.lr, cfg.momentum, cfg.weight_decay),
        schedule=loop.ScheduleConfig("cosine"),
        log_every=cfg.log_every,
    )


@torch.no_grad()
def predict(annotator: Annotator, f: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Z = Phi(f): (N, C) float32 probabilities."""
    annotator.eval()
    return (
        torch.cat([annotator(f[s : s + batch_size]) for s in range(0, f.shape[0], batch_size)])
        .cpu()
        .numpy()
    )
