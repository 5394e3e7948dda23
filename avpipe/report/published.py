"""The papers' own numbers, printed beside ours for reference and labelled "published".

They are what the papers report on the REAL datasets (AVE test, LLP test) with
pretrained features; avpipe's numbers on the synthetic default are not comparable to
them.  Sources:

* CLCL — Bao et al., AAAI 2023 (unsupervised AVEL): Table 1 (AVE accuracy, also the
  FS / WS rows it quotes), Table 5 (purity / accuracy after each EM step, ResNet).
* PSP (Zhou et al., CVPR 2021), quoted in Bao et al. (AAAI 2023) Table 1; CPSP (TPAMI):
  the paper body was not retrievable, its values are recalled and marked unverified.
* CoLeaF — Sardari et al., ECCV 2024: Table 1, LLP test, video-level labels,
  fixed ("standard") thresholds, segment- and event-level F-scores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AVERow:
    setting: str  # FS (fully supervised), WS (weakly supervised), US (unsupervised)
    method: str
    feature: str
    accuracy: float
    source: str


_T1 = "Bao et al. AAAI'23, Table 1"
AVE_ACCURACY: list[AVERow] = [
    AVERow("FS", "AVEL", "VGG-19", 68.6, _T1),
    AVERow("FS", "AVEL", "ResNet-152", 74.7, _T1),
    AVERow("FS", "CMRAN", "VGG-19", 77.4, _T1),
    AVERow("FS", "CMRAN", "ResNet-152", 78.3, _T1),
    AVERow("FS", "PSP", "VGG-19", 77.8, _T1),
    AVERow("FS", "CPSP", "VGG-19", 78.6, "CPSP (TPAMI), unverified"),
    AVERow("WS", "AVEL", "VGG-19", 66.7, _T1),
    AVERow("WS", "AVEL", "ResNet-152", 73.3, _T1),
    AVERow("WS", "CMRAN", "VGG-19", 72.9, _T1),
    AVERow("WS", "CMRAN", "ResNet-152", 75.3, _T1),
    AVERow("WS", "PSP", "VGG-19", 73.5, _T1),
    AVERow("WS", "CPSP", "VGG-19", 74.2, "CPSP (TPAMI), unverified"),
    AVERow("US", "Bao et al.", "VGG-19", 63.2, _T1),
    AVERow("US", "Bao et al.", "ResNet-152", 67.1, _T1),
]

# EM step -> (purity %, accuracy %), ResNet features, AVE (Bao et al. (AAAI 2023) Table 5).
EM_ROUNDS: dict[int, tuple[float, float]] = {1: (76.90, 65.8), 2: (77.35, 66.7), 3: (77.81, 67.1)}
EM_ROUNDS_SOURCE = "Bao et al. AAAI'23, Table 5 (AVE, ResNet-152)"

# AVVP columns in the papers' order; each is "<level>.<metric>" of avpipe.metrics.avvp.
AVVP_METRICS = ("A", "Ao", "V", "Vo", "AV", "Type@AV", "Type@AVo", "Event@AV", "Event@AVo")
AVVP_COLUMNS = [f"{lv}.{m}" for lv in ("segment", "event") for m in AVVP_METRICS]
AVVP_SOURCE = "Sardari et al. ECCV'24 (CoLeaF), Table 1 (LLP, standard thresholds)"
AVVP_SELECTED_SOURCE = "Sardari et al. ECCV'24 (CoLeaF), Table 1 (LLP, selected thresholds)"
AVVP_LLP: dict[str, list[float]] = {  # segment A..E@o, then event A..E@o
    "HAN": [
        60.1,
        33.1,
        52.9,
        50.7,
        48.9,
        54.0,
        44.3,
        55.4,
        24.1,
        51.3,
        31.0,
        48.9,
        50.1,
        43.0,
        47.7,
        41.4,
        48.0,
        22.0,
    ],
    "MA": [
        60.3,
        43.5,
        60.0,
        53.6,
        55.1,
        58.9,
        50.8,
        57.9,
        32.0,
        53.6,
        38.8,
        56.4,
        52.4,
        49.0,
        53.0,
        46.8,
        50.6,
        27.8,
    ],
    "JoMoLD": [
        61.3,
        46.2,
        63.8,
        58.8,
        57.2,
        60.8,
        54.4,
        59.9,
        35.4,
        53.9,
        40.9,
        59.9,
        59.0,
        49.6,
        54.5,
        50.3,
        52.5,
        31.1,
    ],
    "CMPAE": [
        63.9,
        48.2,
        63.3,
        57.9,
        57.5,
        61.2,
        54.2,
        62.1,
        35.7,
        57.1,
        43.6,
        60.6,
        57.5,
        49.6,
        55.8,
        50.3,
        55.6,
        32.0,
    ],
    "CoLeaF": [
        63.5,
        49.3,
        64.5,
        62.4,
        58.6,
        62.1,
        56.7,
        61.8,
        37.7,
        56.2,
        44.1,
        62.0,
        62.2,
        52.1,
        56.7,
        52.7,
        54.5,
        33.4,
    ],
}
# "Selected thresholds" (CMPAE protocol: per-class thresholds chosen on val); avpipe's
# setting "selected". CMPAE's event Type@AV/Type@AVo are as printed (inconsistent with
# the row's own A/V/AV means, methods spec §4.10).
AVVP_LLP_SELECTED: dict[str, list[float]] = {
    "CMPAE": [
        64.2,
        48.9,
        66.4,
        61.7,
        59.2,
        63.3,
        55.5,
        62.8,
        37.6,
        56.6,
        43.8,
        63.7,
        61.1,
        51.8,
        51.9,
        50.3,
        55.7,
        34.0,
    ],
    "CoLeaF": [
        64.2,
        49.6,
        67.1,
        63.1,
        59.8,
        63.8,
        57.0,
        61.9,
        38.4,
        57.1,
        45.0,
        64.8,
        62.7,
        52.8,
        58.2,
        52.4,
        55.5,
        34.6,
    ],
}
