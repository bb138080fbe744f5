"""Custom metrics in MLflow 2's style: ``make_metric(eval_fn=..., greater_is_better=...)``."""

from tracejudge.metrics.legacy import EvaluationMetric, MetricValue, make_metric

__all__ = ["EvaluationMetric", "MetricValue", "make_metric"]
