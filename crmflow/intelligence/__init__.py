"""Customer intelligence: clustering, churn propensity, recommendations and follow-up priority.

Features are computed in portable warehouse SQL (DuckDB or PostgreSQL) as of an explicit cutoff and
fetched as Arrow/pandas; models are
scikit-learn with fixed seeds. No Dagster imports here (assets/intelligence.py wraps these).
"""
