"""The lab: instruments that answer research questions about RECLF-MONAI (ablations, learning
curves, benchmarks, profiling, word weights); not part of the product. Run each from the repository
root as ``python -m research.NAME``; see research/README.md."""
