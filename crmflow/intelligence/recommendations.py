"""Product recommendations: item-to-item co-purchase similarity with popularity fallbacks.

Cosine similarity between items over the sparse user x item purchase matrix (scipy.sparse), pruned
to each item's strongest `neighbours`; a user's scores are their purchases times that matrix,
computed in chunks of users with a dense block of bounded size, top-N by argpartition. Slots the
co-purchase signal cannot fill (new customers, niche baskets) fall back to what is popular in the
user's cluster, then to what is popular overall. Items the user already bought are never offered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from crmflow.intelligence.config import FeatureConfig, RecommendationConfig
from crmflow.intelligence.tables import (
    CLUSTERS,
    RECOMMENDATIONS,
    RECOMMENDATIONS_SCHEMA,
    as_arrow,
    missing_inputs,
    output_relation,
    replace_output,
    sql_list,
)
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import binary_order

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


@dataclass
class Candidates:
    """What every user's list is drawn from, computed once from the whole purchase matrix."""

    sim: sparse.csr_matrix | None  # item-item similarity (None: popularity only)
    seg_items: np.ndarray | None  # (groups, fallback_depth) popular in each segment
    seg_share: np.ndarray | None
    all_items: np.ndarray  # (1, fallback_depth) popular overall
    all_share: np.ndarray


def candidate_sources(
    x: sparse.csr_matrix, groups: np.ndarray | None, cfg: RecommendationConfig, use_co_purchase: bool = True
) -> Candidates:
    sim = item_similarity(x, cfg.neighbours, cfg.chunk_cells) if use_co_purchase else None
    seg_items, seg_share = popularity(x, groups, cfg.fallback_depth) if groups is not None else (None, None)
    all_items, all_share = popularity(x, np.zeros(x.shape[0], dtype=np.int64), cfg.fallback_depth)
    return Candidates(sim, seg_items, seg_share, all_items, all_share)


def recommend(
    x: sparse.csr_matrix, groups: np.ndarray | None, rows: np.ndarray, cfg: RecommendationConfig,
    use_co_purchase: bool = True, sources: Candidates | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-N for users `rows` of `x`; groups[u] is each user's segment (cluster) index, for fallback.

    Each row depends only on that user's purchases and on `sources` (computed from all of `x`), so
    scoring the users block by block gives the same lists as scoring them at once.
    """
    src = sources if sources is not None else candidate_sources(x, groups, cfg, use_co_purchase)
    n = len(rows)
    candidates = []
    if src.sim is not None:
        candidates.append(co_purchase_top(x, src.sim, rows, cfg.top_n, cfg.chunk_cells))
    else:
        candidates.append((np.full((n, 1), -1), np.zeros((n, 1))))
    if src.seg_items is None or groups is None:  # no segments known: plain popularity fills in
        candidates.append((np.full((n, 1), -1), np.zeros((n, 1))))
    else:
        candidates.append((src.seg_items[groups[rows]], src.seg_share[groups[rows]]))
    candidates.append((np.repeat(src.all_items, n, axis=0), np.repeat(src.all_share, n, axis=0)))
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


@dataclass
class PurchaseData:
    """The inputs as integer codes: users and skus in sorted order, distinct (user, sku) pairs."""

    user_ids: pa.Array  # index = user code, sorted by user_id
    skus: pa.Array  # index = sku code, sorted
    groups: np.ndarray | None  # segment code per user (None: no segments known)
    pair_user: np.ndarray  # one row per distinct (user, sku, held) purchase
    pair_item: np.ndarray
    pair_held: np.ndarray  # True: bought in the user's last order (users with 2+ orders)


def _load(wh: Warehouse, as_of: datetime, fcfg: FeatureConfig) -> PurchaseData:
    """Codes computed in the warehouse and fetched as Arrow/numpy: no per-line Python objects.

    Users, segments and skus are numbered in code point order on every engine (binary_order).
    """
    clusters = output_relation(wh, CLUSTERS)
    segment_sql = (f"left join {clusters} c on c.user_id = u.user_id" if wh.table_exists(clusters)
                   else "left join (select cast(null as varchar) as user_id, cast(null as integer) as cluster_id) c "
                   "on false")
    paid = sql_list(fcfg.paid_statuses)

    def by(column: str) -> str:
        return binary_order(column, wh.dialect)

    for temp in ("_rec_users", "_rec_lines"):
        wh.execute(f"drop table if exists {temp}")
    wh.execute(
        f"""
        create temp table _rec_users as
        with u as (
            select user_id from customer_profile where user_id is not null
            union
            select user_id from stg_shop__order_items
            where ordered_at < $as_of and status in {paid} and user_id is not null
        ),
        seg as (
            select cast(u.user_id as varchar) as user_id, coalesce(cast(c.cluster_id as varchar), '-') as segment
            from u {segment_sql}
        )
        select user_id, cast(row_number() over (order by {by('user_id')}) - 1 as integer) as u,
               cast(dense_rank() over (order by {by('segment')}) - 1 as integer) as g, segment
        from seg
        """,
        {"as_of": as_of},
    )
    wh.execute(
        f"""
        create temp table _rec_lines as
        select cast(user_id as varchar) as user_id, cast(sku as varchar) as sku, cast(order_id as varchar) as order_id,
               ordered_at
        from stg_shop__order_items
        where ordered_at < $as_of and status in {paid} and user_id is not null and sku is not null
        """,
        {"as_of": as_of},
    )
    users = wh.fetch_arrow("select user_id, g, segment <> '-' as has_segment from _rec_users order by u")
    skus = wh.fetch_arrow(f"select sku from _rec_lines group by sku order by {by('sku')}")
    # Each user's last order (latest ordered_at, then order_id) is held out for the offline
    # check when the user has two or more orders.
    pairs = wh.fetch_arrow(
        f"""
        with orders as (
            select user_id, order_id, ordered_at,
                   row_number() over (partition by user_id
                                      order by ordered_at desc nulls last, {by('order_id')} desc nulls last)
                       as recent,
                   count(*) over (partition by user_id) as n_orders
            from (select distinct user_id, order_id, ordered_at from _rec_lines) distinct_orders
        ),
        items as (select sku, cast(row_number() over (order by {by('sku')}) - 1 as integer) as i
                  from (select distinct sku from _rec_lines) distinct_skus)
        select distinct u.u, i.i, (o.recent = 1 and o.n_orders >= 2) as held
        from _rec_lines l
        join _rec_users u on u.user_id = l.user_id
        join items i on i.sku = l.sku
        join orders o on o.user_id = l.user_id and o.order_id = l.order_id and o.ordered_at = l.ordered_at
        order by 1, 2, 3
        """
    )
    # Dropped on success only (an error inside a PostgreSQL transaction leaves them to the rollback).
    wh.execute("drop table if exists _rec_users")
    wh.execute("drop table if exists _rec_lines")
    has_segment = users.column("has_segment").to_numpy()
    groups = users.column("g").to_numpy().astype(np.int64) if has_segment.any() else None
    return PurchaseData(
        user_ids=users.column("user_id").combine_chunks(), skus=skus.column("sku").combine_chunks(), groups=groups,
        pair_user=pairs.column("u").to_numpy().astype(np.int64), pair_item=pairs.column("i").to_numpy().astype(np.int64),
        pair_held=pairs.column("held").to_numpy(zero_copy_only=False).astype(bool),
    )


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


def _block_table(data: PurchaseData, rows: np.ndarray, items: np.ndarray, scores: np.ndarray,
                 reasons: np.ndarray) -> pa.Table:
    rr, slot = np.nonzero(items >= 0)
    return pa.table({
        "user_id": data.user_ids.take(pa.array(rows[rr])),
        "rank": pa.array(slot + 1, type=pa.int32()),
        "sku": data.skus.take(pa.array(items[rr, slot])),
        "score": pa.array(scores[rr, slot], type=pa.float64()),
        "reason": pa.array(REASONS[reasons[rr, slot]].astype(str)),
    })


def run_recommendations(
    con: Warehouse | object, as_of: datetime, cfg: RecommendationConfig, fcfg: FeatureConfig,
    sink: Callable[[pa.Table], None] | None = None, evaluation: dict[str, Any] | None = None,
) -> RecommendationResult:
    """Top-N for every user, scored `cfg.block_users` users at a time.

    With `sink`, each block's rows go to it (e.g. an insert into the table) and the result holds no
    rows, so memory does not grow with the user count; without, the blocks are concatenated.
    `evaluation`: metrics of an earlier offline evaluation to reuse (skips the evaluation).
    """
    empty = pd.DataFrame({"user_id": pd.Series(dtype=object), "rank": pd.Series(dtype="int64"),
                          "sku": pd.Series(dtype=object), "score": pd.Series(dtype="float64"),
                          "reason": pd.Series(dtype=object)})
    wh = as_warehouse(con)
    missing = missing_inputs(wh, REC_INPUTS)
    if missing:
        return RecommendationResult(empty, "insufficient_data", f"missing input tables: {', '.join(missing)}")
    data = _load(wh, as_of, fcfg)
    n_users, n_items = len(data.user_ids), len(data.skus)
    if len(data.pair_user) == 0 or n_users == 0:
        return RecommendationResult(empty, "insufficient_data", "no paid order lines before the as-of time",
                                    {"users": n_users})
    if evaluation is None:
        metrics = evaluate(data.pair_user, data.pair_item, data.pair_held, data.groups, n_users, n_items, cfg)
        metrics["evaluated"] = True
    else:
        metrics = {**evaluation, "evaluated": False}
    x = purchase_matrix(data.pair_user, data.pair_item, n_users, n_items)
    sources = candidate_sources(x, data.groups, cfg)
    blocks: list[pa.Table] = []
    rows_out = 0
    by_reason = np.zeros(len(REASONS), dtype=np.int64)
    for start in range(0, n_users, cfg.block_users):  # blocks of users: bounded memory, same lists
        rows = np.arange(start, min(start + cfg.block_users, n_users))
        items, scores, reasons = recommend(x, data.groups, rows, cfg, sources=sources)
        by_reason += np.bincount(reasons[reasons >= 0], minlength=len(REASONS))
        block = _block_table(data, rows, items, scores, reasons)
        rows_out += block.num_rows
        if sink is None:
            blocks.append(block)
        else:
            sink(block)
    recs = pa.concat_tables(blocks).to_pandas() if blocks else empty
    metrics.update({"users": int(n_users), "items": int(n_items), "rows": int(rows_out),
                    "by_reason": {str(REASONS[k]): int(v) for k, v in enumerate(by_reason) if v}})
    return RecommendationResult(recs, "recommended", f"{rows_out} recommendations for {n_users} users", metrics)


def write_recommendations(con: Warehouse | object, recs: pd.DataFrame | pa.Table) -> None:
    replace_output(as_warehouse(con), RECOMMENDATIONS, recs, RECOMMENDATIONS_SCHEMA)


def append_recommendations(con: Warehouse | object, relation: str, block: pa.Table) -> None:
    """Append one block of rows to `relation` (created empty with the contract's types beforehand)."""
    as_warehouse(con).write_arrow(as_arrow(block, RECOMMENDATIONS_SCHEMA), relation)
