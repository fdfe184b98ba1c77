"""Memory methods evaluated in one harness: the AtomMem agent, fixed-workflow baselines and ablations.

A method takes long-context samples and answers their questions; see `base.py` for the interface and
`registry.py` for the names.
"""
