"""MDP: latency-constrained joint channel + block pruning of 3D CNNs, solved exactly (see docs/mdp.md).

graph (structure from torch.fx) -> lut / lut_measure / calibration (latency model) -> importance
(Taylor) -> problem / solver (MILP) -> materialize (smaller model) -> checkpoint / pipeline.
"""
