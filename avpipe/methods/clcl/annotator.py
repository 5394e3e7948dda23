"""Stage B of CLCL: self-labelling by label contrast (spec §2.5, Eqs. 9-13).

The video representations ``f_i`` (N, 2d) are fixed during annotator training.
Affinity set A_i = the K most cosine-similar other videos, repulsion set R_i = the K
least similar; both recomputed at every E-step.  Phi is trained with SGD + cosine
decay on ``L_c + w_e L_e``; pseudo-labels are ``Z_i = Phi(f_i)``.
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
from tqdm import tqdm

from avpipe.methods.clcl.config import SelflabelConfig
from avpipe.methods.clcl.losses import label_contrast, marginal_entropy
from avpipe.methods.clcl.model import Annotator
from avpipe.training.epochs import History, cosine_schedule, seed_everything, shuffled_batches

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
    aff, rep = affinity_sets(f, effective_top_k(cfg.top_k, f.shape[0]))
    clip = repulsion_ceiling(cfg.repulsion_clip, annotator.n_classes)
    opt = torch.optim.SGD(
        annotator.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = max(1, -(-f.shape[0] // cfg.batch_size))
    sched = cosine_schedule(opt, epochs * steps_per_epoch)
    hist = History("selflabel", cfg.log_every)
    step = 0
    for epoch in tqdm(range(epochs), desc="selflabel", leave=False, disable=None):
        annotator.train()
        sums = np.zeros(4)
        n_batches = 0
        for idx in shuffled_batches(f.shape[0], cfg.batch_size, gen):
            i = torch.from_numpy(idx).to(device)
            k = aff.shape[1]
            # anchors and neighbours in one forward pass: gradients reach both (spec §2.5)
            probs = annotator(
                torch.cat(
                    [f[i], f[aff[i]].reshape(-1, f.shape[1]), f[rep[i]].reshape(-1, f.shape[1])]
                )
            )
            b = len(idx)
            p, p_aff, p_rep = (
                probs[:b],
                probs[b : b + b * k].view(b, k, -1),
                probs[b + b * k :].view(b, k, -1),
            )
            l_c, clipped = label_contrast(
                p, p_aff, p_rep, clip, cfg.neighbour_reduction, cfg.repulsion_bound
            )
            l_e = marginal_entropy(p, cfg.entropy_sign)
            loss = l_c + cfg.entropy_weight * l_e
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            sums += [loss.item(), l_c.item(), l_e.item(), clipped.item()]
            n_batches += 1
            hist.step(step, b, sched.get_last_lr()[0], loss=loss.item(), clipped=clipped.item())
        sums /= max(n_batches, 1)
        n_used = len(np.unique(predict(annotator, f).argmax(1)))
        hist.epoch(
            epoch,
            loss=sums[0],
            label_contrast=sums[1],
            entropy=sums[2],
            clipped_fraction=sums[3],
            nonempty_pseudo_classes=float(n_used),
            lr=sched.get_last_lr()[0],
        )
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


@torch.no_grad()
def predict(annotator: Annotator, f: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Z = Phi(f): (N, C) float32 probabilities."""
    annotator.eval()
    return (
        torch.cat([annotator(f[s : s + batch_size]) for s in range(0, f.shape[0], batch_size)])
        .cpu()
        .numpy()
    )
