from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy.engine import Connection

from app.db import Base


async def test_models_match_the_migrated_schema(app: FastAPI) -> None:
    """`alembic check`: the migrations build exactly the schema the models declare."""

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with app.state.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
