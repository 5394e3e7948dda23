"""CLCL (Bao et al., AAAI 2023): unsupervised AV event localization by cross-modal
label contrast and EM.  Stages: pretrain -> selflabel -> em rounds (Bao et al., AAAI 2023)."""
