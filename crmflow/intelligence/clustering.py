"""Customer clusters from behaviour: RFM, tenure, category mix, channel mix and engagement.

Features are log1p-transformed where heavy-tailed, standardised and clipped at +-5 sd; k is chosen
in a configured range by silhouette on a sample; MiniBatchKMeans is fitted on at most `fit_sample`
rows and assigns everyone. Cluster ids survive re-runs: new centroids are matched to the previous
run's centroids (Hungarian algorithm) and inherit their ids when close enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from crmflow.intelligence.config import ClusteringConfig, FeatureConfig
from crmflow.intelligence.ddl import CENTROIDS_TEMPLATE
from crmflow.intelligence.features import FEATURE_INPUTS, build_features
from crmflow.intelligence.tables import (
    CLUSTERS,
    CLUSTERS_SCHEMA,
    missing_inputs,
    output_relation,
    replace_output,
)
from crmflow.warehouse import Warehouse, as_warehouse

LOG_FEATURES = ("frequency", "monetary", "avg_basket", "recency_days", "tenure_days", "events_90d",
                "active_days_30d")
SHARE_FEATURES = ("mobile_order_share",)
PURCHASE_FEATURES = ("frequency", "monetary", "avg_basket", "recency_days")
# (word when the centroid is above the population, word when below)
WORDS: dict[str, tuple[str | None, str | None]] = {
    "frequency": ("high-frequency", "low-frequency"),
    "monetary": ("high-spend", "low-spend"),
    "avg_basket": ("high-basket", "low-basket"),
    "recency_days": ("lapsed", "recent"),
    "tenure_days": ("long-tenure", "new"),
    "events_90d": ("highly engaged", "low engagement"),
    "active_days_30d": ("frequent visitors", "rare visitors"),
    "mobile_order_share": ("mobile", "web"),
}

CENTROIDS_SCHEMA = pa.schema([("as_of", pa.timestamp("us", tz="UTC")), ("cluster_id", pa.int32()),
                              ("cluster_label", pa.string()), ("size", pa.int64()), ("feature", pa.string()),
                              ("value", pa.float64())])


@dataclass
class ClusteringResult:
    assignments: pd.DataFrame  # user_id, cluster_id, cluster_label, distance, as_of
    centroids: pd.DataFrame  # cluster_id, cluster_label, size, + one column per feature (transformed)
    decision: str  # clustered | insufficient_data
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # fitted model (empty when a stored one was used)


def clustering_matrix(features: pd.DataFrame, categories: tuple[str, ...]) -> pd.DataFrame:
    """The transformed (not yet standardised) feature matrix, indexed like `features`."""
    recency = features["recency_days"].fillna(features["tenure_days"])  # never bought: since sign-up
    out = {}
    for name in LOG_FEATURES:
        col = recency if name == "recency_days" else features[name]
        out[name] = np.log1p(col.clip(lower=0).fillna(0).to_numpy(dtype=float))
    for name in (*SHARE_FEATURES, *categories):
        out[name] = features[name].fillna(0).to_numpy(dtype=float)
    return pd.DataFrame(out, index=features.index)


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _kmeans(k: int, seed: int) -> MiniBatchKMeans:
    return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096, max_iter=200)


def choose_k(z: np.ndarray, cfg: ClusteringConfig) -> tuple[int, dict[int, float]]:
    """The k in [k_min, k_max] with the best silhouette on a sample (ties: the smaller k)."""
    rows = _sample(len(z), cfg.selection_sample, cfg.seed)
    sample = z[rows]
    scores: dict[int, float] = {}
    for k in range(cfg.k_min, min(cfg.k_max, len(sample) - 1) + 1):
        labels = _kmeans(k, cfg.seed).fit_predict(sample)
        if len(np.unique(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(sample, labels, sample_size=min(cfg.silhouette_sample, len(sample)),
                                           random_state=cfg.seed))
    if not scores:
        return cfg.k_min, scores
    best = max(scores.values())
    return min(k for k, s in scores.items() if s == best), scores


def match_ids(
    new_centroids: pd.DataFrame, previous: pd.DataFrame | None, scaler_mean: pd.Series, scaler_scale: pd.Series,
    sizes: np.ndarray, max_distance: float,
) -> tuple[np.ndarray, int]:
    """Stable ids for the new clusters; returns (ids, number inherited from the previous run).

    `previous` has cluster_id plus feature columns (transformed space). Distances are measured in
    the current run's standardised units on the features both runs share. Unmatched clusters get
    fresh ids above every id used before, largest cluster first.
    """
    k = len(new_centroids)
    ids = np.full(k, -1, dtype=int)
    inherited = 0
    next_id = 1
    if previous is not None and len(previous):
        next_id = int(previous["cluster_id"].max()) + 1
        common = [c for c in new_centroids.columns if c in previous.columns]
        if common:
            scale = scaler_scale[common].to_numpy()
            a = (new_centroids[common].to_numpy() - scaler_mean[common].to_numpy()) / scale
            b = (previous[common].to_numpy(dtype=float) - scaler_mean[common].to_numpy()) / scale
            cost = cdist(a, np.nan_to_num(b))
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):  # at most k pairs: a loop over clusters, not users
                if cost[r, c] <= max_distance:
                    ids[r] = int(previous["cluster_id"].iloc[c])
                    inherited += 1
    for r in np.argsort(-sizes, kind="stable"):
        if ids[r] < 0:
            ids[r] = next_id
            next_id += 1
    return ids, inherited


def describe(z_centroids: np.ndarray, names: list[str], categories: dict[str, str], raw_frequency: np.ndarray,
             threshold: float) -> list[str]:
    """A readable label per centroid from its strongest deviations from the population."""
    labels = []
    for i, z in enumerate(z_centroids):
        words: list[str] = []
        if raw_frequency[i] < np.log1p(0.5):
            words.append("no purchase yet")
        order = np.argsort(-np.abs(z), kind="stable")
        for j in order:
            if abs(z[j]) < threshold or len(words) >= 3:
                break
            name = names[j]
            if name in PURCHASE_FEATURES and words[:1] == ["no purchase yet"]:
                continue  # "no purchase yet, low-spend" says the same thing twice
            if name in categories:
                word = f"{categories[name]}-focused" if z[j] > 0 else None
            else:
                word = WORDS[name][0] if z[j] > 0 else WORDS[name][1]
            if word and word not in words:
                words.append(word)
        labels.append(", ".join(words) if words else "average")
    return labels


def _reference_z(matrix: pd.DataFrame, centers_raw: pd.DataFrame) -> np.ndarray:
    """Centroids in sd units for the descriptions: purchase features relative to purchasers only.

    Against the whole population every buying cluster would read "high-basket" just because
    prospects have a basket of 0; against other buyers the word says something.
    """
    buyers = matrix[matrix["frequency"] > 0]
    mean, std = matrix.mean(), matrix.std(ddof=0)
    if len(buyers) > 1:
        mean[list(PURCHASE_FEATURES)] = buyers[list(PURCHASE_FEATURES)].mean()
        std[list(PURCHASE_FEATURES)] = buyers[list(PURCHASE_FEATURES)].std(ddof=0)
    return ((centers_raw[matrix.columns] - mean) / std.replace(0, 1)).to_numpy()


def fit_clusters(
    features: pd.DataFrame, categories: dict[str, str], cfg: ClusteringConfig, previous: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Cluster the users in `features` (user_id + feature columns). Pure: no warehouse access.

    categories maps category feature columns (cat_*) to display names. Returns (assignments with
    user_id, cluster_id, cluster_label, distance; centroids; metrics).
    """
    assignments, centroids, metrics, _ = fit_cluster_model(features, categories, cfg, previous)
    return assignments, centroids, metrics


def fit_cluster_model(
    features: pd.DataFrame, categories: dict[str, str], cfg: ClusteringConfig, previous: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """fit_clusters plus the fitted model (scaler, centres, ids, labels) for assign_clusters."""
    matrix = clustering_matrix(features, tuple(categories))
    names = list(matrix.columns)
    scaler = StandardScaler().fit(matrix.to_numpy())
    z = np.clip(scaler.transform(matrix.to_numpy()), -5, 5)
    k, silhouettes = choose_k(z, cfg)
    fit_rows = _sample(len(z), cfg.fit_sample, cfg.seed)
    km = _kmeans(k, cfg.seed).fit(z[fit_rows])
    labels = km.predict(z)
    # Drop clusters that received nobody (possible with MiniBatchKMeans) so sizes and ids are real.
    used = np.unique(labels)
    centers_z = km.cluster_centers_[used]
    labels = np.searchsorted(used, labels)
    sizes = np.bincount(labels, minlength=len(used))
    distance = np.linalg.norm(z - centers_z[labels], axis=1)
    centers_raw = pd.DataFrame(scaler.inverse_transform(centers_z), columns=names)
    mean = pd.Series(scaler.mean_, index=names)
    scale = pd.Series(scaler.scale_, index=names)
    ids, inherited = match_ids(centers_raw, previous, mean, scale, sizes, cfg.max_match_distance)
    text = describe(_reference_z(matrix, centers_raw), names, categories, centers_raw["frequency"].to_numpy(),
                    cfg.describe_threshold)
    # Two clusters may earn the same words: keep labels unique with the id.
    counts = pd.Series(text).value_counts()
    text = [t if counts[t] == 1 else f"{t} (#{i})" for t, i in zip(text, ids, strict=True)]
    centroids = centers_raw.assign(cluster_id=ids, cluster_label=text, size=sizes)
    assignments = pd.DataFrame({
        "user_id": features["user_id"].to_numpy(),
        "cluster_id": ids[labels],
        "cluster_label": np.asarray(text, dtype=object)[labels],
        "distance": distance,
    })
    total_ss = float(((z[fit_rows] - z[fit_rows].mean(axis=0)) ** 2).sum())
    metrics = {
        "k": int(len(used)),
        "silhouette_by_k": {str(key): round(val, 4) for key, val in silhouettes.items()},
        "silhouette": silhouettes.get(k),
        "explained_variance": 1 - float(km.inertia_) / total_ss if total_ss > 0 else None,
        "ids_inherited": inherited,
        "cluster_sizes": {str(i): int(s) for i, s in zip(ids, sizes, strict=True)},
        "features": names,
    }
    model = {"mean": scaler.mean_, "scale": scaler.scale_, "centers_z": centers_z, "ids": ids,
             "labels": list(text), "names": names, "categories": dict(categories), "metrics": metrics}
    return assignments, centroids, metrics, model


def assign_clusters(features: pd.DataFrame, model: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign users to a stored model's clusters (nearest centre, as KMeans.predict): no refit.

    Returns (assignments, centroids with this run's sizes); ids and labels are the model's.
    """
    matrix = clustering_matrix(features, tuple(model["categories"]))
    if list(matrix.columns) != list(model["names"]):
        raise ValueError(f"clustering: stored model expects features {model['names']}, got {list(matrix.columns)}")
    z = np.clip((matrix.to_numpy() - model["mean"]) / model["scale"], -5, 5)
    centers = np.asarray(model["centers_z"])
    # ||z - c||^2 = ||z||^2 - 2 z.c + ||c||^2: one matrix product for everyone.
    d2 = (z * z).sum(axis=1)[:, None] - 2 * z @ centers.T + (centers * centers).sum(axis=1)[None, :]
    labels = np.argmin(d2, axis=1)
    distance = np.linalg.norm(z - centers[labels], axis=1)
    ids = np.asarray(model["ids"])
    text = np.asarray(model["labels"], dtype=object)
    sizes = np.bincount(labels, minlength=len(centers))
    centroids = pd.DataFrame(centers * model["scale"] + model["mean"], columns=model["names"]).assign(
        cluster_id=ids, cluster_label=list(text), size=sizes)
    assignments = pd.DataFrame({"user_id": features["user_id"].to_numpy(), "cluster_id": ids[labels],
                                "cluster_label": text[labels], "distance": distance})
    return assignments, centroids


def previous_centroids(con: Warehouse | object, as_of: datetime) -> pd.DataFrame | None:
    """The latest stored centroids strictly before `as_of`, wide (cluster_id + feature columns)."""
    wh = as_warehouse(con)
    centroids = wh.relation("ops", "intelligence_cluster_centroids")
    if not wh.table_exists(centroids):
        return None
    long = wh.fetch_arrow(
        f"""
        select cluster_id, feature, value from {centroids}
        where as_of = (select max(as_of) from {centroids} where as_of < $as_of)
        """,
        {"as_of": as_of},
    ).to_pandas()
    if long.empty:
        return None
    return long.pivot(index="cluster_id", columns="feature", values="value").reset_index()


def run_clustering(
    con: Warehouse | object, as_of: datetime, cfg: ClusteringConfig, features_cfg: FeatureConfig,
    stored: dict[str, Any] | None = None,
) -> ClusteringResult:
    """Fit and assign everyone; with `stored` (a model from fit_cluster_model), only assign."""
    empty = pd.DataFrame({"user_id": pd.Series(dtype=object), "cluster_id": pd.Series(dtype="int64"),
                          "cluster_label": pd.Series(dtype=object), "distance": pd.Series(dtype="float64"),
                          "as_of": pd.Series(dtype="datetime64[us, UTC]")})
    wh = as_warehouse(con)
    missing = missing_inputs(wh, FEATURE_INPUTS)
    if missing:
        return ClusteringResult(empty, pd.DataFrame(), "insufficient_data",
                                f"missing input tables: {', '.join(missing)}")
    cats = tuple(stored["categories"].values()) if stored is not None else None
    feats = build_features(wh, as_of, features_cfg, "all", categories=cats)
    if len(feats.frame) < cfg.min_users:
        return ClusteringResult(empty, pd.DataFrame(), "insufficient_data",
                                f"{len(feats.frame)} users (< {cfg.min_users}): not clustered",
                                {"users": len(feats.frame)})
    model: dict[str, Any] = {}
    if stored is not None:
        assignments, centroids = assign_clusters(feats.frame, stored)
        metrics = {**stored["metrics"], "ids_inherited": int(len(centroids)),
                   "cluster_sizes": {str(i): int(n) for i, n in zip(centroids["cluster_id"], centroids["size"],
                                                                     strict=True)}}
    else:
        categories = dict(zip(feats.feature_names[-len(feats.categories):], feats.categories, strict=True)) \
            if feats.categories else {}
        assignments, centroids, metrics, model = fit_cluster_model(feats.frame, categories, cfg,
                                                                   previous_centroids(wh, as_of))
    metrics.update(_same_cluster_share(wh, assignments))
    metrics["users"] = int(len(assignments))
    assignments["as_of"] = as_of
    reason = f"{metrics['k']} clusters, silhouette {metrics['silhouette']:.3f}" if metrics["silhouette"] is not None \
        else f"{metrics['k']} clusters"
    return ClusteringResult(assignments, centroids, "clustered", reason, metrics, model)


def _same_cluster_share(wh: Warehouse, assignments: pd.DataFrame) -> dict[str, Any]:
    """Share of users present in the previous table who keep their cluster id (a join in the warehouse)."""
    previous = output_relation(wh, CLUSTERS)
    if not wh.table_exists(previous):
        return {}
    new = wh.create_temp_table("_new_clusters", pa.table({
        "user_id": pa.array(assignments["user_id"].to_numpy(), pa.string()),
        "cluster_id": pa.array(assignments["cluster_id"].to_numpy(), pa.int32())}))
    try:
        share = wh.scalar(f"select avg(case when n.cluster_id = b.cluster_id then 1.0 else 0.0 end) from {new} n "
                          f"join {previous} b on b.user_id = n.user_id")
    finally:
        wh.drop_table(new)
    return {"users_same_cluster_share": float(share)} if share is not None else {}


def write_clusters(con: Warehouse | object, result: ClusteringResult, as_of: datetime) -> None:
    """Replace customer_clusters and this as-of's centroids (call inside the step's transaction)."""
    wh = as_warehouse(con)
    replace_output(wh, CLUSTERS, result.assignments, CLUSTERS_SCHEMA)
    wh.execute(wh.render(CENTROIDS_TEMPLATE))  # migration 41's idempotent DDL: callable inside a transaction
    centroids = wh.relation("ops", "intelligence_cluster_centroids")
    # The centroid history is written forward only: a rebuild as of a time before a stored as-of
    # (crmflow run --analytics-only) leaves it alone, else the next run after it would inherit its
    # cluster ids from that rebuild and the same as-of twice could number the clusters differently.
    if wh.scalar(f"select count(*) from {centroids} where as_of > $as_of", {"as_of": as_of}):
        return
    wh.execute(f"delete from {centroids} where as_of = $as_of", {"as_of": as_of})
    if result.centroids.empty:
        return
    long = result.centroids.melt(id_vars=["cluster_id", "cluster_label", "size"], var_name="feature",
                                 value_name="value")
    long["as_of"] = as_of
    wh.write_arrow(pa.Table.from_pandas(long[CENTROIDS_SCHEMA.names], preserve_index=False).cast(CENTROIDS_SCHEMA),
                   centroids)
