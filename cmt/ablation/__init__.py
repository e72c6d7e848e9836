"""`cmt-ablate`: Table 2a-2c and Fig. 1 at CPU scale."""
