"""Payments outside the benchmark arithmetic (SPEC §9-11): capitation and advances, CARA, BEI, Medicaid."""
