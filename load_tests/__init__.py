"""Load and capacity tooling for Hangtár: a SIPREC load generator (``load_tests.loadgen``), the capacity run
(``python -m load_tests.capacity``) and micro benchmarks. Nothing here is imported by the product."""
