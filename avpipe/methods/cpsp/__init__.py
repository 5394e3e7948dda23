"""PSP (Zhou et al., CVPR'21) and CPSP (Zhou et al., TPAMI; arXiv 2211.09980)."""
