import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.models import Role
from app.workspaces.models import Workspace


async def create_workspace(session: AsyncSession, *, name: str) -> tuple[Workspace, str]:
    """Create a workspace with its first admin API key; returns the workspace and the key's secret."""
    workspace = Workspace(name=name)
    session.add(workspace)
    await session.flush()
    _, secret = await auth_service.issue_key(session, workspace.id, name="admin", role=Role.admin)
    return workspace, secret


async def first_workspace(session: AsyncSession) -> Workspace | None:
    return await session.scalar(select(Workspace).order_by(Workspace.created_at).limit(1))


async def bump_metadata_version(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    await session.execute(
        update(Workspace).where(Workspace.id == workspace_id).values(metadata_version=Workspace.metadata_version + 1)
    )


async def get_metadata_version(session: AsyncSession, workspace_id: uuid.UUID) -> int:
    """Bumped by every metadata change: caches of per-workspace derived data (GraphQL schemas) key on it."""
    version = await session.scalar(select(Workspace.metadata_version).where(Workspace.id == workspace_id))
    return version or 0
