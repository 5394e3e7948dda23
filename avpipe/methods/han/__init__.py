"""HAN (Tian et al., ECCV 2020): the weakly supervised AVVP baseline and CoLeaF's Anchor backbone."""
