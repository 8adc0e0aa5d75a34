"""The batch-normalisation conformance suite: cases, expectations, comparison, results."""
