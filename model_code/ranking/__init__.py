"""Ranking metrics (recall, MRR at cutoffs) and the baselines measured with them."""
