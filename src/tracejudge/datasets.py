"""``tracejudge.datasets``: evaluation datasets, named as in MLflow 3's ``mlflow.genai.datasets``.

```python
from tracejudge.datasets import create_dataset, get_dataset

golden = create_dataset("support-golden", experiment_id="1", tags={"owner": "qa"})
golden.merge_records(tracejudge.search_traces(filter_string="tag.reviewed = 'yes'"))
golden.merge_records([{"inputs": {"question": "Refund window?"},
                       "expectations": {"expected_response": "30 days"}}])
tracejudge.evaluate(data=get_dataset(name="support-golden"), predict_fn=app,
                    scorers=[Correctness()])
```
"""

from tracejudge.entities.dataset import DatasetRecord, RecordSource
from tracejudge.evaluation.datasets import (
    EvaluationDataset,
    create_dataset,
    delete_dataset,
    delete_dataset_tag,
    get_dataset,
    search_datasets,
    set_dataset_tags,
)

__all__ = [
    "DatasetRecord",
    "EvaluationDataset",
    "RecordSource",
    "create_dataset",
    "delete_dataset",
    "delete_dataset_tag",
    "get_dataset",
    "search_datasets",
    "set_dataset_tags",
]
