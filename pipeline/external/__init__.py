"""Steps that Dagster launches as processes of their own through Dagster Pipes (no Dagster import
here beyond `dagster_pipes`, the small library the external side speaks)."""
