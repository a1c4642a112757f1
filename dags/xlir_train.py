"""xlir_train: fine-tune, evaluate, register and (gated) promote one encoder per DAG run.

Table of contents: prepare -> train -> evaluate[dataset] (mapped) -> register -> gate ->
promote (pool xlir_promotion, one slot) -> finish. Each task calls one function of
``xlir.pipeline.tasks``; XCom carries ids, URIs and versions only.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from xlir.pipeline.dag_support import current_run, default_args, max_active_runs, task_timeout, validated_qa_asset
from xlir.pipeline.notifier import DecisionNotifier
from xlir.pipeline.params import PROMOTION_POOL, PipelineParams, airflow_params, training_queue

VALIDATED_QA = validated_qa_asset()


@dag(
    dag_id="xlir_train",
    schedule=[VALIDATED_QA],
    catchup=False,
    max_active_runs=max_active_runs(),
    params=airflow_params(PipelineParams),
    tags=["xlir", "training", "registry"],
    default_args=default_args(retries=2),
    doc_md="""
### xlir_train
One fine-tuning run of the retrieval encoder, scheduled on the asset `xlir://validated-qa`
(a new ingested data version is added to the training data) or triggered by hand with the
params below. One MLflow run per DAG run (child run per variant).

1. **prepare**: refuse what only the deployment decides (a looser gate than its profile, a smaller
   or other gating evaluation, data outside `XLIR_DATA_ROOTS` or failing the data contract), then
   resolve and load the training sources, open the MLflow run.
2. **train**: fine-tune (a retry resumes from the last checkpoint).
3. **evaluate**: one mapped task per evaluation dataset.
4. **register**: make sure a champion exists (untuned base model), register the new version.
5. **gate**: decision against the champion (gate profile + overrides).
6. **promote**: gated alias move, one at a time (pool `xlir_promotion`); the promotion or rejection is
   announced to the deployment's webhook (`XLIR_ALERT_WEBHOOK_URL`; none when unset).
""",
)
def xlir_train():
    @task(execution_timeout=task_timeout("xlir_train", "prepare"),
          doc_md="Resolve and load the training data, open the DAG run's MLflow run (`prepare_training_data`).")
    def prepare() -> dict:
        from xlir.pipeline.lineage import asset_events_by_version
        from xlir.pipeline.tasks import prepare_training_data

        from airflow.sdk.exceptions import AirflowFailException

        from xlir.pipeline.params import PolicyError

        run_id, params = current_run()
        events = get_current_context().get("triggering_asset_events")
        try:
            return prepare_training_data(run_id, params, asset_events=asset_events_by_version(events))
        except PolicyError as e:  # a refusal, not a transient failure: no retry
            raise AirflowFailException(str(e)) from e

    @task(execution_timeout=task_timeout("xlir_train", "train"),
          retries=3, **training_queue(),
          doc_md="Fine-tune the encoder (`train_model`); retries resume from the last checkpoint.")
    def train(prepared: dict) -> dict:
        from xlir.pipeline.tasks import train_model

        run_id, params = current_run()
        return train_model(run_id, params, prepared["train_datasets"])

    @task(execution_timeout=task_timeout("xlir_train", "eval_datasets"),
          doc_md="The evaluation datasets to map over.")
    def eval_datasets() -> list[str]:
        return list(current_run()[1]["eval_datasets"])

    @task(execution_timeout=task_timeout("xlir_train", "evaluate"),
          map_index_template="{{ xlir_dataset }}", **training_queue(),
          doc_md="Zero-shot evaluation on one dataset (`evaluate_model`), logged to the variant's MLflow run.")
    def evaluate(trained: dict, dataset: str) -> dict:
        from xlir.pipeline.tasks import evaluate_model

        get_current_context()["xlir_dataset"] = dataset
        run_id, params = current_run()
        return evaluate_model(run_id, trained, dataset, params)

    @task(execution_timeout=task_timeout("xlir_train", "register"),
          doc_md="Ensure a champion exists and register the trained model (`log_and_register`).")
    def register(trained: dict, evaluations: list[dict]) -> dict:
        from xlir.pipeline.tasks import log_and_register

        run_id, params = current_run()
        return log_and_register(run_id, params, trained, list(evaluations))

    @task(execution_timeout=task_timeout("xlir_train", "gate"),
          doc_md="Gate decision for the new version against the champion (`gate`); records nothing.")
    def gate(registered: dict) -> dict:
        from xlir.pipeline.tasks import gate as decide

        run_id, params = current_run()
        return decide(run_id, params, registered)

    @task(execution_timeout=task_timeout("xlir_train", "promote"),
          pool=PROMOTION_POOL, on_success_callback=[DecisionNotifier()],
          doc_md="Gated promotion (`promote`): moves `champion` on a pass, tags the version rejected on a fail. "
                 "Pool `xlir_promotion` (one slot). Its decision goes to `XLIR_ALERT_WEBHOOK_URL` (`DecisionNotifier`).")
    def promote(registered: dict, decision: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from xlir.pipeline.params import PolicyError
        from xlir.pipeline.tasks import promote as do_promote

        run_id, params = current_run()
        try:
            return do_promote(run_id, params, registered, decision)
        except PolicyError as e:  # the deployment's policy changed since prepare: a refusal, no retry
            raise AirflowFailException(str(e)) from e

    @task(execution_timeout=task_timeout("xlir_train", "finish"),
          doc_md="Close the DAG run's MLflow run with a summary (`finish_run`).")
    def finish(promoted: dict) -> dict:
        from xlir.pipeline.tasks import finish_run

        run_id, params = current_run()
        return finish_run(run_id, params, promoted)

    trained = train(prepare())
    evaluations = evaluate.partial(trained=trained).expand(dataset=eval_datasets())
    registered = register(trained, evaluations)
    finish(promote(registered, gate(registered)))


xlir_train()
