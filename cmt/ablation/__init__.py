"""`cmt-ablate`: Table 2a/2b and Fig. 1 at CPU scale."""
