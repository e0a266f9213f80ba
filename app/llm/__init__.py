"""Engines: the local MLX engine and the contract every backend implements.

Importing anything under app.llm first loads OpenBLAS (Linux), which must happen before the
first `import mlx.core` in the process; see app/blas.py.
"""

from app.blas import load_blas

load_blas()
