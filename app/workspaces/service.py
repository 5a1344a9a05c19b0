import uuid

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.access.service import ensure_builtin_roles
from app.auth import service as auth_service
from app.auth.models import Role
from app.kit.invalidation import listener
from app.workspaces.models import Workspace


async def create_workspace(session: AsyncSession, *, name: str) -> tuple[Workspace, str]:
    """Create a workspace with its first admin API key; returns the workspace and the key's secret."""
    workspace = Workspace(name=name)
    session.add(workspace)
    await session.flush()
    await ensure_builtin_roles(session, workspace.id)
    _, secret = await auth_service.issue_key(session, workspace.id, name="admin", role=Role.admin)
    return workspace, secret


async def first_workspace(session: AsyncSession) -> Workspace | None:
    return await session.scalar(select(Workspace).order_by(Workspace.created_at).limit(1))


async def bump_metadata_version(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    await session.execute(
        update(Workspace).where(Workspace.id == workspace_id).values(metadata_version=Workspace.metadata_version + 1)
    )
    session.info.get("metadata_versions", {}).pop(workspace_id, None)  # see app.elements.meta_cache
    # Other processes hear of it by NOTIFY; this one forgets at once, so its next request sees the change.
    if not session.info.get("forget_metadata_listening"):
        session.info["forget_metadata_listening"] = True
        event.listen(session.sync_session, "after_commit", _forget_after_commit)
    session.info.setdefault("forget_metadata", set()).add(workspace_id)


def _forget_after_commit(sync_session: Session) -> None:
    for workspace_id in sync_session.info.pop("forget_metadata", set()):
        listener.forget("meta", str(workspace_id))
