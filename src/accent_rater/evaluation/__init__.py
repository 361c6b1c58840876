"""Evaluation: speaker-level metrics with bootstrap intervals (``metrics``), a training run's report
and plots (``report``, ``plots``), member comparisons (``compare``), a corpus's exploratory report
(``eda``), the leakage demonstration (``leakage``) and the pronunciation heads' report. Rating a
recording never imports this package."""
