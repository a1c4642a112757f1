#!/bin/bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one role
# and one database each for Airflow's metadata and MLflow's backend store (and its users). Each
# role owns its database and nothing else; only the owner may connect. The passwords are read by
# psql's \getenv from the environment, never passed as arguments (a command line is world-readable).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<'SQL'
\getenv airflow_pw AIRFLOW_DB_PASSWORD
\getenv mlflow_pw MLFLOW_DB_PASSWORD
CREATE ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_pw';
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
