from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy.engine import Connection

from app.db import Base
from app.readmodel.ddl import is_runtime_object


async def test_models_match_the_migrated_schema(app: FastAPI) -> None:
    """`alembic check`: the migrations build exactly the schema the models declare."""

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # The read model's per-type tables are made at run time (app/readmodel/ddl.py), not by migrations.
                "include_name": lambda name, kind, parent: not is_runtime_object(name),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with app.state.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
