"""Distill Hub: distill Transformer teachers into small TinyBERT-style students,
query them side by side and compare them on a quality x speed leaderboard.

Nothing here imports gradio; heavy libraries (torch, transformers) are imported
by the modules that need them, never at package import.
"""

__version__ = "0.1.0"
