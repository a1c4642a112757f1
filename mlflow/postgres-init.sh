#!/bin/bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one role
# and one database each for Airflow's metadata and MLflow's backend store.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
     -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v mlflow_pw="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
SQL
