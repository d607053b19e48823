"""Which clusters are on a page of the list: their ids in order, read by index walks.

Every cluster has one remote_cluster_details row (migration 0009) carrying its name, status,
join time, heartbeat time, every figure the list sorts or filters on, and ``health_rank``: its
health without staleness (1 error, 2 warning, 3 pending, 4 healthy), which PostgreSQL computes
in the heartbeat's own statement. Each sort key has an index per direction ending in
(name, cluster_id), so a page sorted by a figure is a walk of one index that stops after the
page.

Staleness is the one input that changes without a write: a cluster is stale once ``seen_at``
(its last heartbeat, or its join before one) is older than the limit. Sorted by health, the
list is five blocks, each in name order: stale (a walk of the name index, or a range of
``seen_at`` sorted, whichever PostgreSQL finds cheaper), then error, warning, pending and
healthy (each an equality range of the health-rank index, minus the stale ones; the index
holds ``seen_at``, so the walk never reads the rows). A page needs each block's size only up to
its own end: the blocks are counted in the order the page walks them, each capped at what is
left to the page's end (``health_walk``, ``block_count_statement``), until the page is
covered; the page then reads only the one or two blocks it covers, at the right offset in each.
With a filter on figures or statuses, one pass over the filtered rows counts every block
instead (``counts_blocks``).

Any page past the middle of what it walks is read from the far end (the order reversed), so no
page reads more than half of an index. The statements are built from constant fragments for
the filters that are set only (values are parameters; page bounds are validated integers), so
each plan is a custom one that knows which filters are absent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from cluster_manager.cluster_listing import ClusterFilter, ClusterQuery

# Sort keys -> details columns (their indexes are in migration 0009); "health" is by blocks.
COLUMNS = {
    "name": "d.name",
    "joined_at": "d.joined_at",
    "last_status_update_at": "d.heartbeat_at",
    "instance_count": "d.instance_count",
    "member_count": "d.member_count",
    "cpu_load_1": "d.cpu_load_1",
    "memory_usage_ratio": "d.memory_usage_ratio",
    "storage_max_usage_ratio": "d.storage_max_usage_ratio",
}
RANKS = {"error": 1, "warning": 2, "pending": 3, "healthy": 4}
STATES = ("stale", "error", "warning", "pending", "healthy")  # the health sort's blocks

CUTOFF_SQL = "(now() - make_interval(secs => {stale}))"  # stable: the planner estimates it
STALE_SQL = "d.seen_at <= {cutoff}"
FRESH_SQL = "d.health_rank = {rank} AND d.seen_at > {cutoff}"
SEARCH_SQL = (
    "d.cluster_id IN (SELECT s.id FROM remote_clusters s WHERE s.name ILIKE {value} ESCAPE '\\')"
)
NAME_SEARCH_SQL = "d.name ILIKE {value} ESCAPE '\\'"
TRIGRAM = 3
FILTERS = {
    "status": "d.cluster_status = {value}::text",
    "instance_status": (
        "d.instance_statuses @> jsonb_build_array(jsonb_build_object('status', {value}::text))"
    ),
    "member_status": (
        "d.member_statuses @> jsonb_build_array(jsonb_build_object('status', {value}::text))"
    ),
    "memory_min": "d.memory_usage_ratio >= {value}::float8",
    "memory_max": "d.memory_usage_ratio <= {value}::float8",
    "storage_min": "d.storage_max_usage_ratio >= {value}::float8",
    "storage_max": "d.storage_max_usage_ratio <= {value}::float8",
}
# Sorted by name or join time and filtered by name or status only: remote_clusters' own
# indexes (name; joined_at, name) order the page and no details are read.
CLUSTER_FILTERS = {
    "search": "c.name ILIKE {value} ESCAPE '\\'",
    "status": "c.status = {value}::text",
}
CLUSTER_SORTS = frozenset({"name", "joined_at"})


class Parameters:
    """Positional parameters of a statement being built."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        """Keep ``value`` as the next parameter; its placeholder ($n)."""
        self.values.append(value)
        return f"${len(self.values)}"


class Statement(NamedTuple):
    """SQL text and its parameters."""

    sql: str
    args: list[object]
    reverse: bool = False  # the ids come out last first


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _is_set(value: object) -> bool:
    return value not in ("", None, ())


def by_cluster_columns(query: ClusterQuery) -> bool:
    """Whether the page is ordered and filtered by remote_clusters' own columns only."""
    return query.sort in CLUSTER_SORTS and not any(
        _is_set(getattr(query, name)) for name in ("health", *FILTERS) if name != "status"
    )


def _conditions(query: ClusterFilter, params: Parameters) -> list[str]:
    """Conditions on ``d`` for every filter that is set, except health."""
    found = []
    if query.search:
        # The trigram index needs three characters; shorter ones filter the name index.
        fragment = SEARCH_SQL if len(query.search) >= TRIGRAM else NAME_SEARCH_SQL
        found.append(fragment.format(value=params.add(_like_pattern(query.search))))
    for name, fragment in FILTERS.items():
        value = getattr(query, name)
        if _is_set(value):
            found.append(fragment.format(value=params.add(value)))
    return found


def _state_conditions(states: tuple[str, ...], cutoff: str) -> dict[str, str]:
    """The condition of each health state, in the order of STATES."""
    return {
        state: STALE_SQL.format(cutoff=cutoff)
        if state == "stale"
        else FRESH_SQL.format(rank=RANKS[state], cutoff=cutoff)
        for state in STATES
        if state in states
    }


def _where(conditions: list[str]) -> str:
    return " AND ".join(f"({c})" for c in conditions) or "true"


def count_statement(query: ClusterQuery, stale_after: float) -> Statement:
    """One row, ``total``: how many clusters match the filters (and see ``counts_blocks``)."""
    params = Parameters()
    if by_cluster_columns(query):
        conditions = []
        if query.search:
            pattern = params.add(_like_pattern(query.search))
            conditions.append(CLUSTER_FILTERS["search"].format(value=pattern))
        if query.status:
            conditions.append(CLUSTER_FILTERS["status"].format(value=params.add(query.status)))
        sql = f"SELECT count(*) AS total FROM remote_clusters c WHERE {_where(conditions)}"  # noqa: S608
        return Statement(sql, params.values)
    conditions = _conditions(query, params)
    partial = bool(query.health) and set(query.health) != set(STATES)  # all: no condition
    blocks = ""
    if partial or counts_blocks(query):
        cutoff = CUTOFF_SQL.format(stale=params.add(stale_after))
        by_state = _state_conditions(query.health or STATES, cutoff)
        if partial:
            conditions.append(" OR ".join(f"({c})" for c in by_state.values()))
        if counts_blocks(query):
            blocks = "".join(f", count(*) FILTER (WHERE {c}) AS {s}" for s, c in by_state.items())
    sql = (
        f"SELECT count(*) AS total{blocks} FROM remote_cluster_details d"  # noqa: S608
        f" WHERE {_where(conditions)}"
    )
    return Statement(sql, params.values)


def counts_blocks(query: ClusterQuery) -> bool:
    """Whether ``count_statement`` also counts each health block (its column, by state).

    Sorted by health with a filter on the details' figures or statuses: those the block's
    index walk cannot check, and the planner, expecting a capped count to stop early, may
    scan the whole table for a block the filter leaves empty. One pass over the filtered
    rows (found by their own indexes) counts every block instead.
    """
    return query.sort == "health" and any(_is_set(getattr(query, name)) for name in FILTERS)


def _window(offset: int, limit: int, size: int) -> tuple[int, int, bool]:
    """(offset, limit, from the far end) to read rows [offset, offset+limit) of ``size``."""
    limit = max(0, min(limit, size - offset))
    if offset > 0 and size - offset < offset + limit:
        return size - offset - limit, limit, True
    return offset, limit, False


def _key_page(query: ClusterQuery, stale_after: float, total: int) -> Statement:
    """The page's ids sorted by a column: one index walk (from the far end past the middle)."""
    params = Parameters()
    offset, limit, reverse = _window(query.offset, query.limit, total)
    descending = (query.order == "desc") != reverse
    direction = "DESC" if descending else "ASC"
    if by_cluster_columns(query):
        conditions = []
        if query.search:
            pattern = params.add(_like_pattern(query.search))
            conditions.append(CLUSTER_FILTERS["search"].format(value=pattern))
        if query.status:
            conditions.append(CLUSTER_FILTERS["status"].format(value=params.add(query.status)))
        # Never NULL: PostgreSQL's default NULLS order is its index's either way.
        order = f"c.{query.sort} {direction}"
        if query.sort != "name":
            order += f", c.name {'DESC' if reverse else 'ASC'}"
        sql = (
            f"SELECT c.id FROM remote_clusters c WHERE {_where(conditions)}"  # noqa: S608
            f" ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        )
        return Statement(sql, params.values, reverse)
    conditions = _conditions(query, params)
    if query.health and set(query.health) != set(STATES):  # all states: no condition
        cutoff = CUTOFF_SQL.format(stale=params.add(stale_after))
        by_state = _state_conditions(query.health, cutoff)
        if len(by_state) < len(STATES):
            conditions.append(" OR ".join(f"({c})" for c in by_state.values()))
    column = COLUMNS[query.sort]
    if query.sort == "name":
        order = f"d.name {direction}"
    else:
        nulls = "NULLS FIRST" if reverse else "NULLS LAST"
        order = f"{column} {direction} {nulls}, d.name {'DESC' if reverse else 'ASC'}"
    sql = (
        f"SELECT d.cluster_id FROM remote_cluster_details d WHERE {_where(conditions)}"  # noqa: S608
        f" ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    )
    return Statement(sql, params.values, reverse)


class HealthWalk(NamedTuple):
    """The rows [start, end) of the health blocks ``states``, in the order they are walked."""

    states: tuple[str, ...]
    start: int
    end: int
    reverse: bool  # walked from the far end: every block read by name descending


def health_walk(query: ClusterQuery, total: int) -> HealthWalk:
    """Which blocks a health-sorted page walks, and where the page is in that walk.

    A page past the middle of ``total`` is found from the far end (blocks last first, names
    descending), so no walk is longer than half the list plus the page.
    """
    order = STATES if query.order == "asc" else tuple(reversed(STATES))
    if query.health:
        order = tuple(state for state in order if state in query.health)
    start, end = query.offset, min(query.offset + query.limit, total)
    if start > 0 and total - start < end:
        return HealthWalk(tuple(reversed(order)), total - end, total - start, True)
    return HealthWalk(order, start, end, False)


# Capped counts of one block. Stale clusters are those with an old heartbeat (a range of the
# heartbeat index, which stops after the cap) and those that never sent one (the index's NULL
# end): the two are counted apart, each capped, and their sum capped again. Fresh blocks are
# walks of their health-rank range (index-only: the index holds ``seen_at``).
CAPPED_SQL = (
    "SELECT count(*) FROM (SELECT 1 FROM remote_cluster_details d"
    " WHERE {where} LIMIT {cap}) AS capped"
)
STALE_PARTS_SQL = (
    "d.heartbeat_at <= {cutoff}",
    "d.heartbeat_at IS NULL AND d.joined_at <= {cutoff}",
)


def block_count_statement(
    query: ClusterQuery, stale_after: float, state: str, cap: int
) -> Statement:
    """How many clusters match the filters in the block ``state``, counting no more than ``cap``.

    Index walks (health rank, heartbeat time) that stop after ``cap`` rows.
    """
    params = Parameters()
    conditions = _conditions(query, params)
    cutoff = CUTOFF_SQL.format(stale=params.add(stale_after))
    cap = max(0, cap)
    if state == "stale":
        counts = (
            "("
            + CAPPED_SQL.format(where=_where([*conditions, part.format(cutoff=cutoff)]), cap=cap)
            + ")"
            for part in STALE_PARTS_SQL
        )
        return Statement(f"SELECT least({cap}, {' + '.join(counts)})", params.values)
    block = _state_conditions((state,), cutoff)[state]
    return Statement(CAPPED_SQL.format(where=_where([*conditions, block]), cap=cap), params.values)


def health_page_statement(
    query: ClusterQuery,
    stale_after: float,
    walk: HealthWalk,
    sizes: dict[str, int],
    *,
    exact: bool = False,
) -> Statement:
    """The page's ids sorted by health: the blocks it covers, each read at its own offset.

    ``sizes`` has the count of each block walked, in walk order, until the page's end was
    covered, each capped at what was left of the page unless ``exact``. A block counted below
    its cap is exact, and a page part past its middle is read from its other end; the block
    the page ends in may have been capped and is then read from the walk's side.
    """
    params = Parameters()
    conditions = _conditions(query, params)
    cutoff = CUTOFF_SQL.format(stale=params.add(stale_after))
    by_state = _state_conditions(STATES, cutoff)
    listed = STATES if query.order == "asc" else tuple(reversed(STATES))
    parts = []
    first = 0  # position of the block's first row in the walk
    for state in walk.states:
        if state not in sizes:
            break
        size, cap = sizes[state], walk.end - first
        if size and walk.start < first + size:
            offset = max(0, walk.start - first)
            limit = min(walk.end, first + size) - first - offset
            descending = walk.reverse
            if exact or size < cap:  # read from the nearer end of the block
                offset, limit, turned = _window(offset, limit, size)
                descending = descending != turned
            parts.append(
                f"(SELECT {listed.index(state)} AS block, d.name, d.cluster_id"  # noqa: S608
                " FROM remote_cluster_details d"
                f" WHERE {_where([*conditions, by_state[state]])}"
                f" ORDER BY d.name {'DESC' if descending else 'ASC'}"
                f" LIMIT {limit} OFFSET {offset})"
            )
        first += size
    if not parts:
        return Statement("SELECT NULL::bigint WHERE false", [])
    sql = (
        "SELECT u.cluster_id FROM (\n"  # noqa: S608 - constant fragments
        + "\nUNION ALL\n".join(parts)
        + "\n) AS u ORDER BY u.block, u.name"
    )
    return Statement(sql, params.values)


def page_statement(query: ClusterQuery, stale_after: float, total: int) -> Statement:
    """The statement giving the page's cluster ids in order, sorted by a column.

    ``total`` is the answer of ``count_statement``. Sorted by health, see ``health_walk``.
    """
    return _key_page(query, stale_after, total)
