"""Primitive nodes: enough to build and test graphs without any model (see nodes.py)."""
