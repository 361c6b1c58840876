"""Training: what fits the heads a bundle ships. The rater never imports this package."""
