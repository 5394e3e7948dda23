"""CoLeaF (Sardari et al., ECCV 2024): Anchor + Reference co-learning for weakly
supervised audio-visual video parsing, here on the HAN Anchor."""
