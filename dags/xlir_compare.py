"""xlir_compare: train and evaluate mono, cross and hybrid (and an alpha list) from one data
version and seed, then log a comparison table and chart to the parent MLflow run. No promotion.

Table of contents: prepare -> variants -> train[variant] (mapped) -> evaluate[variant] (mapped) -> compare,
with reference (the untuned encoder, evaluated once) beside them.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from xlir.pipeline.dag_support import current_run, default_args, task_timeout
from xlir.pipeline.params import CompareParams, airflow_params, training_queue


@dag(
    dag_id="xlir_compare",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    params=airflow_params(CompareParams),
    tags=["xlir", "training", "comparison"],
    default_args=default_args(retries=2),
    doc_md="""
### xlir_compare
Batch-strategy comparison on one data version and seed: one mapped training per variant
(`strategies`, hybrid at `alpha`, plus hybrid at each of `alphas`), each evaluated on
`eval_datasets`, beside one evaluation of the untuned base encoder that every variant is compared
with; `precision: int8` runs the evaluations and the retrieval validation on the labelled int8 fast
path. The parent MLflow run gets `comparison/comparison.md` and
`comparison/comparison.png`. Nothing is registered or promoted. **prepare** refuses training data
that is neither a named dataset nor a file under `XLIR_DATA_ROOTS` passing the data contract.
""",
)
def xlir_compare():
    @task(execution_timeout=task_timeout("xlir_compare", "prepare"),
          doc_md="Resolve and load the training data, open the MLflow run (`prepare_training_data`).")
    def prepare() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from xlir.pipeline.params import CompareParams, PolicyError, parse_params
        from xlir.pipeline.tasks import prepare_training_data

        run_id, params = current_run()
        try:
            return prepare_training_data(run_id, parse_params(params, CompareParams))
        except PolicyError as e:  # a refusal, not a transient failure: no retry
            raise AirflowFailException(str(e)) from e

    @task(execution_timeout=task_timeout("xlir_compare", "variants"),
          doc_md="The variants to train (`compare_variants`).")
    def variants() -> list[dict]:
        from xlir.pipeline.tasks import compare_variants

        return compare_variants(current_run()[1])

    @task(execution_timeout=task_timeout("xlir_compare", "train"),
          retries=3, map_index_template="{{ xlir_variant }}", **training_queue(),
          doc_md="Fine-tune one variant (`train_model`); retries resume from the checkpoint.")
    def train(prepared: dict, variant: dict) -> dict:
        from xlir.pipeline.params import CompareParams, parse_params
        from xlir.pipeline.tasks import train_model, variant_name

        get_current_context()["xlir_variant"] = variant_name(variant["strategy"], variant["alpha"])
        run_id, params = current_run()
        return train_model(run_id, parse_params(params, CompareParams), prepared["train_datasets"],
                           strategy=variant["strategy"], alpha=variant["alpha"])

    @task(execution_timeout=task_timeout("xlir_compare", "evaluate"),
          map_index_template="{{ xlir_variant }}", **training_queue(),
          doc_md="Evaluate one trained variant on every evaluation dataset (`evaluate_model`).")
    def evaluate(trained: dict) -> list[dict]:
        from xlir.pipeline.params import CompareParams, parse_params
        from xlir.pipeline.tasks import evaluate_model

        get_current_context()["xlir_variant"] = trained["variant"]
        run_id, params = current_run()
        p = parse_params(params, CompareParams)
        return [evaluate_model(run_id, trained, d, p) for d in p.eval_datasets]

    @task(execution_timeout=task_timeout("xlir_compare", "reference"),
          **training_queue(), doc_md="The untuned base encoder on every evaluation dataset, once for all variants "
                                     "(`evaluate_reference`; cached embeddings when any run encoded them).")
    def reference(prepared: dict) -> list[dict]:
        from xlir.pipeline.params import CompareParams, parse_params
        from xlir.pipeline.tasks import evaluate_reference

        run_id, params = current_run()
        return evaluate_reference(run_id, parse_params(params, CompareParams))

    @task(execution_timeout=task_timeout("xlir_compare", "compare"),
          doc_md="Comparison table (markdown) and chart (PNG) on the parent MLflow run (`compare_strategies`).")
    def compare(evaluations: list[list[dict]], untuned: list[dict]) -> dict:
        from xlir.pipeline.params import CompareParams, parse_params
        from xlir.pipeline.tasks import compare_strategies

        run_id, params = current_run()
        flat = [e for group in evaluations for e in group] + list(untuned)
        return compare_strategies(run_id, parse_params(params, CompareParams), flat)

    prepared = prepare()
    trained = train.partial(prepared=prepared).expand(variant=variants())
    compare(evaluate.expand(trained=trained), reference(prepared))


xlir_compare()
