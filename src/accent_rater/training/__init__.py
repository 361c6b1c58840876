"""Training: corpora and splits (``data``, ``splits``), channel augmentation (``augment``), feature
caches (``caches``), cross-corpus heads (``multicorpus``), stacking and thresholds (``stacking``), the
training run (``train``), bundle export and model card (``export``), site-profile fitting
(``site_profile``) and the pronunciation heads (``pronunciation``). Rating a recording never
imports this package."""
