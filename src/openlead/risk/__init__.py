"""Risk adjustment (SPEC §6): payment risk scores (``payment``); scorers and normalisation live beside it."""
