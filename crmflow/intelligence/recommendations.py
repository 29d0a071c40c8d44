"""Product recommendations: item-to-item co-purchase similarity with popularity fallbacks.

Cosine similarity between items over the sparse user x item purchase matrix (scipy.sparse), pruned
to each item's strongest `neighbours`; a user's scores are their purchases times that matrix,
computed in chunks of users with a dense block of bounded size, top-N by argpartition. Slots the
co-purchase signal cannot fill (new customers, niche baskets) fall back to what is popular in the
user's cluster, then to what is popular overall. Items the user already bought are never offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse

from crmflow.intelligence.config import FeatureConfig, RecommendationConfig
from crmflow.intelligence.tables import existing_tables, missing_inputs, replace_table, sql_list

REASONS = np.array(["co_purchase", "popular_in_segment", "popular"], dtype=object)
REC_INPUTS = ("customer_profile", "stg_shop__order_items")


@dataclass
class RecommendationResult:
    recommendations: pd.DataFrame  # user_id, rank, sku, score, reason
    decision: str  # recommended | insufficient_data
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


def purchase_matrix(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int) -> sparse.csr_matrix:
    """Binary user x item matrix (bought at least once)."""
    data = np.ones(len(user_idx), dtype=np.float32)
    m = sparse.csr_matrix((data, (user_idx, item_idx)), shape=(n_users, n_items))
    m.data[:] = 1.0  # duplicates were summed: back to 0/1
    return m


def item_similarity(x: sparse.csr_matrix, neighbours: int, chunk_cells: int) -> sparse.csr_matrix:
    """Cosine item-item similarity, diagonal removed, each row pruned to its top `neighbours`."""
    n_items = x.shape[1]
    co = (x.T @ x).tocsr()
    norms = np.sqrt(co.diagonal()).astype(np.float32)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    sim = sparse.diags(inv) @ co @ sparse.diags(inv)
    sim = sim.tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    keep = min(neighbours, max(n_items - 1, 1))
    if n_items <= keep + 1:
        return sim
    rows_per_chunk = max(1, chunk_cells // max(n_items, 1))
    blocks = []
    for start in range(0, n_items, rows_per_chunk):  # chunks of item rows, each fully vectorised
        dense = sim[start:start + rows_per_chunk].toarray()
        top = np.argpartition(-dense, keep - 1, axis=1)[:, :keep]
        mask = np.zeros_like(dense, dtype=bool)
        np.put_along_axis(mask, top, True, axis=1)
        blocks.append(sparse.csr_matrix(np.where(mask, dense, 0.0).astype(np.float32)))
    return sparse.vstack(blocks).tocsr()


def co_purchase_top(
    x: sparse.csr_matrix, sim: sparse.csr_matrix, rows: np.ndarray, top_n: int, chunk_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """For users `rows`: (items, scores) arrays of shape (len(rows), top_n); item -1 = no signal."""
    n_items = x.shape[1]
    items = np.full((len(rows), top_n), -1, dtype=np.int64)
    scores = np.zeros((len(rows), top_n), dtype=np.float64)
    if n_items == 0 or len(rows) == 0:
        return items, scores
    take = min(top_n, n_items)
    step = max(1, chunk_cells // n_items)
    for start in range(0, len(rows), step):  # chunks of users; every chunk is one sparse product
        block = x[rows[start:start + step]]
        dense = (block @ sim).toarray()
        bought_r, bought_c = block.nonzero()
        dense[bought_r, bought_c] = -np.inf  # never recommend what the user already has
        if take < n_items:
            part = np.argpartition(-dense, take - 1, axis=1)[:, :take]
        else:
            part = np.tile(np.arange(n_items), (dense.shape[0], 1))
        part_scores = np.take_along_axis(dense, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        part = np.take_along_axis(part, order, axis=1)
        part_scores = np.take_along_axis(part_scores, order, axis=1)
        valid = part_scores > 0
        items[start:start + step, :take] = np.where(valid, part, -1)
        scores[start:start + step, :take] = np.where(valid, part_scores, 0.0)
    return items, scores


def popularity(x: sparse.csr_matrix, groups: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group (0..G-1): the `depth` items with most buyers and their buyer share, shape (G, depth)."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    n_items = x.shape[1]
    member = sparse.csr_matrix((np.ones(len(groups), dtype=np.float32), (groups, np.arange(len(groups)))),
                               shape=(n_groups, len(groups)))
    counts = (member @ x).toarray()  # groups x items: buyers per item
    size = np.maximum(np.asarray(member.sum(axis=1)).ravel(), 1)
    take = min(depth, n_items)
    # Stable ranking: most buyers first, then the lower item index (items are sorted by sku).
    order = np.lexsort((np.tile(np.arange(n_items), (n_groups, 1)), -counts), axis=1)[:, :take]
    share = np.take_along_axis(counts, order, axis=1) / size[:, None]
    items = np.where(share > 0, order, -1)
    if take < depth:
        items = np.pad(items, ((0, 0), (0, depth - take)), constant_values=-1)
        share = np.pad(share, ((0, 0), (0, depth - take)))
    return items, share


def merge_candidates(
    x: sparse.csr_matrix, rows: np.ndarray, candidates: list[tuple[np.ndarray, np.ndarray]], top_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First `top_n` valid candidates per user, in list order: not bought, not repeated.

    candidates[i] = (items, scores) of shape (len(rows), width_i); the list index is the reason code.
    Returns (items, scores, reason codes), shape (len(rows), top_n); item -1 where nothing is left.
    """
    items = np.concatenate([c[0] for c in candidates], axis=1)
    scores = np.concatenate([c[1] for c in candidates], axis=1)
    reasons = np.concatenate([np.full(c[0].shape, i, dtype=np.int8) for i, c in enumerate(candidates)], axis=1)
    n, width = items.shape
    valid = items >= 0
    r_idx = np.repeat(np.arange(n), width).reshape(n, width)
    safe = np.where(valid, items, 0)
    bought = np.asarray(x[rows[r_idx.ravel()], safe.ravel()]).reshape(n, width) > 0
    valid &= ~bought
    # First occurrence of each (user, item) only: a co-purchase pick is not repeated as "popular".
    key = np.where(valid, r_idx * (x.shape[1] + 1) + safe, -1 - np.arange(n * width).reshape(n, width))
    _, first = np.unique(key.ravel(), return_index=True)
    is_first = np.zeros(n * width, dtype=bool)
    is_first[first] = True
    valid &= is_first.reshape(n, width)
    # Keep the first top_n valid slots per row, in order.
    position = np.cumsum(valid, axis=1)
    keep = valid & (position <= top_n)
    out_items = np.full((n, top_n), -1, dtype=np.int64)
    out_scores = np.zeros((n, top_n))
    out_reasons = np.full((n, top_n), -1, dtype=np.int8)
    rr, cc = np.nonzero(keep)
    slot = position[rr, cc] - 1
    out_items[rr, slot] = items[rr, cc]
    out_scores[rr, slot] = scores[rr, cc]
    out_reasons[rr, slot] = reasons[rr, cc]
    return out_items, out_scores, out_reasons


def recommend(
    x: sparse.csr_matrix, groups: np.ndarray | None, rows: np.ndarray, cfg: RecommendationConfig,
    use_co_purchase: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-N for users `rows` of `x`; groups[u] is each user's segment (cluster) index, for fallback."""
    n = len(rows)
    candidates = []
    if use_co_purchase:
        sim = item_similarity(x, cfg.neighbours, cfg.chunk_cells)
        candidates.append(co_purchase_top(x, sim, rows, cfg.top_n, cfg.chunk_cells))
    else:
        candidates.append((np.full((n, 1), -1), np.zeros((n, 1))))
    if groups is None:  # no segments known: the segment slot stays empty, plain popularity fills in
        candidates.append((np.full((n, 1), -1), np.zeros((n, 1))))
    else:
        seg_items, seg_share = popularity(x, groups, cfg.fallback_depth)
        candidates.append((seg_items[groups[rows]], seg_share[groups[rows]]))
    all_items, all_share = popularity(x, np.zeros(x.shape[0], dtype=np.int64), cfg.fallback_depth)
    candidates.append((np.repeat(all_items, n, axis=0), np.repeat(all_share, n, axis=0)))
    return merge_candidates(x, rows, candidates, cfg.top_n)


def hit_and_recall(recommended: np.ndarray, held_out: sparse.csr_matrix) -> tuple[float, float]:
    """hit-rate@N: share of users with a held-out item in their list; recall@N: share of held-out found."""
    n = recommended.shape[0]
    safe = np.where(recommended >= 0, recommended, 0)
    rows = np.repeat(np.arange(n), recommended.shape[1])
    hits = (np.asarray(held_out[rows, safe.ravel()]).reshape(recommended.shape) > 0) & (recommended >= 0)
    found = hits.sum(axis=1)
    total = np.asarray(held_out.sum(axis=1)).ravel()
    return float((found > 0).mean()), float((found / np.maximum(total, 1)).mean())


def _load(con: duckdb.DuckDBPyConnection, as_of: datetime, fcfg: FeatureConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = existing_tables(con)
    segment_sql = ("left join customer_clusters c on c.user_id = u.user_id"
                   if "customer_clusters" in tables else "left join (select null::varchar as user_id, "
                   "null::integer as cluster_id) c on false")
    users = con.execute(
        f"""
        with u as (
            select user_id from customer_profile where user_id is not null
            union
            select user_id from stg_shop__order_items
            where ordered_at < $as_of and status in {sql_list(fcfg.paid_statuses)} and user_id is not null
        )
        select u.user_id::varchar as user_id, coalesce(c.cluster_id::varchar, '-') as segment
        from u {segment_sql} order by u.user_id
        """,
        {"as_of": as_of},
    ).df()
    lines = con.execute(
        f"""
        select user_id::varchar as user_id, sku::varchar as sku, order_id::varchar as order_id, ordered_at
        from stg_shop__order_items
        where ordered_at < $as_of and status in {sql_list(fcfg.paid_statuses)}
          and user_id is not null and sku is not null
        """,
        {"as_of": as_of},
    ).df()
    return users, lines


def _held_out_mask(lines: pd.DataFrame) -> np.ndarray:
    """True for the lines of each user's last order, for users with two or more orders."""
    last = lines.sort_values(["ordered_at", "order_id"], kind="stable").groupby("user_id")["order_id"].agg(
        ["last", "nunique"])
    last = last[last["nunique"] >= 2]["last"]
    return lines["order_id"].isin(set(last.to_numpy())).to_numpy() & lines["user_id"].isin(last.index).to_numpy()


def evaluate(
    lines_u: np.ndarray, lines_i: np.ndarray, held: np.ndarray, groups: np.ndarray | None, n_users: int,
    n_items: int,
    cfg: RecommendationConfig,
) -> dict[str, Any]:
    """Offline check on each user's held-out last order against plain popularity."""
    train = purchase_matrix(lines_u[~held], lines_i[~held], n_users, n_items)
    test = purchase_matrix(lines_u[held], lines_i[held], n_users, n_items)
    # Only novel items can be hit (bought-before items are excluded by design).
    test = (test - test.multiply(train)).tocsr()
    test.eliminate_zeros()
    eval_rows = np.flatnonzero(np.asarray(test.sum(axis=1)).ravel() > 0)
    if len(eval_rows) > cfg.eval_users:
        eval_rows = np.sort(np.random.default_rng(cfg.seed).choice(eval_rows, cfg.eval_users, replace=False))
    if len(eval_rows) == 0:
        return {"eval_users": 0}
    model_items, _, _ = recommend(train, groups, eval_rows, cfg)
    base_items, _, _ = recommend(train, None, eval_rows, cfg, use_co_purchase=False)
    held_rows = test[eval_rows]
    hit, recall = hit_and_recall(model_items, held_rows)
    base_hit, base_recall = hit_and_recall(base_items, held_rows)
    n = cfg.top_n
    return {"eval_users": int(len(eval_rows)), f"hit_rate_at_{n}": hit, f"recall_at_{n}": recall,
            f"baseline_hit_rate_at_{n}": base_hit, f"baseline_recall_at_{n}": base_recall,
            "beats_popularity": bool(hit > base_hit)}


def run_recommendations(
    con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: RecommendationConfig, fcfg: FeatureConfig
) -> RecommendationResult:
    empty = pd.DataFrame({"user_id": pd.Series(dtype=object), "rank": pd.Series(dtype="int64"),
                          "sku": pd.Series(dtype=object), "score": pd.Series(dtype="float64"),
                          "reason": pd.Series(dtype=object)})
    missing = missing_inputs(con, REC_INPUTS)
    if missing:
        return RecommendationResult(empty, "insufficient_data", f"missing input tables: {', '.join(missing)}")
    users, lines = _load(con, as_of, fcfg)
    if lines.empty or users.empty:
        return RecommendationResult(empty, "insufficient_data", "no paid order lines before the as-of time",
                                    {"users": len(users)})
    user_codes = pd.Index(users["user_id"])
    sku_codes = pd.Index(np.sort(lines["sku"].unique()))
    codes = pd.factorize(users["segment"], sort=True)[0].astype(np.int64)
    groups = codes if (users["segment"] != "-").any() else None
    lu = user_codes.get_indexer(lines["user_id"])
    li = sku_codes.get_indexer(lines["sku"])
    metrics = evaluate(lu, li, _held_out_mask(lines), groups, len(user_codes), len(sku_codes), cfg)
    x = purchase_matrix(lu, li, len(user_codes), len(sku_codes))
    items, scores, reasons = recommend(x, groups, np.arange(len(user_codes)), cfg)
    rr, slot = np.nonzero(items >= 0)
    recs = pd.DataFrame({
        "user_id": user_codes.to_numpy()[rr],
        "rank": slot + 1,
        "sku": sku_codes.to_numpy()[items[rr, slot]],
        "score": scores[rr, slot],
        "reason": REASONS[reasons[rr, slot]],
    })
    metrics.update({"users": int(len(user_codes)), "items": int(len(sku_codes)), "rows": int(len(recs)),
                    "by_reason": {str(k): int(v) for k, v in recs["reason"].value_counts().sort_index().items()}})
    return RecommendationResult(recs, "recommended", f"{len(recs)} recommendations for {len(user_codes)} users",
                                metrics)


def write_recommendations(con: duckdb.DuckDBPyConnection, recs: pd.DataFrame) -> None:
    replace_table(
        con, "customer_recommendations", recs,
        "user_id::varchar as user_id, rank::integer as rank, sku::varchar as sku, score::double as score, "
        "reason::varchar as reason",
    )
