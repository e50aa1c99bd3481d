"""Quantisation, compression and the integer golden model."""
