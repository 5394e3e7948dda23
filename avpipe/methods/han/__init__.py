"""HAN (Tian et al., ECCV 2020): weakly supervised AVVP baseline and CoLeaF's Anchor."""
