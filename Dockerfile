# The crmflow code location (also the webserver and daemon image in deploy/compose.yaml).
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 \
    DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/dagster/app
# The project as one folder: packages, dbt project (dbt_project.yml + dbt_project/), marketer defaults.
COPY pyproject.toml setup.py MANIFEST.in README.md dbt_project.yml profiles.yml ./
COPY orchestration orchestration
COPY assets assets
COPY connectors connectors
COPY crmflow crmflow
COPY dbt_project dbt_project
COPY marketing marketing
COPY deploy deploy
RUN pip install -e . && mkdir -p "$DAGSTER_HOME" && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && crmflow prepare
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "orchestration.definitions", \
     "--location-name", "crmflow"]
