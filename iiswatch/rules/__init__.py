"""Detection rules: the model of a rule file, its loader and validator, and the evaluation
shared by `iiswatch rules` and the alerting service."""
