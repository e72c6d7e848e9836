"""Training losses of CMT-DeepLab and the Hungarian matching they use."""
