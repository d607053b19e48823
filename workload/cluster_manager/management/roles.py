"""Roles: what a signed-in person may do, from the groups their identity provider names.

Three roles, each allowing everything the one below it does:

- ``admin`` (``oidc_admin_group``): everything, as before roles existed;
- ``operator`` (``oidc_operator_group``): read the inventory and change instances' state,
  but not remove clusters, create tokens or change settings;
- ``viewer`` (``oidc_viewer_group``): read only.

Every ``/1.0`` operation names the role it needs (``@documented(role=...)``); without one a
read (GET) needs ``viewer`` and any other method ``admin``.
"""

from __future__ import annotations

from typing import Literal

from cluster_manager.settings import Settings

Role = Literal["viewer", "operator", "admin"]
RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def role_of(groups: tuple[str, ...], settings: Settings) -> Role | None:
    """The highest role the groups give, or None."""
    if settings.oidc_admin_group in groups:
        return "admin"
    if settings.oidc_operator_group and settings.oidc_operator_group in groups:
        return "operator"
    if settings.oidc_viewer_group and settings.oidc_viewer_group in groups:
        return "viewer"
    return None


def role_groups(settings: Settings) -> tuple[str, ...]:
    """The groups that give a role, highest first (kept when a groups claim is trimmed)."""
    return tuple(
        g
        for g in (
            settings.oidc_admin_group,
            settings.oidc_operator_group,
            settings.oidc_viewer_group,
        )
        if g
    )


def needed_role(method: str, declared: Role | None) -> Role:
    """The role an operation needs: the declared one, else by its method."""
    if declared is not None:
        return declared
    return "viewer" if method.upper() in READ_METHODS else "admin"


def allows(role: Role | None, needed: Role) -> bool:
    """Whether a person with ``role`` may run an operation needing ``needed``."""
    return role is not None and RANK[role] >= RANK[needed]


def group_of(role: Role, settings: Settings) -> str:
    """The group that gives ``role``."""
    return {
        "admin": settings.oidc_admin_group,
        "operator": settings.oidc_operator_group,
        "viewer": settings.oidc_viewer_group,
    }[role]
