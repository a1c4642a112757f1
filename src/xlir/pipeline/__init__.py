"""What the Airflow DAGs call: typed params (``PipelineParams``) and one function per task.

The DAG files in ``dags/`` only wire these together; everything here runs (and is tested)
without Airflow. See ``xlir.pipeline.tasks`` for the task functions and ``xlir.pipeline.params``
for the single definition of the DAG Params.
"""

from xlir.pipeline.params import CompareParams, PipelineParams, airflow_params, param_schema, parse_params

__all__ = ["CompareParams", "PipelineParams", "airflow_params", "param_schema", "parse_params"]
