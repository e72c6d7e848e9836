"""Drawing for `cmt-predict` and `cmt-visualize`: colours, overlays, layout."""
