"""The code that runs ON THE DEVICE: standard library + numpy + one runtime, nothing else.

Shipped to devices as one zipapp (``package.build_runner()``); the protocol is in
``runner.py``'s docstring. Never import torch, tensorflow (except as the last TFLite
fallback), paramiko, pydantic or yaml here — a test proves the zipapp runs without them.
"""
