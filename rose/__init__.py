"""rose: synthetic training data for low-resource languages, and choosing the LLM that makes it.

Importing this package is cheap: torch, transformers and mlflow are imported only by the
modules that need them.
"""

__version__ = "0.1.0"
